"""`tflm-kit validate`: any int8/int16x8 .tflite, runtime against runtime and against its float model."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..compare.outputs import compare_outputs
from ..compare.divergence import compare_runtimes
from ..errors import KitError
from ..compare.fidelity import output_metrics, per_layer_sqnr
from ..tflm.isolation import open_untrusted
from ..reports.manifest import sha256, tool_versions
from ..tflm.runners import dequantize, quantize, run_litert, run_tflm
from ..tflite.model import ModelInfo, read_graph


def _read_data(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    if not path.is_file():
        raise KitError(f"data file {path} does not exist", "give an .npz with the inputs under 'x' (labels under 'y')")
    try:
        archive = np.load(path, allow_pickle=False)
        keys = archive.files
    except Exception as exc:
        raise KitError(f"data file {path} is not a readable .npz ({type(exc).__name__})", "save it with numpy.savez") from None
    key = next((k for k in ("x", "input_0", "x_test", "x_eval") if k in keys), None)
    if key is None:
        raise KitError(f"data file {path} has no 'x' array (it has {sorted(keys)})", "store the inputs under 'x'")
    labels = next((archive[k] for k in ("y", "y_test", "y_eval") if k in keys), None)
    return archive[key], labels


def model_inputs(info: ModelInfo, data: Path | None, vectors: int, seed: int):
    """(quantized inputs, float inputs, labels, description) for the model's single input."""
    if len(info.inputs) != 1:
        raise KitError(f"the model has {len(info.inputs)} inputs; validate supports single-input models",
                       "validate each input path separately")
    tensor = info.inputs[0]
    sample_shape = tuple(tensor.shape[1:])
    if data is None:
        rng = np.random.default_rng(seed)
        if np.issubdtype(tensor.dtype, np.integer):
            limits = np.iinfo(tensor.dtype)
            q = rng.integers(limits.min, limits.max, (vectors, *sample_shape), endpoint=True).astype(tensor.dtype)
        else:
            q = rng.standard_normal((vectors, *sample_shape)).astype(tensor.dtype)
        return q, dequantize(q, tensor), None, f"{vectors} seeded random inputs (seed {seed}; no --data given)"
    x, labels = _read_data(Path(data))
    if len(x) == 0:
        raise KitError(f"data file {data} has no inputs (0 samples)", "give at least one input sample")
    if tuple(x.shape[1:]) != sample_shape:
        raise KitError(f"data inputs have shape {tuple(x.shape[1:])} per sample but the model takes {sample_shape}",
                       "reshape the data to the model's input shape")
    x, labels = x[:vectors], (None if labels is None else np.asarray(labels)[:vectors])
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise KitError("data inputs contain NaN or infinity", "clean the data")
        return quantize(x, tensor), x.astype(np.float32), labels, f"{len(x)} inputs from {data}"
    if x.dtype != tensor.dtype:
        raise KitError(f"data inputs are {x.dtype} but the model input is {tensor.dtype}",
                       f"give float inputs (the kit quantizes them) or {tensor.dtype} inputs")
    return x, dequantize(x, tensor), labels, f"{len(x)} inputs from {data}"


def _float_outputs(float_model: Path, float_inputs: np.ndarray):
    """(outputs, keras model or None) of the float reference model."""
    if float_model.suffix == ".tflite":
        return run_litert(float_model.read_bytes(), [float_inputs], reference_kernels=True)[0], None
    from ..inputs.keras_model import load_file_model

    keras_model = load_file_model(float_model)
    return np.asarray(keras_model.predict(float_inputs, verbose=0)), keras_model


def validate_model(model_path: Path, data: Path | None = None, float_model: Path | None = None,
                   vectors: int = 100, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    started = time.perf_counter()
    model_bytes, info = open_untrusted(model_path, log)
    graph = read_graph(model_bytes)
    inputs, float_inputs, labels, source = model_inputs(info, data, vectors, seed)
    log(f"running {len(inputs)} vectors on TFLM and LiteRT (outputs)")
    golden = run_tflm(model_bytes, info, [inputs])
    outputs = {
        "tflm_vs_litert_reference": compare_outputs(golden, run_litert(model_bytes, [inputs], reference_kernels=True)),
        "tflm_vs_litert_optimized": compare_outputs(golden, run_litert(model_bytes, [inputs], reference_kernels=False)),
    }
    log("locating differences operator by operator")
    operators = compare_runtimes(model_bytes, graph, [inputs])
    report = {
        "model": {"file": str(model_path), "bytes": len(model_bytes), "sha256": sha256(model_bytes),
                  "operators": info.operator_counts,
                  "inputs": [t.as_dict() for t in info.inputs], "outputs": [t.as_dict() for t in info.outputs]},
        "data": source,
        "tools": tool_versions(),
        "outputs": outputs,
        "operators": operators,
    }
    if float_model is not None:
        log(f"comparing with the float model {float_model}")
        reference, keras_model = _float_outputs(Path(float_model), float_inputs)
        quantized = dequantize(golden[0], info.outputs[0])
        report["fidelity"] = output_metrics(reference, quantized, labels)
        if keras_model is not None:
            from ..compare.divergence import tflm_tensors

            report["per_layer_sqnr"] = per_layer_sqnr(keras_model, graph, float_inputs,
                                                      tflm_tensors(model_bytes, graph, [inputs]))
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


def validate_in_child(model_path: Path, data: Path | None = None, float_model: Path | None = None,
                      vectors: int = 100, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """validate_model in a child process.

    The smoke run of check_runs_safely feeds zeros; the real inputs come later and can drive a
    malformed model into a crash the zeros did not (an index read from the input, say). Here a
    crash ends the child, and the kit reports it.
    """
    arguments = {"model_path": str(model_path), "data": None if data is None else str(data),
                 "float_model": None if float_model is None else str(float_model), "vectors": vectors, "seed": seed}
    with tempfile.TemporaryDirectory(prefix="tflm-kit-validate-") as folder:
        report_path, errors_path = Path(folder) / "report.json", Path(folder) / "stderr.txt"
        with open(errors_path, "w") as errors:
            child = subprocess.Popen([sys.executable, "-m", "converter.flows.validate", json.dumps(arguments),
                                      str(report_path)], stdout=subprocess.PIPE, stderr=errors, text=True)
            for line in child.stdout:
                log(line.rstrip("\n"))
            returncode = child.wait()
        if returncode == 0:
            return json.loads(report_path.read_text())
        printed = errors_path.read_text(errors="replace")
    if returncode < 0:
        raise KitError(f"a runtime crashed ({signal.Signals(-returncode).name}) while validating {model_path} "
                       "on its inputs; the model is malformed or drives a kernel out of bounds",
                       "re-export the model; the kit's own process was not affected")
    reported = [line.removeprefix("error: ") for line in printed.splitlines() if line.startswith("error: ")]
    if reported:
        problem, _, fix = reported[-1].partition(" — fix: ")
        raise KitError(problem, fix)
    raise KitError(f"validation failed in its child process (exit {returncode}): {' '.join(printed.split())[-300:]}",
                   "report this with the model")


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    try:
        result = validate_model(**arguments, log=lambda message: print(message, flush=True))
    except KitError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    Path(sys.argv[2]).write_text(json.dumps(result))
