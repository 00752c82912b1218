"""Which compression the demo (`make demo`) should end with: measured, not assumed.

    python -m bench.demo_compression [--out build/demo-compression]

Trains the demo's float digits CNN as the recipe does (same seed, same data), converts the variants
below with the kit, and judges each int8 model on TFLM against the float model on the 500 held-out
MNIST test images of models/data (never trained or calibrated on): top-1 agreement and accuracy drop
(the optimize guards: >= 95%, <= 1 point); deployed flash and arena on the Cortex-M4 from the
footprint data and the host arena (converter/reports/deployed.py); and, when TFLM_ROOT, the cross compiler
and QEMU are there, the linked firmware image, target arena and instructions on the emulated Cortex-M4.
Writes bench/demo_compression.md.
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import yaml

from converter import tf_env  # noqa: F401  (Keras 2 before TensorFlow loads)

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "models/recipes/default.yaml"
PRUNE_CLUSTER = [{"prune": {"final_sparsity": 0.5, "schedule": "polynomial", "epochs": 3}},
                 {"cluster": {"clusters": 16, "per_channel": True, "preserve_sparsity": True, "epochs": 2}}]
# (name, extra stages after train, quantize per channel, compress settings)
VARIANTS = [
    ("plain int8 (per-channel)", [], True, None),
    ("prune 50% + cluster 16/ch + LUT", PRUNE_CLUSTER, True, {"lut": True, "strip_metadata": True}),
    ("int4 filters (per-tensor)", [], False, {"lut": False, "int4": True, "strip_metadata": True}),
    ("prune 50% + cluster 16/ch + int4 (per-tensor)", PRUNE_CLUSTER, False,
     {"lut": False, "int4": True, "strip_metadata": True}),
]


def float_outputs(recipe, x_eval: np.ndarray):
    """The recipe's float model (its train stage, as convert runs it) and its outputs on the held-out inputs."""
    from converter import load_data, load_model, run_stage

    tf_env.deterministic(recipe.seed)
    model = load_model(recipe)
    data = load_data(recipe, tuple(model.input_shape[1:]))
    for name, settings in recipe.pipeline():
        if name == "train":
            model = run_stage(name, model, settings, data, recipe.seed, base_dir=recipe.base_dir).model
    return model.predict(x_eval, verbose=0)


def variant_recipe(base: dict, stages: list, per_channel: bool, compress) -> dict:
    recipe = copy.deepcopy(base)
    recipe["stages"] = [s for s in base["stages"] if "train" in s] + stages
    recipe["quantize"]["per_channel"] = per_channel
    recipe.pop("compress", None)
    if compress:
        recipe["compress"] = compress
    return recipe


def judge(manifest: dict, model_bytes: bytes, x_eval, y_eval, teacher) -> dict:
    from converter import deployed_flash, dequantize, output_metrics, quantize, read_model, run_tflm

    info = read_model(model_bytes)
    out = run_tflm(model_bytes, [quantize(x_eval, info.inputs[0])])[0]
    metrics = output_metrics(teacher, dequantize(out, info.outputs[0]), y_eval)
    return {"model_bytes": len(model_bytes), "agreement": metrics["top1_agreement"],
            "accuracy_float": metrics["accuracy_float"], "accuracy": metrics["accuracy_quantized"],
            "flash": deployed_flash(len(model_bytes), info.operators).total, "arena": manifest["arena_bytes"],
            "operators": " ".join(info.operators)}


def on_device(model_dir: Path) -> dict:
    """The firmware for the emulated Cortex-M4 (cortex-m-qemu), built and run: linked image text + data,
    the arena TFLM used there, instructions per inference, and whether the self-test passed."""
    from converter import flash, linked_image_bytes, render_firmware

    project = model_dir.parent / f"{model_dir.name}-fw"
    render_firmware("cortex-m-qemu", model_dir, project)
    ran = flash(project)
    return {"image": linked_image_bytes(project), "arena_target": ran.get("arena_used_bytes"),
            "instructions": ran.get("instructions_per_inference"), "self_test": bool(ran.get("pass"))}


def device_table(rows: list[dict]) -> list[str]:
    plain = rows[0]
    lines = ["", "On the emulated Cortex-M4 (the same models, firmware built with TFLM_ROOT's cortex-m4 "
             "CMSIS-NN library and run under qemu-system-arm by the kit's `firmware`/`flash` flows):", "",
             "| variant | linked image B (vs plain int8) | arena B on target | instructions / inference | "
             "self-test |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['image']:,} ({r['image'] - plain['image']:+,}) | {r['arena_target']:,} | "
                     f"{r['instructions']:,} | {'pass' if r['self_test'] else 'FAIL'} |")
    return lines


def main() -> None:
    from converter import convert, load_recipe, parse_recipe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "build/demo-compression"))
    args = parser.parse_args()
    base_recipe = load_recipe(RECIPE)
    with np.load(REPO / "models/data/digits_subset.npz") as archive:
        x_eval = (archive["x_test"].astype(np.float32) / 255.0)[..., np.newaxis]
        y_eval = archive["y_test"].astype(np.int64)
    teacher = float_outputs(base_recipe, x_eval)
    from converter import device_available

    device = device_available({"name": "cortex-m-qemu"}) is None
    base = yaml.safe_load(RECIPE.read_text())
    rows = []
    for name, stages, per_channel, compress in VARIANTS:
        recipe = parse_recipe(variant_recipe(base, stages, per_channel, compress), base_dir=RECIPE.parent)
        out = Path(args.out) / str(len(rows))
        manifest = convert(recipe, out, force=True)
        rows.append({"name": name, **judge(manifest, (out / "model.tflite").read_bytes(), x_eval, y_eval, teacher)})
        if device:
            rows[-1] |= on_device(out)
        print(rows[-1], flush=True)
    plain = rows[0]
    lines = ["# Which compression `make demo` ends with", "",
             "Measured by `python -m bench.demo_compression`: the demo's float digits CNN (trained as "
             "models/recipes/default.yaml trains it), each variant converted by the kit and run on TFLM over the "
             "500 held-out MNIST test images of models/data (never trained or calibrated on). Guards as in "
             "`tflm-kit optimize`: top-1 agreement with the float model >= 95%, accuracy drop <= 1 point. "
             "Deployed flash: Cortex-M4 footprint data (flatbuffer + kernels + TFLM core, "
             "converter/tflm/footprint.py); arena: TFLM's Python runtime on this x86-64 host.", "",
             "| variant | flatbuffer B | deployed flash B (vs plain int8) | arena B (host) | agreement | "
             "accuracy float -> int8 | guards hold |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        holds = r["agreement"] >= 0.95 and r["accuracy_float"] - r["accuracy"] <= 0.01
        lines.append(f"| {r['name']} | {r['model_bytes']:,} | {r['flash']:,} ({r['flash'] - plain['flash']:+,}) | "
                     f"{r['arena']:,} | {r['agreement']:.1%} | {r['accuracy_float']:.1%} -> {r['accuracy']:.1%} | "
                     f"{'yes' if holds else 'no'} |")
    lines += device_table(rows) if device else ["", "(No firmware figures: TFLM_ROOT, arm-none-eabi-gcc or "
                                                "qemu-system-arm missing.)"]
    (REPO / "bench/demo_compression.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
