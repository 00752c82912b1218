"""Automatic flatbuffer fixes of convert: rewrites of converter output that TFLM would run wrongly,
each accepted only once proven equal to LiteRT's reference kernels on the original model.

Today one: SPACE_TO_BATCH_ND -> CONV_2D/DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND (how the TFLite
converter lowers a dilated convolution, with static shapes TFLM trusts and LiteRT corrects) folded
into one dilated convolution (converter/tflite/dilation.py). It runs on the converter's output and
on a .tflite source, before the flatbuffer stages, so compression, the arena, the C array and the
golden vectors are all of the rewritten model. What is not folded is refused afterwards by the
runtime consistency check (converter/tflm/consistency.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compare.outputs import bit_exact, compare_outputs, first_mismatch
from ..errors import KitError
from ..tflite.dilation import fold_dilated_convolutions
from ..tflm.runners import run_model


@dataclass(frozen=True)
class Rewritten:
    model_bytes: bytes
    record: dict | None       # for the manifest's "rewrites", None when nothing was rewritten


def fold_and_prove(model_bytes: bytes, inputs: list[np.ndarray]) -> Rewritten:
    """The model with its dilated-convolution chains folded, proven on `inputs` (the golden vectors):
    LiteRT's reference kernels must give the folded model the outputs they give the original, bit for
    bit (LiteRT resizes the chain's tensors, so it computes the original correctly). TFLM on the folded
    model is then held to the rule every conversion is (flows/convert_output.check_litert_differences):
    equal to LiteRT but for FULLY_CONNECTED's explained 1-LSB rounding. An unproven fold is a KitError."""
    folded = fold_dilated_convolutions(model_bytes)
    if not folded.folds:
        return Rewritten(model_bytes, None)
    expected = run_model(model_bytes, inputs, "litert_reference").outputs
    actual = run_model(folded.model_bytes, inputs, "litert_reference").outputs
    proof = compare_outputs(expected, actual)
    if not bit_exact(proof):
        raise KitError(f"folding {len(folded.folds)} dilated convolution(s) into "
                       f"{', '.join(f.op for f in folded.folds)} changed LiteRT's reference outputs "
                       f"({first_mismatch(expected, actual)})",
                       "report this with the model; set validation.rewrite_dilated_convolutions: false to see "
                       "the unfolded model's own refusal", code="rewrite-unproven")
    on_tflm = compare_outputs(expected, run_model(folded.model_bytes, inputs, "tflm").outputs)
    record = folded.as_dict() | {"proof": {"litert_reference_rewritten_vs_original": proof,
                                           "tflm_rewritten_vs_litert_reference_original": on_tflm}}
    return Rewritten(folded.model_bytes, record)


def rewrite_note(record: dict) -> str:
    """report.md's line for a rewrite."""
    folds = ", ".join(f"{f['op']} dilation {f['dilation_h_w'][0]}x{f['dilation_h_w'][1]} {f['padding']}"
                      for f in record["folds"])
    before, after = record["operators_before"], record["operators_after"]
    changed = ", ".join(f"{op} {before.get(op, 0)}->{after.get(op, 0)}" for op in sorted(set(before) | set(after))
                        if before.get(op, 0) != after.get(op, 0))
    proof, on_tflm = (record["proof"][key] for key in ("litert_reference_rewritten_vs_original",
                                                        "tflm_rewritten_vs_litert_reference_original"))
    return (f"- Rewrite: SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND chains folded into one dilated convolution ({folds}); "
            f"operators {changed}; LiteRT's reference kernels give the rewritten model the original's outputs on "
            f"{proof['equal']}/{proof['total']} golden vectors (TFLM on it: {on_tflm['equal']}/{on_tflm['total']} "
            f"equal, max {on_tflm['max_lsb']} LSB)")
