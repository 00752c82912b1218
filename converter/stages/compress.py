"""The `compress` step (after quantize): smaller flatbuffer, TFLM outputs byte-identical.

The model in and out is the .tflite flatbuffer (bytes). The work lives in converter/tflite/:
- `int4: true` (tflite/compression/int4.py): CONV_2D / DEPTHWISE_CONV_2D / per-tensor
  FULLY_CONNECTED filters requantized to 16 levels (lossy: the record holds the agreement with
  the int8 model) and stored as packed INT4; the int8 model with the same 16 levels (the "twin")
  becomes the reference every later check compares with;
- `lut` / `prune` (tflite/compression/plan.py): per constant INT8 tensor, the smaller of a LUT
  (b-bit indices into value tables, TFLM's own compressor) and a PRUNE encoding (bitmask + kept
  values, the kit's encoder), decoded by TFLM_DECODE; only when the model shrinks;
- `strip_metadata: true` (tflite/strip.py): drops what TFLM never reads;
- `memory_plan: offline` (tflite/memory_plan.py, tflm/offline_plan.py): an OfflineMemoryAllocation
  plan tighter than TFLM's greedy planner, kept only when TFLM's measured arena shrinks with it.
Then TFLM runs the new and the reference model over real inputs, and the stage fails unless every
output byte is identical (the pipeline checks the golden vectors again).
"""
from __future__ import annotations

import time

import numpy as np

from typing import Literal, Optional

from pydantic import Field

from ..compare.outputs import bit_exact, compare_outputs
from ..errors import KitError, foreign_text
from ..inputs.dataset import Dataset
from ..tflite.compression import int4, lut
from ..tflite.compression.decode_insert import insert_decode
from ..tflite.compression.plan import Plan, plan
from ..tflite.compression.prune import encode_prune
from ..tflite.model import read_model
from ..tflite.strip import CONVERTER_METADATA, strip  # noqa: F401  (bench and tests import them from here)
from ..tflite.tflite_model import TfliteModel
from ..tflm.offline_plan import apply_offline_plan
from ..tflm.runners import quantize_inputs, run_tflm
from .base import FlatbufferStage, StageContext, StageRecord, StageResult, StageSettings, register


class CompressSettings(StageSettings):
    """Compression of the quantized flatbuffer (after quantize): LUT and PRUNE (decoded by TFLM_DECODE), int4."""

    lut: bool = True
    max_index_bits: int = Field(7, ge=1, le=7, description="leave tensors that need wider indices as they are")
    verify_samples: int = Field(200, ge=1, le=100_000,
                                description="real inputs on which TFLM must give identical bytes before and after")
    strip_metadata: bool = Field(False, description="drop what TFLM never reads: names, signatures, converter "
                                 "metadata, repeated weight zero points, encoded tensors' quantization")
    prune: bool = Field(False, description="store sparse int8 tensors as TFLM DECODE PRUNE (bitmask + kept values) "
                        "where that is smaller than LUT (or than the raw tensor)")
    int4: bool = Field(False, description="requantize CONV_2D/DEPTHWISE_CONV_2D/per-tensor FULLY_CONNECTED filters "
                       "to 16 levels and store them as packed INT4 (lossy; later checks compare with the int8 "
                       "model that has the same 16 levels)")
    int4_layers: Optional[list[str]] = Field(None, description="with int4: only the filters whose tensor name "
                                             "contains one of these (e.g. layer names); default: all eligible")
    memory_plan: Literal["none", "offline"] = Field("none", description="offline: write an OfflineMemoryAllocation "
                                                    "plan tighter than TFLM's greedy one, kept only when TFLM's "
                                                    "measured arena shrinks (and outputs stay byte-identical)")


@register
class Compress(FlatbufferStage):
    name = "compress"
    Settings = CompressSettings

    def run(self, model_bytes: bytes, settings: CompressSettings, context: StageContext) -> StageResult:
        # not transform(): besides the model and the details, the stage hands on its reference
        started = time.perf_counter()
        compressed, details, reference = compress_model(model_bytes, settings, context.data)
        record = StageRecord(self.name, settings.model_dump(), details, seconds=round(time.perf_counter() - started, 2))
        return StageResult(compressed, record, reference=reference if reference != model_bytes else None)

    def report_note(self, record: StageRecord) -> str:
        memory_plan = record.details.get("memory_plan") or {}
        planned = [memory_plan["note"]] if memory_plan else []  # kept or why not: the user asked for it
        return "; ".join(part for part in [self._encoding_note(record)] + planned if part)

    @staticmethod
    def _encoding_note(record: StageRecord) -> str:
        tensors = record.details.get("tensors") or []
        if not tensors and not (record.details.get("int4") or {}).get("tensors"):
            return record.details.get("note", "")
        lut = [t for t in tensors if "index_bits" in t]
        bits = sorted({t["index_bits"] for t in lut})
        parts = [f"{len(lut)} tensors LUT-compressed ({'/'.join(map(str, bits))}-bit indices)"] if lut else []
        if len(tensors) > len(lut):
            parts.append(f"{len(tensors) - len(lut)} PRUNE-encoded")
        int4_record = record.details.get("int4") or {}
        if int4_record.get("tensors"):
            # int4 is lossy: say how far the model moved, since the quality line shows the int8 model's
            parts.append(f"{len(int4_record['tensors'])} int4 filters (top-1 agreement with the int8 model "
                         f"{int4_record['top1_agreement_vs_int8']:.1%})")
        return (", ".join(parts) + f", model {record.details['bytes_before']:,} → {record.details['bytes_after']:,} B")


def run(model_bytes: bytes, settings: CompressSettings, data, seed: int = 0, **context) -> StageResult:
    return Compress().run(model_bytes, settings, StageContext(data, seed, **context))


def compress_model(model_bytes: bytes, settings: CompressSettings, data: Dataset) -> tuple[bytes, dict, bytes]:
    """(compressed model, the record's details, the reference model TFLM must match byte for byte)."""
    record: dict = {"bytes_before": len(model_bytes)}
    reference, base = model_bytes, model_bytes
    if settings.int4:
        reference, base, record["int4"] = _int4(model_bytes, data, settings)
    chosen = plan(base, settings.lut, settings.prune, settings.max_index_bits) \
        if settings.lut or settings.prune else Plan()
    compressed, note = base, None
    if not chosen.choices:
        methods = "/".join(m for m, on in (("LUT", settings.lut), ("PRUNE", settings.prune)) if on) or "LUT"
        note = f"no tensor qualified for {methods} compression"
    else:
        compressed = encode(base, chosen)
        if len(compressed) >= len(base):
            # DECODE operators, the new tensors and buffer alignment cost bytes of their own; seen on
            # the MLPerf KWS DS-CNN at 16 clusters: tensors 19,712 -> 15,264 B, model 48,480 -> 49,328 B.
            note = (f"{'LUT' if not chosen.prune else 'DECODE'} compression would grow the model ({len(base)} -> "
                    f"{len(compressed)} B: DECODE operators and tensor metadata outweigh the index savings)")
            record["rejected"] = [c.as_dict() for c in chosen.choices]
            compressed, chosen = base, Plan(skipped=chosen.skipped)
    if settings.strip_metadata:
        compressed, record["strip"] = strip_checked(compressed)
    if settings.memory_plan == "offline":
        compressed, result = apply_offline_plan(compressed)
        record["memory_plan"] = result.as_dict()
    if compressed == model_bytes:
        record.update({"bytes_after": len(model_bytes), "tensors": [], "skipped": chosen.skipped,
                       "verification": None, "note": f"{note}; the model is unchanged"})
        return model_bytes, record, model_bytes
    verification = verify_identical(reference, compressed, data, settings.verify_samples,
                                    _what(chosen, settings))
    record.update({
        "bytes_after": len(compressed),
        "tensor_bytes_before": sum(c.bytes_before for c in chosen.choices),
        "tensor_bytes_after": sum(c.bytes_after for c in chosen.choices),
        "decode_operators": read_model(compressed).operator_counts.get("TFLM_DECODE", 0),
        "largest_decoded_tensor_bytes": max((c.bytes_before for c in chosen.choices), default=0),
        "tensors": [c.as_dict() for c in chosen.choices],
        "skipped": chosen.skipped,
        "verification": verification,
    })
    if note:
        done = [what for what, on in (("int4 filters", settings.int4 and record["int4"]["tensors"]),
                                      ("stripped", settings.strip_metadata),
                                      ("memory-planned", (record.get("memory_plan") or {}).get("kept"))) if on]
        record["note"] = f"{note}; only {' and '.join(done)}"
    return compressed, record, reference


def encode(model_bytes: bytes, chosen: Plan) -> bytes:
    """LUT tensors through TFLM's compressor, then PRUNE tensors through the kit's encoder."""
    compressed = lut.compress_bytes(model_bytes, chosen.lut) if chosen.lut else model_bytes
    if not chosen.prune:
        return compressed
    # TFLM's compressor appends tensors and keeps the index of every tensor it does not encode;
    # check that before the PRUNE pass writes to those indices.
    after_lut = TfliteModel.from_bytes(compressed)
    encoded = {}
    for choice in chosen.prune:
        candidate = chosen.candidates[(choice.subgraph, choice.tensor)]
        tensor = after_lut.subgraphs[choice.subgraph].tensors[choice.tensor]
        if after_lut.data(tensor) != candidate.array.tobytes():
            raise KitError(f"tensor {choice.name} moved when TFLM's LUT compressor rewrote the model",
                           "set compress.lut: false (PRUNE alone) and report this with the model")
        encoded[(choice.subgraph, choice.tensor)] = encode_prune(candidate)
    return insert_decode(compressed, encoded)


def _int4(model_bytes: bytes, data: Dataset, settings: CompressSettings) -> tuple[bytes, bytes, dict]:
    """(int8 twin, int4 model, record): the lossy requantization measured against the int8 model."""
    twin, choices = int4.requantize(model_bytes, settings.int4_layers)
    if not choices:
        return model_bytes, model_bytes, {"tensors": [], "note": "no CONV_2D, DEPTHWISE_CONV_2D or per-tensor "
                                                               "FULLY_CONNECTED filter to store as int4"}
    packed = int4.pack(twin, choices)
    expected, requantized = _run_both(model_bytes, twin, data, settings.verify_samples)
    agreement = float(np.mean(expected[0].reshape(len(expected[0]), -1).argmax(1) ==
                              requantized[0].reshape(len(requantized[0]), -1).argmax(1)))
    loss = compare_outputs(expected, requantized)
    return twin, packed, {"tensors": [c.as_dict() for c in choices], "requantization_vs_int8": loss,
                          "top1_agreement_vs_int8": round(agreement, 4)}


def _run_both(first: bytes, second: bytes, data: Dataset, samples: int) -> tuple[list, list]:
    info = read_model(first)
    x, _ = data.spread_inputs(samples)
    inputs = quantize_inputs(x, info, data.input_names)
    return run_tflm(first, inputs), run_tflm(second, inputs)


def verify_identical(reference: bytes, compressed: bytes, data: Dataset, samples: int, what: str) -> dict:
    """TFLM's outputs of both models on real inputs; a KitError unless every byte is equal."""
    expected, actual = _run_both(reference, compressed, data, samples)
    verification = compare_outputs(expected, actual) | {"inputs": data.spread_inputs(samples)[1], "runtime": "tflm"}
    if not bit_exact(verification):
        raise KitError(f"the {what} model differs from the uncompressed one on TFLM "
                       f"({verification['equal']}/{verification['total']} vectors equal, "
                       f"max {verification['max_lsb']} LSB)",
                       "remove the compress step from the recipe and report this with the model")
    return verification


def _what(chosen: Plan, settings: CompressSettings) -> str:
    done = (("int4-packed", settings.int4), ("LUT-compressed", chosen.lut), ("PRUNE-encoded", chosen.prune),
            ("stripped", settings.strip_metadata), ("memory-planned", settings.memory_plan == "offline"))
    return " and ".join(name for name, on in done if on)


def strip_checked(model_bytes: bytes) -> tuple[bytes, dict]:
    try:
        return strip(model_bytes)
    except Exception as exc:
        raise KitError(f"stripping the model's metadata failed: {foreign_text(exc)}",
                       "set compress.strip_metadata: false and report this with the model") from None
