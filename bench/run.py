"""`make bench`: the kit against the MLPerf Tiny reference int8 models, one row per model.

For each model: float params; the MLPerf reference int8 .tflite bytes; the kit's plain PTQ int8
bytes; the kit's smallest deployment (prune/cluster + LUT) that keeps quality (<= 1 point accuracy
loss where labels exist, >= 99% top-1 agreement with float otherwise) and the recipe that made it;
measured arena; fidelity against the float model (top-1 agreement, RMSE, SQNR) and accuracy where
labels exist, all on TFLM; wall time per stage; and the kit's quantize+emit+validate time over a
bare TFLiteConverter.convert() of the same model in the same run.

    python -m bench.run [--only ic,kws] [--out build/bench]

Writes bench/results.md, bench/results.csv, bench/results.json (full rows: `--only` merges the other
models from it) and bench/results.png. Needs TFLM_KIT_SHARED_DATA.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import yaml

from converter import tf_env  # first: Keras 2 before TensorFlow loads
from converter import (EventLog, convert, dequantize, load_data, load_model, output_metrics, parse_recipe, quantize,
                       read_model, run_tflm)
from converter import strip_metadata as strip

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
LUT = {"lut": True}
# TFLM never reads names, signature defs, converter metadata, repeated weight zero points or the
# quantization of DECODE's encoded inputs (compress.strip); the stage checks TFLM outputs stay identical
LUT_STRIP = {"lut": True, "strip_metadata": True}


def _cluster(clusters: int, epochs: int, **extra) -> dict:
    return {"cluster": {"clusters": clusters, "per_channel": True, "preserve_sparsity": True, "epochs": epochs, **extra}}


# Each model: its base recipe (bundled, or overrides), the reference int8 file, and the compressed
# variants tried (smallest one that keeps quality wins). Labels exist for digits, IC and KWS (and
# SWW's 45 calibration windows); VWW and AD have no labeled data here.
MODELS = {
    "digits": {
        "title": "default (digits CNN)", "base": "models/recipes/default.yaml", "reference": None,
        "inputs": "MNIST subset, labeled (models/data)",
        "variants": {
            "prune 50% + cluster 16/ch + LUT": {"stages": [
                {"prune": {"final_sparsity": 0.5, "schedule": "polynomial", "epochs": 3}}, _cluster(16, 2)],
                "compress": LUT},
            "prune 50% + cluster 8/ch + LUT": {"stages": [
                {"prune": {"final_sparsity": 0.5, "schedule": "polynomial", "epochs": 3}},
                _cluster(8, 2, centroid_init="linear")],
                "compress": LUT},
            "distilled student (models/digits.py:build_student, 12 epochs)": {"stages": [
                {"distill": {"student_builder": str(REPO / "models/digits.py") + ":build_student",
                             "temperature": 4.0, "alpha": 0.1, "epochs": 12, "learning_rate": 0.003}}]},
        },
    },
    "ic": {
        "title": "IC (ResNet-8, CIFAR-10)", "base": "models/recipes/mlperf_ic.yaml",
        "reference": "image_classification/pretrainedResnet_quant.tflite",
        "inputs": "CIFAR-10 test (JPEG re-encoded), first 1,000, labeled; fine-tuned on 20k train",
        "variants": {
            "cluster 16/ch (1 epoch) + LUT + strip": {"stages": [_cluster(16, 1, batch_size=128)], "compress": LUT_STRIP},
            "cluster 8/ch (2 epochs) + LUT + strip": {"stages": [_cluster(8, 2, batch_size=128)], "compress": LUT_STRIP},
            # the three widest convolutions hold 87% of the weights: 2-bit indices there, 3-bit elsewhere
            "cluster 8/ch, conv2d_4/6/7 4/ch (2 epochs) + LUT + strip": {"stages": [_cluster(
                8, 2, batch_size=128, per_layer={"conv2d_4": 4, "conv2d_6": 4, "conv2d_7": 4})], "compress": LUT_STRIP},
        },
    },
    "kws": {
        "title": "KWS (DS-CNN, Speech Commands)", "base": "models/recipes/mlperf_kws.yaml",
        "reference": "keyword_spotting/kws_ref_model.tflite",
        "inputs": "Speech Commands v0.02 test subset, MFCC by the kit: 1,080 clips labeled (120 calibrate "
                  "and are the only fine-tune set)",
        "variants": {
            "cluster 16/ch (k-means, no fine-tune) + LUT + strip": {"stages": [_cluster(16, 0)], "compress": LUT_STRIP},
            "cluster 8/ch (k-means, no fine-tune) + LUT + strip": {"stages": [_cluster(8, 0)], "compress": LUT_STRIP},
            # only 120 labeled clips exist to fine-tune on: few epochs at a low rate, eval on the other 1,080
            "cluster 8/ch, 8 epochs fine-tune on 120 clips + LUT + strip": {"stages": [
                _cluster(8, 8, batch_size=16, learning_rate=1e-4)], "compress": LUT_STRIP},
            "cluster 8/ch, 1x1 convs 4/ch, 8 epochs fine-tune on 120 clips + LUT + strip": {"stages": [_cluster(
                8, 8, batch_size=16, learning_rate=1e-4,
                per_layer={f"conv2d_{i}": 4 for i in range(1, 5)})], "compress": LUT_STRIP},
        },
    },
    "vww": {
        "title": "VWW (MobileNetV1 0.25, 96x96)", "base": "models/recipes/mlperf_vww.yaml",
        "reference": "visual_wake_words/vww_96_int8.tflite",
        "override": {"data": {"builder": str(BENCH / "data.py") + ":vww_proxy"}, "quantize": {"calibration_samples": 200}},
        "inputs": "no VWW data: 200 CIFAR-10 test photos resized to 96x96, unlabeled (fidelity only)",
        "variants": {
            "cluster 16/ch (k-means, no fine-tune) + LUT": {"stages": [_cluster(16, 0)], "compress": LUT},
        },
    },
    "ad": {
        "title": "AD (FC autoencoder, ToyADMOS)", "base": "models/recipes/mlperf_ad.yaml",
        "reference": "anomaly_detection/ad01_int8.tflite",
        "inputs": "no ToyADMOS data: 100 seeded uniform inputs in [-1, 1] (fidelity only)",
        "variants": {
            "cluster 16/ch (k-means, no fine-tune) + LUT": {"stages": [_cluster(16, 0, loss="mse")], "compress": LUT},
        },
    },
    "sww": {
        "title": "SWW (1-D DS-CNN)", "base": None,
        "recipe": {"name": "mlperf_sww",
                   "model": {"path": "${TFLM_KIT_SHARED_DATA}/mlperf_tiny/streaming_wakeword/str_ww_ref_model.h5"},
                   "data": {"builder": str(BENCH / "data.py") + ":sww_windows"},
                   "quantize": {"calibration_samples": 45}, "golden": {"vectors": 10}},
        "reference": "streaming_wakeword/str_ww_ref_model.tflite",
        "inputs": "the 45 real calibration windows MLPerf ships, labeled (also the calibration set)",
        "variants": {
            "cluster 16/ch (k-means, no fine-tune) + LUT": {"stages": [_cluster(16, 0)], "compress": LUT},
        },
    },
}


def base_recipe(spec: dict) -> tuple[dict, Path]:
    if spec["base"] is None:
        return copy.deepcopy(spec["recipe"]), REPO / "bench"
    path = REPO / spec["base"]
    recipe = yaml.safe_load(path.read_text())
    for section, values in spec.get("override", {}).items():
        if section == "data":
            recipe["data"] = values
        else:
            recipe.setdefault(section, {}).update(values)
    return recipe, path.parent


def bare_convert_seconds(model, data, calibration_samples: int) -> float:
    """TFLiteConverter.convert() alone, int8 with int8 I/O, on the same calibration inputs."""
    tf = tf_env.tensorflow()
    calibration = data.x_calibration[:calibration_samples]

    def representative_dataset():
        for x in calibration:
            yield [x[np.newaxis].astype(np.float32)]

    converter_ = tf.lite.TFLiteConverter.from_keras_model(model)
    converter_.optimizations = [tf.lite.Optimize.DEFAULT]
    converter_.representative_dataset = representative_dataset
    converter_.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter_.inference_input_type = tf.int8
    converter_.inference_output_type = tf.int8
    started = time.perf_counter()
    converter_.convert()
    return time.perf_counter() - started


def fidelity(model_bytes: bytes, x: np.ndarray, float_out: np.ndarray, labels) -> dict:
    info = read_model(model_bytes)
    out = run_tflm(model_bytes, info, [quantize(x, info.inputs[0])])[0]
    return output_metrics(float_out, dequantize(out, info.outputs[0]), labels)


def run_recipe(recipe: dict, base_dir: Path, out: Path) -> tuple[dict, dict, float]:
    events = EventLog()  # phases timed from the flow's own events, not from its log lines
    started = time.perf_counter()
    manifest = convert(parse_recipe(recipe, base_dir=base_dir), out, force=True, events=events)
    end = time.perf_counter()
    content = json.loads((out / "manifest.json").read_text())
    # quantize + (compress) + golden/arena + emit + validate + write, without scoring the eval set
    # (float in Keras, int8 on TFLM): that is reported on its own, and eval_samples: 0 skips it
    split = next(s for s in content["stages"] if s["stage"] == "quantize")["seconds_split"]
    scoring = split["score_float"] + split["score_tflm"]
    kit_seconds = end - events.started_at("quantize") - scoring
    content["_scoring_seconds"] = scoring
    return content, events.phase_seconds(), kit_seconds if manifest is not None else end - started


def keeps_quality(metrics: dict, float_accuracy: float | None) -> bool:
    if float_accuracy is not None and "accuracy_quantized" in metrics:
        return metrics["accuracy_quantized"] >= float_accuracy - 0.01
    if "top1_agreement" in metrics:
        return metrics["top1_agreement"] >= 0.99
    return metrics["sqnr_db"] >= 20.0  # regression outputs (AD): no top-1 to agree on


def bench_model(key: str, spec: dict, out_root: Path, log) -> dict:
    recipe, base_dir = base_recipe(spec)
    shared = Path(os.environ["TFLM_KIT_SHARED_DATA"]) / "mlperf_tiny"
    parsed = parse_recipe(recipe, base_dir=base_dir)
    tf_env.reseed(parsed.seed)

    if key == "digits":  # the bundled builder returns an untrained model: train it once, as the demo does
        from converter import TrainSettings, run_stage

        model = load_model(parsed)
        data = load_data(parsed, tuple(model.input_shape[1:]))
        train_settings = TrainSettings(**next(s["train"] for s in recipe["stages"] if "train" in s))
        model = run_stage("train", model, train_settings, data, parsed.seed).model
        float_path = out_root / "digits_float.h5"
        out_root.mkdir(parents=True, exist_ok=True)
        model.save(float_path)
        recipe["model"] = {"path": str(float_path)}
        recipe["stages"] = []
        parsed = parse_recipe(recipe, base_dir=base_dir)
    else:
        recipe["stages"] = []
        model = load_model(parsed)
        data = load_data(parsed, tuple(model.input_shape[1:]))

    params = int(model.count_params())
    x_eval = data.x_eval if data.x_eval is not None else data.x_calibration
    labels = data.y_eval if data.labeled_eval else None
    float_out = model.predict(x_eval, batch_size=128, verbose=0)
    float_accuracy = None if labels is None or float_out.ndim != 2 else float(np.mean(float_out.argmax(1) == labels))
    bare_cold = bare_convert_seconds(model, data, parsed.quantize.calibration_samples)

    log(f"[{key}] plain PTQ")
    plain_manifest, plain_phases, plain_kit = run_recipe(recipe, base_dir, out_root / key / "plain")
    # the first conversion in a process pays one-off costs; time the bare call warm as well
    bare = min(bare_cold, bare_convert_seconds(model, data, parsed.quantize.calibration_samples))
    plain_bytes = (out_root / key / "plain" / "model.tflite").read_bytes()
    plain_fid = fidelity(plain_bytes, x_eval, float_out, labels)

    reference_bytes = reference_fid = reference_stripped = None
    if spec["reference"]:
        reference = (shared / spec["reference"]).read_bytes()
        reference_bytes = len(reference)
        # the reference file as shipped carries names and metadata too: say what it is without them,
        # counted only if TFLM gives the same output bytes
        try:
            stripped_reference = strip(reference)[0]
            info, x_check = read_model(reference), x_eval[:50]
            same = [np.array_equal(a, b) for a, b in zip(
                run_tflm(reference, info, [quantize(x_check, info.inputs[0])]),
                run_tflm(stripped_reference, read_model(stripped_reference), [quantize(x_check, info.inputs[0])]))]
            reference_stripped = len(stripped_reference) if all(same) else None
        except Exception:  # a reference TFLM cannot run: no stripped figure, the row still comes out
            reference_stripped = None
        try:
            reference_fid = fidelity(reference, x_eval, float_out, labels)
        except Exception as exc:  # report, don't stop the benchmark
            reference_fid = {"error": " ".join(str(exc).split())[:120]}

    variants = []
    for name, change in spec["variants"].items():
        log(f"[{key}] {name}")
        variant = copy.deepcopy(recipe) | copy.deepcopy(change)
        folder = out_root / key / ("v" + str(len(variants)))
        try:
            manifest, phases, _ = run_recipe(variant, base_dir, folder)
        except Exception as exc:
            variants.append({"name": name, "error": " ".join(str(exc).split())[:200]})
            continue
        deployed = (folder / "model.tflite").read_bytes()
        variants.append({"name": name, "manifest": manifest, "phases": phases, "bytes": len(deployed),
                         "fidelity": fidelity(deployed, x_eval, float_out, labels)})
    usable = [v for v in variants if "bytes" in v]
    good = [v for v in usable if keeps_quality(v["fidelity"], float_accuracy)]
    best = min(good or usable, key=lambda v: v["bytes"]) if usable else None

    return {
        "key": key, "title": spec["title"], "inputs": spec["inputs"], "params": params,
        "float_accuracy": float_accuracy, "reference_bytes": reference_bytes, "reference_stripped_bytes": reference_stripped,
        "reference_fidelity": reference_fid,
        "plain": {"bytes": len(plain_bytes), "arena": plain_manifest["arena_bytes"], "fidelity": plain_fid,
                  "phases": plain_phases, "kit_seconds": round(plain_kit, 2),
                  "scoring_seconds": round(plain_manifest["_scoring_seconds"], 2), "eval_samples": len(x_eval)},
        "bare_convert_seconds": round(bare, 2),
        "best": None if best is None else {
            "recipe": best["name"], "bytes": best["bytes"], "arena": best["manifest"]["arena_bytes"],
            "fidelity": best["fidelity"], "phases": best["phases"], "keeps_quality": best in good,
            "lut": next((s for s in best["manifest"]["stages"] if s["stage"] == "compress"), None),
            "bit_exact": all(v["equal"] == v["total"] for k, v in best["manifest"]["validation"].items()
                             if k.startswith("tflm_vs_") and "litert" not in k)},
        "variants": [{k: v for k, v in variant.items() if k not in ("manifest",)} for variant in variants],
    }


# ---------------------------------------------------------------- output

def _pct(x):
    return "—" if x is None else f"{100 * x:.1f}%"


def _db(x):
    return "—" if x is None else ("∞" if x == float("inf") else f"{x:.1f}")


def _kb(n):
    return "—" if n is None else f"{n:,}"


def _stripped(lut: dict) -> str:
    saved = (lut.get("strip") or {}).get("bytes_saved")
    return "—" if not saved else f"{sum(saved.values()):,} (" + ", ".join(
        f"{k.replace('_', ' ')} {v:,}" for k, v in saved.items()) + ")"


def csv_rows(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        best, plain = r["best"] or {}, r["plain"]
        bf, pf = best.get("fidelity", {}), plain["fidelity"]
        ref = r["reference_fidelity"] or {}
        out.append({
            "model": r["key"], "float_params": r["params"], "reference_int8_bytes": r["reference_bytes"],
            "reference_stripped_bytes": r.get("reference_stripped_bytes"),
            "kit_ptq_int8_bytes": plain["bytes"], "kit_best_bytes": best.get("bytes"), "kit_best_recipe": best.get("recipe"),
            "best_vs_reference": None if not r["reference_bytes"] or not best else round(best["bytes"] / r["reference_bytes"], 3),
            "arena_ptq_bytes": plain["arena"], "arena_best_bytes": best.get("arena"),
            "float_accuracy": r["float_accuracy"], "reference_accuracy": ref.get("accuracy_quantized"),
            "ptq_accuracy": pf.get("accuracy_quantized"), "best_accuracy": bf.get("accuracy_quantized"),
            "reference_top1_agreement": ref.get("top1_agreement"), "ptq_top1_agreement": pf.get("top1_agreement"),
            "best_top1_agreement": bf.get("top1_agreement"),
            "reference_sqnr_db": ref.get("sqnr_db"), "ptq_sqnr_db": pf.get("sqnr_db"), "best_sqnr_db": bf.get("sqnr_db"),
            "ptq_rmse": pf.get("rmse"), "best_rmse": bf.get("rmse"), "best_keeps_quality": best.get("keeps_quality"),
            "best_bit_exact_on_tflm": best.get("bit_exact"),
            "bare_convert_s": r["bare_convert_seconds"], "kit_quantize_emit_validate_s": plain["kit_seconds"],
            "kit_over_bare": round(plain["kit_seconds"] / max(r["bare_convert_seconds"], 1e-9), 2),
            "eval_scoring_s": plain["scoring_seconds"],
            "kit_with_scoring_over_bare": round((plain["kit_seconds"] + plain["scoring_seconds"])
                                                / max(r["bare_convert_seconds"], 1e-9), 2),
            "best_stage_seconds": json.dumps(best.get("phases", {})), "inputs": r["inputs"],
        })
    return out


def markdown(rows: list[dict], seconds: float, rerun: list[str] | None = None) -> str:
    kept = [r["key"] for r in rows if rerun is not None and r["key"] not in rerun]
    how = (f"Rows {', '.join(rerun)} regenerated by `python -m bench.run --only {','.join(rerun)}` "
           f"({seconds / 60:.1f} min); rows {', '.join(kept)} kept from the previous run "
           "(merged from its results.json). ") if kept else f"Produced by `make bench`, total {seconds / 60:.1f} min. "
    lines = [
        "# tflm-kit benchmark: MLPerf Tiny reference models",
        "",
        how + f"Machine: {platform.machine()} ({os.cpu_count()} cores, shared). "
        "All int8 figures are from TFLM (the device runtime), run on the host. "
        "Fidelity compares each int8 model's dequantized outputs with the float Keras model on the same inputs.",
        "",
        "## Size and quality",
        "",
        "| model | float params | MLPerf ref int8 B | kit PTQ int8 B | kit best B (× ref) | best recipe | arena B (PTQ → best) | "
        "accuracy float / ref / PTQ / best | top-1 agreement ref / PTQ / best | SQNR dB ref / PTQ / best | inputs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        best, plain = r["best"] or {}, r["plain"]
        bf, pf, ref = best.get("fidelity", {}), plain["fidelity"], r["reference_fidelity"] or {}
        ratio = f" ({best['bytes'] / r['reference_bytes']:.2f}×)" if best and r["reference_bytes"] else ""
        flag = "" if best.get("keeps_quality", True) else " ⚠ quality target missed"
        acc = " / ".join(_pct(x) for x in (r["float_accuracy"], ref.get("accuracy_quantized"),
                                           pf.get("accuracy_quantized"), bf.get("accuracy_quantized")))
        agree = " / ".join(_pct(x) for x in (ref.get("top1_agreement"), pf.get("top1_agreement"), bf.get("top1_agreement")))
        sqnr = " / ".join(_db(x) for x in (ref.get("sqnr_db"), pf.get("sqnr_db"), bf.get("sqnr_db")))
        lines.append(f"| {r['title']} | {r['params']:,} | {_kb(r['reference_bytes'])} | {plain['bytes']:,} | "
                     f"{_kb(best.get('bytes'))}{ratio} | {best.get('recipe', '—')}{flag} | "
                     f"{plain['arena']:,} → {_kb(best.get('arena'))} | {acc} | {agree} | {sqnr} | {r['inputs']} |")
    lines += [
        "",
        "“kit best” is the smallest variant tried that keeps quality: ≤ 1 point accuracy loss against float where labels "
        "exist, else ≥ 99% top-1 agreement (SQNR ≥ 20 dB for the autoencoder). Every LUT-compressed model passed "
        "bit-exact validation against its uncompressed int8 model on TFLM. The arena grows with LUT compression: TFLM's "
        "DECODE expands each compressed tensor into the arena just before the operator that reads it.",
        "",
        "“+ strip” variants also set `compress: {strip_metadata: true}`: tensor names, signature defs, the "
        "converter's metadata, per-channel zero-point arrays that repeat one value (TFLM's allocator expands a single "
        "value) and the quantization of DECODE's encoded inputs are dropped; the stage fails unless TFLM's outputs "
        "stay byte-identical. The MLPerf reference files keep all of that, so the ratio is also given against the "
        "reference stripped the same way:",
        "",
    ]
    for r in rows:
        best, ref, ref_stripped = r["best"] or {}, r["reference_bytes"], r.get("reference_stripped_bytes")
        if ref and ref_stripped and best.get("lut", {}) and (best["lut"] or {}).get("strip"):
            lines.append(f"- {r['title']}: reference {ref:,} B, stripped {ref_stripped:,} B; kit best "
                         f"{best['bytes']:,} B = {best['bytes'] / ref:.2f}× the shipped file (target ≤ 0.50×: "
                         f"{'met' if best['bytes'] <= 0.5 * ref and best.get('keeps_quality') else 'missed'}), "
                         f"{best['bytes'] / ref_stripped:.2f}× the stripped one.")
    lines += [
        "",
        "## Time",
        "",
        "| model | bare TFLiteConverter.convert() s | kit convert+emit+validate s | ratio | eval scoring s (inputs) "
        "| ratio with scoring | best recipe: seconds per stage |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        phases = (r["best"] or {}).get("phases", {})
        plain, bare = r["plain"], max(r["bare_convert_seconds"], 1e-9)
        lines.append(f"| {r['title']} | {r['bare_convert_seconds']:.1f} | {plain['kit_seconds']:.1f} | "
                     f"{plain['kit_seconds'] / bare:.1f}× | {plain['scoring_seconds']:.1f} ({plain['eval_samples']:,}) | "
                     f"{(plain['kit_seconds'] + plain['scoring_seconds']) / bare:.1f}× | "
                     + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()) + " |")
    lines += [
        "",
        "Bare time: the faster of two `convert()` calls (one before the kit's run, one after) with the same "
        "calibration inputs. The kit's convert+emit+validate time (plain PTQ recipe) covers the int8 conversion "
        "(the same converter call), golden vectors, the arena bisection, C/C++ emission and bit-for-bit validation "
        "on TFLM and LiteRT. Scoring quality over the eval set (the float model in Keras and the int8 model on TFLM, "
        "one inference at a time) is a measurement the kit adds, not part of making the artifacts: it is shown on its "
        "own, and the last ratio includes it. A recipe with `eval_samples: 0` skips it.",
        "",
        "## LUT compression per model (best recipe)",
        "",
        "| model | tensors compressed | index bits | tensor bytes before → after | model bytes before → after "
        "| of which strip_metadata saved B |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lut = (r["best"] or {}).get("lut")
        if not lut or not lut.get("tensors"):
            lines.append(f"| {r['title']} | 0 | — | — | — | — |")
            continue
        bits = sorted({t["index_bits"] for t in lut["tensors"]})
        lines.append(f"| {r['title']} | {len(lut['tensors'])} | {', '.join(map(str, bits))} | "
                     f"{lut['tensor_bytes_before']:,} → {lut['tensor_bytes_after']:,} | "
                     f"{lut['bytes_before']:,} → {lut['bytes_after']:,} | {_stripped(lut)} |")
    lines += ["", "## Every variant tried", "",
              "| model | variant | bytes (× ref) | accuracy (float) | top-1 agreement | SQNR dB | keeps quality |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        for v in r["variants"]:
            if "bytes" not in v:
                continue
            f = v["fidelity"]
            ratio = f" ({v['bytes'] / r['reference_bytes']:.2f}×)" if r["reference_bytes"] else ""
            keeps = keeps_quality(f, r["float_accuracy"])
            lines.append(f"| {r['key']} | {v['name']} | {v['bytes']:,}{ratio} | {_pct(f.get('accuracy_quantized'))} "
                         f"({_pct(r['float_accuracy'])}) | {_pct(f.get('top1_agreement'))} | {_db(f.get('sqnr_db'))} "
                         f"| {'yes' if keeps else 'no'} |")
    errors = [(r["title"], v["name"], v["error"]) for r in rows for v in r["variants"] if "error" in v]
    if errors:
        lines += ["", "## Variants that failed", ""] + [f"- {t}, {n}: {e}" for t, n, e in errors]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        def fid(metrics):
            return metrics.get("top1_agreement", metrics.get("cosine_similarity"))
        points = [("PTQ", r["plain"]["bytes"], fid(r["plain"]["fidelity"]))]
        if r["best"]:
            points.append(("best", r["best"]["bytes"], fid(r["best"]["fidelity"])))
        if r["reference_bytes"] and r["reference_fidelity"] and "error" not in r["reference_fidelity"]:
            points.append(("ref", r["reference_bytes"], fid(r["reference_fidelity"])))
        line = ax.plot([p[1] for p in points[:2]], [p[2] for p in points[:2]], marker="o", label=r["key"])[0]
        for label, x, y in points:
            ax.annotate(f"{r['key']} {label}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            if label == "ref":
                ax.plot([x], [y], marker="x", color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("deployed bytes (.tflite, log scale)")
    ax.set_ylabel("top-1 agreement with float (AD: cosine similarity)")
    ax.set_title("tflm-kit: deployed bytes vs fidelity (o kit, x MLPerf reference)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated model keys: " + ",".join(MODELS))
    parser.add_argument("--out", default=str(REPO / "build" / "bench"))
    parser.add_argument("--results", default=str(BENCH))
    args = parser.parse_args(argv)
    if "TFLM_KIT_SHARED_DATA" not in os.environ:
        raise SystemExit("error: TFLM_KIT_SHARED_DATA is not set — fix: export it (make bench sets ../shared/data)")
    keys = [k for k in (args.only.split(",") if args.only else MODELS) if k]
    started = time.perf_counter()
    results = Path(args.results)
    # --only regenerates some rows: keep the others from the last run's full rows
    previous = next((p for p in (results / "results.json", Path(args.out) / "results.json") if p.is_file()), None)
    kept = {r["key"]: r for r in json.loads(previous.read_text())} if previous and args.only else {}
    rows = []
    for key in keys:
        model_started = time.perf_counter()
        rows.append(bench_model(key, MODELS[key], Path(args.out), lambda m: print(m, flush=True)))
        print(f"[{key}] done in {time.perf_counter() - model_started:.0f} s", flush=True)
    seconds = time.perf_counter() - started
    fresh = {r["key"]: r for r in rows}
    rows = [fresh.get(k) or kept[k] for k in MODELS if k in fresh or k in kept]
    results.mkdir(parents=True, exist_ok=True)
    (results / "results.md").write_text(markdown(rows, seconds, keys if kept else None))
    table = csv_rows(rows)
    with open(results / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    (Path(args.out) / "results.json").write_text(json.dumps(rows, indent=1, default=str))
    (results / "results.json").write_text(json.dumps(rows, indent=1, default=str))
    plot(rows, results / "results.png")
    print(f"wrote {results / 'results.md'}, results.csv, results.png in {seconds / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
