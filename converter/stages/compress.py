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

Each method is a row of stages/compressors.COMPRESSORS (its settings, how it encodes, its typed record);
this module dispatches on the table and proves the result. Adding a method: docs/compression.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..compare.outputs import bit_exact, compare_outputs
from ..errors import KitError
from ..inputs.dataset import Dataset
from ..tflite.compression.plan import Plan, plan
from ..tflite.model import read_model
from ..tflite.strip import CONVERTER_METADATA  # noqa: F401  (bench and tests import it from here)
from .base import FlatbufferStage, StageContext, StageRecord, StageSettings, register
from .compressors import (COMPRESSORS, Compressor, CompressRecord, LossyStep, ModelStep, StepOutcome,
                          TensorEncoding, run_both, settings_model)

if TYPE_CHECKING:
    class CompressSettings(StageSettings):
        """What mypy sees: the fields come from the rows of stages/compressors.COMPRESSORS at import time."""

        def __getattr__(self, name: str) -> Any: ...
else:
    CompressSettings = settings_model(COMPRESSORS, __name__)


@register
class Compress(FlatbufferStage):
    name = "compress"
    Settings = CompressSettings
    section = True   # the recipe's `compress:` section, never a `stages:` entry

    def phase_detail(self, settings: CompressSettings, data) -> str:  # noqa: ARG002 (the hook's signature)
        active = enabled(settings)
        encodings = [row.label for row in active if isinstance(row, TensorEncoding)]
        parts = ([f"{' + '.join(encodings)} decoded by TFLM DECODE"] if encodings else []) + \
            [row.label for row in active if not isinstance(row, TensorEncoding)]
        return f"compress ({', '.join(parts) or 'nothing set'})"

    def transform_with_reference(self, model_bytes: bytes, settings: CompressSettings,
                                 context: StageContext) -> tuple[bytes, CompressRecord, bytes]:
        return compress_model(model_bytes, settings, context.data)

    def report_note(self, record: StageRecord) -> str:
        assert isinstance(record.details, CompressRecord), "the compress stage records a CompressRecord"
        return record.details.report_note()


def enabled(settings: CompressSettings, rows: tuple[Compressor, ...] | None = None) -> list[Compressor]:
    """The rows that are on, in table order (default: the dispatch table, read when called)."""
    return [row for row in (COMPRESSORS if rows is None else rows) if row.enabled(settings)]


@dataclass(frozen=True)
class Applied:
    """Every enabled method applied, before TFLM's proof: the model, what it must match, and each record."""

    model: bytes
    reference: bytes
    before_encoding: tuple[StepOutcome, ...]
    plan: Plan                        # the DECODE encodings kept (empty when they would grow the model)
    rejected: tuple                   # the encodings planned and dropped: the model grew
    encoded: tuple[tuple[TensorEncoding, tuple], ...]   # each encoding with the tensors it stores
    note: str | None                  # why no encoding stored anything
    after_encoding: tuple[StepOutcome, ...]


def compress_model(model_bytes: bytes, settings: CompressSettings, data: Dataset,
                   rows: tuple[Compressor, ...] = COMPRESSORS) -> tuple[bytes, CompressRecord, bytes]:
    """(compressed model, the record, the reference model TFLM must match byte for byte): every enabled
    row applied (apply_compressors), then TFLM's proof that the outputs are unchanged."""
    done = apply_compressors(model_bytes, settings, data, rows)
    unchanged = done.model == model_bytes
    verification = None if unchanged else \
        verify_identical(done.reference, done.model, data, settings.verify_samples, _what(done, rows))
    changed = [s.done for s in done.before_encoding + done.after_encoding if s.done]
    note = f"{done.note}; the model is unchanged" if unchanged else \
        f"{done.note}; only {' and '.join(changed)}" if done.note else None
    record = CompressRecord(
        len(model_bytes), len(done.model), done.before_encoding, done.after_encoding, done.encoded, done.rejected,
        tuple(done.plan.skipped), verification,
        0 if unchanged else read_model(done.model).operator_counts.get("TFLM_DECODE", 0), note)
    return done.model, record, (model_bytes if unchanged else done.reference)


def apply_compressors(model_bytes: bytes, settings: CompressSettings, data: Dataset,
                      rows: tuple[Compressor, ...] = COMPRESSORS) -> Applied:
    """The enabled rows in their three moments: lossy steps (each may name a new reference), the DECODE
    encodings where the model shrinks, then the whole-model steps."""
    active = enabled(settings, rows)
    reference, model, before = model_bytes, model_bytes, []
    for lossy in (row for row in active if isinstance(row, LossyStep)):
        reference, model, outcome = lossy.apply(model, settings, data)
        before.append(outcome)
    encodings = [row for row in active if isinstance(row, TensorEncoding)]
    model, chosen, rejected, note = _decode_encodings(model, settings, encodings)
    after = []
    for step in (row for row in active if isinstance(row, ModelStep)):
        model, outcome = step.apply(model, settings)
        after.append(outcome)
    encoded = tuple((row, tuple(chosen.of(row.name))) for row in encodings if chosen.of(row.name))
    return Applied(model, reference, tuple(before), chosen, rejected, encoded, note, tuple(after))


def _decode_encodings(base: bytes, settings: CompressSettings,
                      encodings: list[TensorEncoding]) -> tuple[bytes, Plan, tuple, str | None]:
    """The DECODE encodings where the model shrinks: (model, plan kept, plan rejected, why nothing was kept)."""
    chosen = plan_encodings(base, settings, tuple(encodings))
    if not chosen.choices:
        methods = "/".join(row.label for row in encodings) or "LUT"
        return base, chosen, (), f"no tensor qualified for {methods} compression"
    compressed = base
    for row in encodings:
        if chosen.of(row.name):
            compressed = row.encode(compressed, chosen.of(row.name), chosen)
    if len(compressed) < len(base):
        return compressed, chosen, (), None
    # DECODE operators, the new tensors and buffer alignment cost bytes of their own; seen on
    # the MLPerf KWS DS-CNN at 16 clusters: tensors 19,712 -> 15,264 B, model 48,480 -> 49,328 B.
    used = [row.label for row in encodings if chosen.of(row.name)]
    note = (f"{used[0] if len(used) == 1 else 'DECODE'} compression would grow the model ({len(base)} -> "
            f"{len(compressed)} B: DECODE operators and tensor metadata outweigh the index savings)")
    return base, Plan(skipped=chosen.skipped), tuple(chosen.choices), note


def plan_encodings(model_bytes: bytes, settings: CompressSettings,
                   rows: tuple[Compressor, ...] | None = None) -> Plan:
    """Each tensor given to the enabled DECODE encoding that stores it smallest (empty when none is on)."""
    encodings = [row for row in enabled(settings, rows) if isinstance(row, TensorEncoding)]
    return plan(model_bytes, {row.name: row.planner(settings) for row in encodings}) if encodings else Plan()


def verify_identical(reference: bytes, compressed: bytes, data: Dataset, samples: int, what: str) -> dict:
    """TFLM's outputs of both models on real inputs; a KitError unless every byte is equal."""
    expected, actual = run_both(reference, compressed, data, samples)
    verification = compare_outputs(expected, actual) | {"inputs": data.spread_inputs(samples)[1], "runtime": "tflm"}
    if not bit_exact(verification):
        raise KitError(f"the {what} model differs from the uncompressed one on TFLM "
                       f"({verification['equal']}/{verification['total']} vectors equal, "
                       f"max {verification['max_lsb']} LSB)",
                       "remove the compress step from the recipe and report this with the model")
    return verification


def _what(done: Applied, rows: tuple[Compressor, ...]) -> str:
    """The verification message's words, in the order the methods ran: every lossy or whole-model step that
    was on, and every encoding that stored a tensor."""
    on = {s.name for s in done.before_encoding + done.after_encoding} | {row.name for row, _ in done.encoded}
    return " and ".join(row.verb for row in _run_order(rows) if row.name in on)


def _run_order(rows: tuple[Compressor, ...]) -> list[Compressor]:
    moments = (LossyStep, TensorEncoding, ModelStep)
    return [row for moment in moments for row in rows if isinstance(row, moment)]
