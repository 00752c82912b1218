"""How long `tflm-kit validate` takes on 1,000 real inputs of the MLPerf Tiny KWS reference model.

Inputs: MFCC features (the kit's MLPerf front-end) of the first 1,000 Speech Commands clips,
with the float SavedModel for fidelity. Writes bench/validate_kws.md. Time is reported, not
asserted; the feature extraction is timed separately from the validation itself.

    python -m bench.validate_kws
"""
from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from converter import tf_env  # noqa: F401  (Keras 2 before TensorFlow loads)
from converter import kws_mfcc, validate_model

BENCH = Path(__file__).resolve().parent
VECTORS = 1000


def main() -> None:
    shared = Path(os.environ.get("TFLM_KIT_SHARED_DATA", BENCH.parent.parent / "shared" / "data"))
    kws = shared / "mlperf_tiny/keyword_spotting"
    clips = np.load(shared / kws_mfcc.SUBSET)
    started = time.perf_counter()
    features = kws_mfcc.mfcc(clips["x"][:VECTORS])
    labels = kws_mfcc.to_model_labels(clips["y"][:VECTORS], clips["labels"])
    feature_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "kws_1000.npz"
        np.savez(data, x=features, y=labels)
        started = time.perf_counter()
        report = validate_model(kws / "kws_ref_model.tflite", data=data, vectors=VECTORS, log=lambda _: None)
        validate_seconds = time.perf_counter() - started
        started = time.perf_counter()
        with_float = validate_model(kws / "kws_ref_model.tflite", data=data, float_model=kws / "kws_ref_model",
                                    vectors=VECTORS, log=lambda _: None)
        float_seconds = time.perf_counter() - started
    outputs = report["outputs"]
    reference_ops = report["operators"]["litert_reference"]["operators"]
    first = ", ".join(f"{op} {row['vectors_first_differing']}/{VECTORS}" for op, row in reference_ops.items()
                      if row["vectors_first_differing"]) or "none"
    fidelity = with_float["fidelity"]
    lines = [
        "# Validating 1,000 real inputs of the MLPerf Tiny KWS reference model",
        "",
        f"Produced by `python -m bench.validate_kws` (part of `make bench`) on {platform.machine()}, 2 shared cores.",
        "",
        "| step | seconds |",
        "|---|---|",
        f"| MFCC features of 1,000 Speech Commands clips (kit front-end) | {feature_seconds:.1f} |",
        f"| `validate` (child-process check, TFLM + 2 LiteRT kernel sets at the outputs, op by op on both) | {validate_seconds:.1f} |",
        f"| `validate --float-model` (adds the float SavedModel and per-layer SQNR) | {float_seconds:.1f} |",
        "",
        f"Results: TFLM vs LiteRT reference {outputs['tflm_vs_litert_reference']['equal']}/{VECTORS} vectors equal "
        f"(max {outputs['tflm_vs_litert_reference']['max_lsb']} LSB); vs LiteRT optimized "
        f"{outputs['tflm_vs_litert_optimized']['equal']}/{VECTORS} (max {outputs['tflm_vs_litert_optimized']['max_lsb']} LSB); "
        f"first differing operator (reference kernels): {first}. Fidelity vs float: top-1 agreement "
        f"{fidelity['top1_agreement']:.3f}, SQNR {fidelity['sqnr_db']:.1f} dB, accuracy float "
        f"{fidelity['accuracy_float']:.3f} / int8 {fidelity['accuracy_quantized']:.3f}.",
        "",
    ]
    (BENCH / "validate_kws.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
