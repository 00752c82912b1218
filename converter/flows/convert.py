"""One conversion run: recipe -> stages -> quantized .tflite -> validated artifacts in --out."""
from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..system import tf_env
from ..inputs.dataset import Dataset, load_data
from ..emit.c_arrays import parse_c_array
from ..emit.sources import render_all, resolver_ops
from ..errors import KitError
from ..reports.manifest import sha256, tool_versions, write_manifest
from ..inputs.keras_model import load_model
from ..inputs.npz import save_npz
from ..system.outdir import check_output_path, staged_output
from ..recipe import Recipe
from ..reports.convert_report import render_report
from ..tflm.arena import measure_arena
from ..tflm.runners import quantize, run_litert, run_tflm
from ..stages import compress as compress_stage
from ..stages import quantize as quantize_stage
from ..stages import stage_runner
from ..stages.distill import resolve_builder
from ..tflite.model import ModelInfo, check_deployable, read_model
from ..compare.outputs import bit_exact, compare_outputs
from ..federated.presentation import write_accuracy_plot


def golden_inputs(data: Dataset, info: ModelInfo, count: int) -> tuple[list[np.ndarray], str]:
    """Real inputs spread over the eval set (or the calibration set), quantized to the input type."""
    x, source = data.spread_inputs(count)
    return [quantize(x, info.inputs[0])], source


def arena_with_margin(measured: int, margin: float) -> int:
    return int(math.ceil(measured * (1 + margin) / 16) * 16)


def _validate(model_bytes: bytes, info: ModelInfo, inputs, golden, c_source: str, name: str,
              uncompressed: bytes | None = None) -> dict:
    """uncompressed: the model before LUT compression, when there was one. LiteRT has no TFLM_DECODE
    kernel, so LiteRT runs it; TFLM must give it the golden outputs bit for bit."""
    from_c = parse_c_array(c_source, f"g_{name}_model_data")
    if from_c != model_bytes:
        raise KitError("model_data.cc does not hold the same bytes as model.tflite (emitter bug)",
                       "report this with the recipe that produced it")
    litert_bytes = uncompressed or model_bytes
    validation = {"tflm_vs_c_array": compare_outputs(golden, run_tflm(from_c, info, inputs))}
    if uncompressed is not None:
        validation["tflm_vs_tflm_uncompressed"] = compare_outputs(
            golden, run_tflm(uncompressed, read_model(uncompressed), inputs))
    return validation | {
        "tflm_vs_litert_reference": compare_outputs(golden, run_litert(litert_bytes, inputs, reference_kernels=True)),
        "tflm_vs_litert_optimized": compare_outputs(golden, run_litert(litert_bytes, inputs, reference_kernels=False)),
    }


def _check_labels(labels, info: ModelInfo) -> None:
    if labels and len(labels) != info.outputs[0].elements:
        raise KitError(f"{len(labels)} labels given but the model's first output has {info.outputs[0].elements} values",
                       "give one label per output class (data.labels), or none")


def _input_shape(model) -> tuple:
    if len(model.inputs) != 1:
        raise KitError(f"the model has {len(model.inputs)} inputs; convert supports single-input models",
                       "wrap the model so it takes one input tensor")
    shape = tuple(model.input_shape[1:])
    if any(d is None for d in shape):
        raise KitError(f"the model input shape {shape} has unknown dimensions",
                       "build the model with a fixed input shape (e.g. Input((49, 10, 1)))")
    return shape


def convert(recipe: Recipe, out: Path, force: bool = False, log: Callable[[str], None] = print) -> dict:
    out = Path(out)
    model_inputs = (recipe.resolve(recipe.model.path),) if recipe.model.path else ()
    check_output_path(out, force, inputs=model_inputs)
    started = time.perf_counter()
    keras = tf_env.keras()
    keras.utils.set_random_seed(recipe.seed)
    tf_env.tensorflow().config.experimental.enable_op_determinism()

    log("loading the model and data")
    model = load_model(recipe)
    data = load_data(recipe, _input_shape(model))

    records = []
    total = len(recipe.stages) + 1 + (recipe.compress is not None)
    for number, stage in enumerate(recipe.stages, start=1):
        log(f"stage {number}/{total}: {stage.kind}")
        settings = stage.settings
        if stage.kind == "distill":  # the student builder's path is relative to the recipe
            settings = settings.model_copy(update={"student_builder": resolve_builder(settings.student_builder,
                                                                                      recipe.base_dir)})
        result = stage_runner(stage.kind)(model, settings, data, recipe.seed)
        model, records = result.model, records + [result.record]
    log(f"stage {len(recipe.stages) + 1}/{total}: quantize ({recipe.quantize.mode}, "
        f"{min(recipe.quantize.calibration_samples, len(data.x_calibration))} calibration samples)")
    quantized = quantize_stage.run(model, recipe.quantize, data, recipe.seed)
    records.append(quantized.record)
    model_bytes = quantized.model
    quantize_record, uncompressed = quantized.record, None
    if recipe.compress is not None:
        log(f"stage {total}/{total}: compress (TFLM LUT)")
        compressed = compress_stage.run(model_bytes, recipe.compress, data, recipe.seed)
        records.append(compressed.record)
        if compressed.model != model_bytes:
            uncompressed, model_bytes = model_bytes, compressed.model
    info = read_model(model_bytes)
    # no float ops (unless float16 was asked for), int64, dynamic shapes left
    check_deployable(model_bytes, require_int8=recipe.quantize.mode != "float16")
    resolver_ops(info)  # fail now, with the op names, if TFLM lacks a kernel
    _check_labels(data.labels, info)

    log("running golden vectors on TFLM and measuring the arena")
    inputs, golden_source = golden_inputs(data, info, recipe.golden.vectors)
    golden = run_tflm(model_bytes, info, inputs)
    arena_measured = measure_arena(model_bytes, [x[:1].reshape(t.shape) for x, t in zip(inputs, info.inputs)])
    arena_size = arena_with_margin(arena_measured, recipe.arena_margin)
    model_sha = sha256(model_bytes)
    sources = render_all(recipe.name, "model.tflite", model_bytes, model_sha, info, arena_measured, arena_size,
                         recipe.arena_margin, data.labels, inputs, golden, host=platform.machine())

    log("validating bit for bit: TFLM vs the C array, LiteRT reference and optimized kernels")
    validation = _validate(model_bytes, info, inputs, golden, sources["model_data.cc"], recipe.name, uncompressed)

    float_quality = quantize_record["quality_before"].get("eval_accuracy")
    quantized_quality = quantize_record["quality_after"].get("eval_accuracy")
    content = {
        "name": recipe.name,
        "tools": tool_versions(),
        "recipe": recipe.model_dump(mode="json"),
        "model": {"bytes": len(model_bytes), "sha256": model_sha, "operators": info.operator_counts,
                  "inputs": [t.as_dict() for t in info.inputs], "outputs": [t.as_dict() for t in info.outputs]},
        "arena_bytes": arena_measured,
        "tensor_arena_size": arena_size,
        "arena_note": f"measured with TFLM's Python runtime on {platform.machine()} (64-bit pointers): "
                      "an upper estimate for 32-bit MCUs, before optimized-kernel scratch buffers",
        "stages": records,
        "validation": validation,
        "summary": {
            "model_bytes": len(model_bytes), "operators": list(info.operators), "arena_measured": arena_measured,
            "tensor_arena_size": arena_size, "arena_margin_percent": round(recipe.arena_margin * 100),
            "float_quality": "—" if float_quality is None else f"{float_quality:.2%}",
            "quantized_quality": "—" if quantized_quality is None else f"{quantized_quality:.2%}",
            "mode": recipe.quantize.mode,
            "golden_vectors": int(len(inputs[0])), "golden_source": golden_source,
            "bit_exact_on_tflm": bit_exact(validation["tflm_vs_c_array"]),
            "trained_federated": any(r.get("trained_federated") for r in records),
        },
        "seconds": None,
    }

    with staged_output(out) as staging:
        (staging / "model.tflite").write_bytes(model_bytes)
        for file_name, text in sources.items():
            (staging / file_name).write_text(text)
        arrays = {f"input_{i}": x for i, x in enumerate(inputs)} | {f"output_{j}": y for j, y in enumerate(golden)}
        save_npz(staging / "golden.npz", arrays)
        for record in (r for r in records if r["stage"] == "federated"):
            if write_accuracy_plot({"federated": record}, staging / "federated_accuracy.png"):
                record["plot"] = "federated_accuracy.png"
        content["seconds"] = round(time.perf_counter() - started, 1)
        (staging / "report.md").write_text(render_report(content))
        manifest = write_manifest(staging, content)
    if not bit_exact(validation["tflm_vs_c_array"]):
        raise KitError("the model read back from model_data.cc gave different TFLM outputs",
                       f"see {out / 'report.md'}")
    if uncompressed is not None and not bit_exact(validation["tflm_vs_tflm_uncompressed"]):
        raise KitError("the LUT-compressed model gave different TFLM outputs than the uncompressed one "
                       "on the golden vectors", f"see {out / 'report.md'}; remove the compress step")
    return manifest


def load_manifest(out: Path) -> dict:
    return json.loads((Path(out) / "manifest.json").read_text())
