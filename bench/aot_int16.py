"""int16x8 through both runtimes on the emulated Cortex-M4: bench/aot_int16.md.

The demo's digit CNN (models/recipes/demo.yaml's model and training) converted with `quantize: {mode: int16x8}`
(int16 activations, int8 filters, int64 biases; no int4, which int16 layers do not take) in two variants:

- `per-channel`: the kit's conversion as is (every layer per channel). TFLM's Cortex-M build refuses it at
  Prepare (its cmsis_nn FULLY_CONNECTED takes int16 only per tensor), so only the AOT firmware runs it;
- `dense-per-tensor`: the same model with the TFLite converter's
  `_experimental_disable_per_channel_quantization_for_dense_layers`, which TFLM's Cortex-M build runs.

Each runs through bench/aot.py's measurement (cortex-m-qemu project per runtime, `flash` under QEMU mps2-an386:
PASS n/n, instructions per inference; the project linked without self-test for program and RAM):

    python -m bench.aot_int16 [--out build/bench-aot16]

Needs TFLM_ROOT, CMSIS_NN_ROOT, TFLM_KIT_SHARED_DATA, arm-none-eabi-gcc and qemu-system-arm.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

from converter import convert, load_recipe
from converter.stages import quantize as quantize_stage

from .aot import BENCH, REPO, Measured, measure


@contextlib.contextmanager
def _dense_per_tensor():
    """The quantize stage's TFLite converter with per-tensor FULLY_CONNECTED weights (the rest per channel)."""
    original = quantize_stage._converter_for

    @contextlib.contextmanager
    def patched(tf, model):
        with original(tf, model) as converter:
            converter._experimental_disable_per_channel_quantization_for_dense_layers = True
            yield converter

    quantize_stage._converter_for = patched
    try:
        yield
    finally:
        quantize_stage._converter_for = original


def model_dir(work: Path, variant: str) -> Path:
    recipe = load_recipe(REPO / "models/recipes/demo.yaml")
    recipe = recipe.model_copy(update={
        "name": f"digits16_{variant.replace('-', '_')}",
        "quantize": recipe.quantize.model_copy(update={"mode": "int16x8", "per_channel": True}),
        "compress": recipe.compress.model_copy(update={"int4": False})})
    out = work / variant
    with _dense_per_tensor() if variant == "dense-per-tensor" else contextlib.nullcontext():
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
    for variant in ("per-channel", "dense-per-tensor"):
        folder = model_dir(work, variant)
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
