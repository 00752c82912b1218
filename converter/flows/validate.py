"""`tflm-kit validate`: any int8/int16x8 .tflite, runtime against runtime and against its float model.

The model is untrusted: this process only reads its flatbuffer (plain Python) and prepares the
inputs; every runtime, and the float model, run in a child process (converter.tflm.child), each
runtime once over all vectors, keeping the intermediate tensors the divergence report needs.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..compare.divergence import INSPECTED_RUNTIME, LITERT_KERNELS, compare_pair
from ..compare.fidelity import output_metrics, per_layer_sqnr
from ..compare.outputs import compare_outputs
from ..errors import KitError
from ..reports.manifest import sha256, tool_versions
from ..tflite.model import read_graph, read_model
from ..tflm.child import ChildCrashed, run_in_child
from ..tflm.consistency import check_consistent
from ..tflm.isolation import announce_runtime, model_array, read_checked
from ..tflm.runners import dequantize, run_model, time_limit
from .model_inputs import model_inputs

# The child runs TFLM, LiteRT reference, LiteRT optimized (XNNPACK, for the outputs) and the optimized
# kernels without XNNPACK (for the intermediates), after the consistency check (CONSISTENCY_RUNS: four
# TFLM runs on two vectors); loading TensorFlow for a float model takes longer.
RUNS_PER_VECTOR = 4
CONSISTENCY_RUNS = 8
FLOAT_MODEL_STARTUP_SECONDS = 180.0


def _arrays_list(arrays: dict, prefix: str) -> list[np.ndarray]:
    return [arrays[f"{prefix}_{i}"] for i in range(sum(1 for k in arrays if k.startswith(f"{prefix}_")))]


def _float_outputs(float_model: Path, float_inputs: list[np.ndarray]):
    """(outputs per model output, keras model or None) of the float reference model."""
    if float_model.suffix == ".tflite":
        return run_model(float_model.read_bytes(), float_inputs, "litert_reference").outputs, None
    from ..inputs.keras_model import load_file_model

    keras_model = load_file_model(float_model)
    predicted = keras_model.predict(float_inputs[0] if len(float_inputs) == 1 else float_inputs, verbose=0)
    return [np.asarray(p) for p in (predicted if isinstance(predicted, list) else [predicted])], keras_model


def validate_task(arguments: dict, arrays: dict, emit) -> tuple[dict, dict]:
    """Child side: run each runtime once, compare, and (with a float model) measure fidelity."""
    model_bytes = arrays["model"].tobytes()
    info, graph = read_model(model_bytes), read_graph(model_bytes)
    inputs = _arrays_list(arrays, "input")
    announce_runtime(emit, "tflm")
    check_consistent(model_bytes, [x[:2] for x in inputs])  # a model TFLM runs on other memory: the finding
    golden = run_model(model_bytes, inputs, "tflm", keep_tensors=True)
    outputs, operators = {}, {}
    for pair, kernels in LITERT_KERNELS.items():
        announce_runtime(emit, pair)
        if pair == "litert_reference":
            inspected = run_model(model_bytes, inputs, pair, keep_tensors=True)
            outputs[f"tflm_vs_{pair}"] = compare_outputs(golden.outputs, inspected.outputs)
        else:  # XNNPACK's outputs are what users get; its fused intermediates are not inspectable
            outputs[f"tflm_vs_{pair}"] = compare_outputs(golden.outputs, run_model(model_bytes, inputs, pair).outputs)
            announce_runtime(emit, INSPECTED_RUNTIME[pair])
            inspected = run_model(model_bytes, inputs, INSPECTED_RUNTIME[pair], keep_tensors=True)
        operators[pair] = compare_pair(graph, golden.tensors, inspected.tensors, kernels)
        del inspected  # one LiteRT run's tensors in memory at a time
    report = {
        "model": {"file": arguments["model_file"], "bytes": len(model_bytes), "sha256": sha256(model_bytes),
                  "operators": info.operator_counts,
                  "inputs": [t.as_dict() for t in info.inputs], "outputs": [t.as_dict() for t in info.outputs]},
        "data": arguments["source"],
        "tools": tool_versions(),
        "outputs": outputs,
        "operators": operators,
    }
    if arguments["float_model"] is not None:
        float_model = Path(arguments["float_model"])
        emit("progress", f"comparing with the float model {arguments['float_model_shown']}")
        float_inputs = _arrays_list(arrays, "float_input")
        reference, keras_model = _float_outputs(float_model, float_inputs)
        labels = arrays.get("labels")
        metrics = [output_metrics(ref, dequantize(out, tensor), labels)
                   for ref, out, tensor in zip(reference, golden.outputs, info.outputs)]
        report["fidelity"] = metrics[0]
        if len(metrics) > 1:
            report["fidelity_per_output"] = metrics
        if keras_model is not None:
            report["per_layer_sqnr"] = per_layer_sqnr(keras_model, graph,
                                                      float_inputs[0] if len(float_inputs) == 1 else float_inputs,
                                                      golden.tensors)
    return report, {}


def validate_model(model_path: Path, data: Path | None = None, float_model: Path | None = None,
                   vectors: int = 100, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """The validation report of MODEL: TFLM against LiteRT (outputs and operator by operator),
    and against the float model when one is given. Runtimes only ever see the model in a child."""
    started = time.perf_counter()
    model_bytes, info = read_checked(model_path)
    vector_inputs = model_inputs(info, data, vectors, seed)
    if float_model is not None and not Path(float_model).exists():
        raise KitError(f"float model {float_model} does not exist", "give the float .h5/.keras/SavedModel/.tflite")
    arrays = {"model": model_array(model_bytes)}
    arrays |= {f"input_{i}": x for i, x in enumerate(vector_inputs.quantized)}
    arrays |= {f"float_input_{i}": x for i, x in enumerate(vector_inputs.floats)}
    if vector_inputs.labels is not None:
        arrays["labels"] = vector_inputs.labels
    arguments = {"model_file": str(model_path), "source": vector_inputs.source,
                 "float_model": None if float_model is None else str(Path(float_model).resolve()),
                 "float_model_shown": None if float_model is None else str(float_model)}
    log(f"running {vector_inputs.vectors} vectors on TFLM and LiteRT in a separate process")
    limit = time_limit(model_bytes, RUNS_PER_VECTOR * vector_inputs.vectors + CONSISTENCY_RUNS,
                       startup=FLOAT_MODEL_STARTUP_SECONDS if float_model is not None else None)
    try:
        report = run_in_child(validate_task, arguments, arrays, what=f"validating {model_path}",
                              timeout=limit, log=log).value
    except ChildCrashed as crash:
        runtime = (crash.last_event.data.get("runtime_name") if crash.last_event else None) or "a runtime"
        raise KitError(f"{runtime} crashed ({crash.signal_name}) while validating {model_path} on its inputs; "
                       "the model is malformed or drives a kernel out of bounds",
                       "re-export the model; the kit's own process was not affected") from None
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


validate_in_child = validate_model  # the CLI's name for it, from when only the CLI was isolated
