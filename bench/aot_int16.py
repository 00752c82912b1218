"""int16x8 through both runtimes on the emulated Cortex-M4: bench/aot_int16.md.

The demo's digit CNN (models/recipes/demo.yaml's model and training, trained once and saved) converted with
`quantize: {mode: int16x8}` (int16 activations, int8 filters, int64 biases; no int4, which int16 layers do not
take) in two variants:

- `per-channel`: the kit's conversion as is (every layer per channel). TFLM's Cortex-M build refuses it at
  Prepare (its cmsis_nn FULLY_CONNECTED takes int16 only per tensor), so only the AOT firmware runs it;
- `dense-per-tensor`: the same weights converted here with TFLite's
  `_experimental_disable_per_channel_quantization_for_dense_layers` (the quantize stage has no such setting), then
  given to the kit as a `.tflite`: TFLM's Cortex-M build runs it.

Each runs through bench/aot.py's measurement (cortex-m-qemu project per runtime, `flash` under QEMU mps2-an386:
PASS n/n, instructions per inference; the project linked without self-test for program and RAM):

    python -m bench.aot_int16 [--out build/bench-aot16]

Needs TFLM_ROOT, CMSIS_NN_ROOT, TFLM_KIT_SHARED_DATA, arm-none-eabi-gcc and qemu-system-arm.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from converter import convert, load_data, load_model, load_recipe, parse_recipe, run_stage

from .aot import BENCH, REPO, Measured, measure


def _trained(work: Path) -> tuple[Path, Path]:
    """The demo's CNN trained as models/recipes/demo.yaml trains it (same builder, data and settings), saved with
    its data so that both variants quantize the same weights and take the same golden inputs."""
    recipe = load_recipe(REPO / "models/recipes/demo.yaml")
    data = load_data(recipe.data_spec(), (28, 28, 1))
    train = next(stage.train for stage in recipe.stages if stage.train is not None)
    model = run_stage("train", load_model(recipe.model, recipe.base_dir), train, data).model
    model.save(work / "digits.h5")
    np.savez(work / "data.npz", x_train=data.x_train, y_train=data.y_train, x_test=data.x_eval, y_test=data.y_eval)
    return work / "digits.h5", work / "data.npz"


def _dense_per_tensor(keras_file: Path, data_file: Path, out: Path) -> Path:
    """TFLite's int16x8 conversion with per-tensor FULLY_CONNECTED weights (the rest per channel), the 200
    calibration samples the kit uses."""
    import tensorflow as tf
    import tf_keras

    model = tf_keras.models.load_model(keras_file)
    with np.load(data_file) as arrays:
        calibration = arrays["x_train"][:200]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[np.newaxis].astype(np.float32)] for x in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int16
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    out.write_bytes(converter.convert())
    return out


def model_dir(work: Path, variant: str, keras_file: Path, data_file: Path) -> Path:
    source = _dense_per_tensor(keras_file, data_file, work / "dense_per_tensor.tflite") \
        if variant == "dense-per-tensor" else keras_file
    quantize = {} if variant == "dense-per-tensor" else {"quantize": {"mode": "int16x8", "calibration_samples": 200}}
    recipe = parse_recipe({"name": f"digits16_{variant.replace('-', '_')}", "model": {"path": str(source)},
                           "data": {"npz": str(data_file)}, **quantize,
                           "compress": {"strip_metadata": True}, "golden": {"vectors": 10}}, base_dir=work)
    out = work / variant
    convert(recipe, out, force=True)
    return out


# TFLM's self-test of the per-channel variant prints "AllocateTensors failed" and runs no vector (0/0); the
# reason, printed by `convert`'s device check on the same model: "Node FULLY_CONNECTED (number 5) failed to
# prepare with status 1 (tensorflow/lite/micro/kernels/cmsis_nn/fully_connected.cc:116 ... is_per_channel &&
# input->type == kTfLiteInt8 ...)"
REFUSED = "0/0: FULLY_CONNECTED fails to prepare (cmsis_nn takes int16 per tensor only)"


def _row(variant: str, runtime: str, m: Measured | None, note: str = "") -> str:
    if m is not None and m.total == 0:
        return _row(variant, runtime, None, REFUSED)
    if m is None:
        return f"| {variant} | {runtime} | {note} | - | - | - | - | - | - | - |"
    plain = f"{m.ram_without_inplace:,}" if m.ram_without_inplace else "-"
    return (f"| {variant} | {runtime} | {m.passed}/{m.total} | {m.flash_selftest:,} | {m.flash_bare:,} | {m.code:,} | "
            f"{m.model_data:,} | {m.ram:,} | {plain} | {m.instructions or 0:,} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "build" / "bench-aot16"), help="a new or empty folder")
    args = parser.parse_args(argv)
    for setting in ("TFLM_ROOT", "CMSIS_NN_ROOT", "TFLM_KIT_SHARED_DATA"):
        if not os.environ.get(setting):
            raise SystemExit(f"error: {setting} is not set — fix: export it (make bench sets it from ../shared)")
    work = Path(args.out).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CMSIS_NN_CACHE", str(work / "cmsis-nn"))
    os.environ["TFLM_KIT_DEVICE_CHECK"] = "off"   # TFLM's Cortex-M build refuses the per-channel variant
    started = time.perf_counter()
    rows = []
    keras_file, data_file = _trained(work)
    for variant in ("per-channel", "dense-per-tensor"):
        folder = model_dir(work, variant, keras_file, data_file)
        measured = {}
        for runtime in ("tflm", "aot"):
            measured[runtime] = measure(folder, runtime, work)
            rows.append(_row(variant, runtime, measured[runtime]))
        print(f"{variant}: " + ", ".join(f"{r} {m.passed}/{m.total}" for r, m in measured.items()))
    text = "\n".join([
        "# int16x8 through TFLM and the AOT runtime on the emulated Cortex-M4", "",
        f"Measured by `python -m bench.aot_int16` on this machine, {time.strftime('%Y-%m-%d')}, in "
        f"{time.perf_counter() - started:.0f} s (bench/aot_int16.py says how; columns as bench/aot.md).", "",
        "| variant | runtime | PASS | flash | program | code | model data | RAM | RAM w/o in-place | instructions |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|", *rows, ""])
    (BENCH / "aot_int16.md").write_text(text)
    print(f"wrote {BENCH / 'aot_int16.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
