"""The compress stage's methods as plugins: one class per method, one row in `COMPRESSORS`.

Modelled on TFLM's compression tooling (tensorflow/lite/micro/compression: a `Compressor` protocol
per method and a `_COMPRESSORS` table that `compress()` dispatches on), with the kit's three moments
a method can act at, because they differ in what they take and what TFLM must match afterwards:

- `LossyStep`      (int4)            before the encodings; changes values, so it names the model TFLM
                                      must match from then on (the int8 "twin" with the same levels);
- `TensorEncoding` (lut, prune)      per constant tensor, decoded by TFLM_DECODE; the plan gives each
                                      tensor the encoding that stores it smallest (tflite/compression/plan.py);
- `ModelStep`      (strip, memory_plan)  whole-model rewrites after the encodings.

A row declares what it needs (its recipe settings under `compress:`, `fields`; `enabled(settings)`),
how it encodes (`apply`, or `planner` + `encode`), and what it records (a typed record; JSON only
when the manifest is written). The stage (stages/compress.py) builds its settings from the rows
(`settings_model`) and runs them in table order within each moment, so a new method is one class
here and one row in `COMPRESSORS`: the recipe key, the progress line, the verification message, the
record and the report follow from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional, Protocol

import numpy as np
from pydantic import Field, create_model

from ..compare.outputs import compare_outputs
from ..errors import KitError, foreign_text
from ..tflite.compression import int4, lut
from ..tflite.compression.candidates import SkippedTensor
from ..tflite.compression.decode_insert import insert_decode
from ..tflite.compression.int4 import Int4Choice
from ..tflite.compression.plan import Plan, Planner, TensorChoice
from ..tflite.compression.prune import encode_prune, plan_prune
from ..tflite.model import read_model
from ..tflite.strip import strip
from ..tflite.tflite_model import TfliteModel
from ..tflm.offline_plan import apply_offline_plan
from ..tflm.runners import quantize_inputs, run_tflm
from .base import StageSettings

# The compress stage's settings: built from the rows (settings_model), so no static class to name here.
Settings = Any


class Recorded(Protocol):
    """A method's typed record: it becomes JSON only when the manifest is written."""

    def as_dict(self) -> dict: ...


@dataclass(frozen=True)
class StepOutcome:
    """What one lossy or whole-model step did, as the record and the report show it."""

    name: str                         # the row's name: its key in the manifest's compress record
    record: Recorded
    done: Optional[str] = None        # the note's words for what it changed ('stripped'); None: nothing
    stored: Optional[str] = None      # report.md: the tensors it stores differently ('3 int4 filters (...)')
    remark: Optional[str] = None      # report.md: a sentence of its own (the memory plan: kept, or why not)
    tensors_changed: bool = False     # a tensor is stored differently: kernels change (deployed comparison)


class Compressor:
    """One compression method: its recipe settings, when it is on, and how the stage names it."""

    name: ClassVar[str]                            # its key in the record (and its row's name)
    fields: ClassVar[dict[str, tuple[Any, Any]]]   # its settings under `compress:`: name -> (type, Field)
    label: ClassVar[str]                           # its words in the progress line
    verb: ClassVar[str]                            # 'the <verb> model differs' when TFLM's outputs change

    def enabled(self, settings: Settings) -> bool:
        raise NotImplementedError


class LossyStep(Compressor):
    """Runs first; may change values, so it names the reference TFLM must match afterwards."""

    def apply(self, model_bytes: bytes, settings: Settings, data) -> tuple[bytes, bytes, StepOutcome]:
        """(reference, model, outcome)."""
        raise NotImplementedError


class TensorEncoding(Compressor):
    """A DECODE encoding: planned per tensor, the smallest enabled one kept (tflite/compression/plan.py)."""

    def planner(self, settings: Settings) -> Planner:
        raise NotImplementedError

    def encode(self, model_bytes: bytes, choices: list, plan: Plan) -> bytes:
        """The model with `choices` (this encoding's share of `plan`) encoded and decoded by TFLM_DECODE."""
        raise NotImplementedError

    def summary(self, choices: list) -> str:
        """report.md: what it stored."""
        raise NotImplementedError


class ModelStep(Compressor):
    """A whole-model rewrite after the encodings."""

    def apply(self, model_bytes: bytes, settings: Settings) -> tuple[bytes, StepOutcome]:
        raise NotImplementedError


# --- the rows --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Int4Record:
    tensors: tuple[Int4Choice, ...] = ()
    requantization_vs_int8: Optional[dict] = None   # compare_outputs of the int8 model and its twin
    top1_agreement_vs_int8: Optional[float] = None
    note: Optional[str] = None                      # why no filter was requantized

    def as_dict(self) -> dict:
        if not self.tensors:
            return {"tensors": [], "note": self.note}
        return {"tensors": [c.as_dict() for c in self.tensors], "requantization_vs_int8": self.requantization_vs_int8,
                "top1_agreement_vs_int8": self.top1_agreement_vs_int8}


class Int4(LossyStep):
    name = "int4"
    label = "packed int4 filters"
    verb = "int4-packed"
    fields = {
        "int4": (bool, Field(False, description="requantize CONV_2D/DEPTHWISE_CONV_2D/per-tensor FULLY_CONNECTED "
                             "filters to 16 levels and store them as packed INT4 (lossy; later checks compare with "
                             "the int8 model that has the same 16 levels)")),
        "int4_layers": (Optional[list[str]], Field(None, description="with int4: only the filters whose tensor name "
                                                   "contains one of these (e.g. layer names); default: all eligible")),
    }

    def enabled(self, settings: Settings) -> bool:
        return settings.int4

    def apply(self, model_bytes: bytes, settings: Settings, data) -> tuple[bytes, bytes, StepOutcome]:
        """The int8 twin is the reference; the packed model goes on. The agreement says how far it moved."""
        twin, choices = int4.requantize(model_bytes, settings.int4_layers)
        if not choices:
            note = "no CONV_2D, DEPTHWISE_CONV_2D or per-tensor FULLY_CONNECTED filter to store as int4"
            return model_bytes, model_bytes, self.outcome(Int4Record(note=note))
        packed = int4.pack(twin, choices)
        expected, requantized = run_both(model_bytes, twin, data, settings.verify_samples)
        agreement = float(np.mean(expected[0].reshape(len(expected[0]), -1).argmax(1) ==
                                  requantized[0].reshape(len(requantized[0]), -1).argmax(1)))
        record = Int4Record(tuple(choices), compare_outputs(expected, requantized), round(agreement, 4))
        return twin, packed, self.outcome(record)

    def outcome(self, record: Int4Record) -> StepOutcome:
        if not record.tensors:
            return StepOutcome(self.name, record)
        # int4 is lossy: the report says how far the model moved, since the quality line shows the int8 model's
        stored = (f"{len(record.tensors)} int4 filters (top-1 agreement with the int8 model "
                  f"{record.top1_agreement_vs_int8:.1%})")
        return StepOutcome(self.name, record, "int4 filters", stored, tensors_changed=True)


class Lut(TensorEncoding):
    name = "lut"
    label = "LUT"
    verb = "LUT-compressed"
    fields = {
        "lut": (bool, Field(True)),
        "max_index_bits": (int, Field(7, ge=1, le=7, description="leave tensors that need wider indices as they are")),
    }

    def enabled(self, settings: Settings) -> bool:
        return settings.lut

    def planner(self, settings: Settings) -> Planner:
        return lambda candidate: lut.plan_lut(candidate, settings.max_index_bits)

    def encode(self, model_bytes: bytes, choices: list, plan: Plan) -> bytes:  # noqa: ARG002 (the row's signature)
        return lut.compress_bytes(model_bytes, choices)   # TFLM's own compressor

    def summary(self, choices: list) -> str:
        bits = sorted({c.bits for c in choices})
        return f"{len(choices)} tensors LUT-compressed ({'/'.join(map(str, bits))}-bit indices)"


class Prune(TensorEncoding):
    name = "prune"
    label = "PRUNE"
    verb = "PRUNE-encoded"
    fields = {
        "prune": (bool, Field(False, description="store sparse int8 tensors as TFLM DECODE PRUNE (bitmask + kept "
                              "values) where that is smaller than LUT (or than the raw tensor)")),
    }

    def enabled(self, settings: Settings) -> bool:
        return settings.prune

    def planner(self, settings: Settings) -> Planner:  # noqa: ARG002 (the row's signature)
        return plan_prune

    def encode(self, model_bytes: bytes, choices: list, plan: Plan) -> bytes:
        """The kit's PRUNE encoder, after TFLM's LUT compressor: that one appends tensors and keeps the index
        of every tensor it does not encode; checked before this pass writes to those indices."""
        current = TfliteModel.from_bytes(model_bytes)
        encoded = {}
        for choice in choices:
            candidate = plan.candidates[(choice.subgraph, choice.tensor)]
            tensor = current.subgraphs[choice.subgraph].tensors[choice.tensor]
            if current.data(tensor) != candidate.array.tobytes():
                raise KitError(f"tensor {choice.name} moved when TFLM's LUT compressor rewrote the model",
                               "set compress.lut: false (PRUNE alone) and report this with the model")
            encoded[(choice.subgraph, choice.tensor)] = encode_prune(candidate)
        return insert_decode(model_bytes, encoded)

    def summary(self, choices: list) -> str:
        return f"{len(choices)} PRUNE-encoded"


class Strip(ModelStep):
    name = "strip"
    label = "metadata stripped"
    verb = "stripped"
    fields = {
        "strip_metadata": (bool, Field(False, description="drop what TFLM never reads: names, signatures, converter "
                                       "metadata, repeated weight zero points, encoded tensors' quantization")),
    }

    def enabled(self, settings: Settings) -> bool:
        return settings.strip_metadata

    def apply(self, model_bytes: bytes, settings: Settings) -> tuple[bytes, StepOutcome]:  # noqa: ARG002
        try:
            stripped, result = strip(model_bytes)
        except Exception as exc:
            raise KitError(f"stripping the model's metadata failed: {foreign_text(exc)}",
                           "set compress.strip_metadata: false and report this with the model") from None
        return stripped, StepOutcome(self.name, result, "stripped")


class MemoryPlan(ModelStep):
    name = "memory_plan"
    label = "offline memory plan"
    verb = "memory-planned"
    fields = {
        "memory_plan": (Literal["none", "offline"], Field("none", description="offline: write an "
                        "OfflineMemoryAllocation plan tighter than TFLM's greedy one, kept only when TFLM's measured "
                        "arena shrinks (and outputs stay byte-identical)")),
    }

    def enabled(self, settings: Settings) -> bool:
        return settings.memory_plan == "offline"

    def apply(self, model_bytes: bytes, settings: Settings) -> tuple[bytes, StepOutcome]:  # noqa: ARG002
        planned, result = apply_offline_plan(model_bytes)
        # the remark either way: the user asked for a plan, so report.md says it was kept, or why not
        return planned, StepOutcome(self.name, result, "memory-planned" if result.kept else None, remark=result.note)


# The dispatch table: the order methods run in within their moment (LUT before PRUNE: see Prune.encode).
COMPRESSORS: tuple[Compressor, ...] = (Int4(), Lut(), Prune(), Strip(), MemoryPlan())

# The stage's own settings, besides its methods'.
STAGE_FIELDS: dict[str, tuple[Any, Any]] = {
    "verify_samples": (int, Field(200, ge=1, le=100_000,
                                  description="real inputs on which TFLM must give identical bytes before and after")),
}
# The order recipes dumped into manifests have always shown the settings in (artifacts stay byte-identical);
# a new method's fields follow, in row order.
SHOWN_ORDER = ("lut", "max_index_bits", "verify_samples", "strip_metadata", "prune", "int4", "int4_layers",
               "memory_plan")


def settings_model(rows: tuple[Compressor, ...] = COMPRESSORS, module: str = __name__) -> type[StageSettings]:
    """The `compress:` section's schema: the stage's own fields and every row's."""
    fields = dict(STAGE_FIELDS)
    for row in rows:
        clash = fields.keys() & row.fields.keys()
        if clash:
            raise ValueError(f"compressor {row.name} declares settings another row has: {sorted(clash)}")
        fields |= row.fields
    ordered = {name: fields[name] for name in SHOWN_ORDER if name in fields} | fields
    doc = f"Compression of the quantized flatbuffer (after quantize): {', '.join(row.name for row in rows)}."
    return create_model("CompressSettings", __base__=StageSettings, __module__=module, __doc__=doc,
                        **ordered)  # type: ignore[call-overload]


def run_both(first: bytes, second: bytes, data, samples: int) -> tuple[list, list]:
    """TFLM's outputs of two models on the same `samples` real inputs."""
    info = read_model(first)
    x, _ = data.spread_inputs(samples)
    inputs = quantize_inputs(x, info, data.input_names)
    return run_tflm(first, inputs), run_tflm(second, inputs)


@dataclass(frozen=True)
class CompressRecord:
    """What the compress stage did: the stage record's `details`, typed; `as_dict()` is the manifest's."""

    bytes_before: int
    bytes_after: int
    before_encoding: tuple[StepOutcome, ...] = ()   # lossy steps (int4), in the order they ran
    after_encoding: tuple[StepOutcome, ...] = ()    # whole-model steps (strip, memory_plan)
    # each DECODE encoding that stored tensors, with them (empty when the encodings would grow the model)
    encoded: tuple[tuple[TensorEncoding, tuple[TensorChoice, ...]], ...] = ()
    rejected: tuple[TensorChoice, ...] = ()         # planned, then dropped: the whole model grew
    skipped: tuple[SkippedTensor, ...] = ()
    verification: Optional[dict] = None             # TFLM's outputs vs the reference; None: the model is unchanged
    decode_operators: int = 0
    note: Optional[str] = None                      # why no encoding stored anything

    @property
    def steps(self) -> tuple[StepOutcome, ...]:
        return self.before_encoding + self.after_encoding

    def step(self, name: str) -> Optional[StepOutcome]:
        return next((s for s in self.steps if s.name == name), None)

    @property
    def tensors(self) -> list[TensorChoice]:
        """The DECODE-encoded tensors, by (subgraph, tensor)."""
        return sorted((c for _, choices in self.encoded for c in choices), key=lambda c: (c.subgraph, c.tensor))

    @property
    def tensors_changed(self) -> bool:
        """A tensor is stored differently (DECODE-encoded, packed int4), not only metadata dropped or a
        memory plan written: only then do kernels and arena change, and the deployed comparison run."""
        return bool(self.encoded) or any(s.tensors_changed for s in self.steps)

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"bytes_before": self.bytes_before}  # keys in the order manifests have shown them
        out |= {s.name: s.record.as_dict() for s in self.before_encoding}
        if self.rejected:
            out["rejected"] = [c.as_dict() for c in self.rejected]
        out |= {s.name: s.record.as_dict() for s in self.after_encoding}
        out["bytes_after"] = self.bytes_after
        tensors = self.tensors
        if self.verification is not None:
            out |= {"tensor_bytes_before": sum(c.bytes_before for c in tensors),
                    "tensor_bytes_after": sum(c.bytes_after for c in tensors),
                    "decode_operators": self.decode_operators,
                    "largest_decoded_tensor_bytes": max((c.bytes_before for c in tensors), default=0)}
        out |= {"tensors": [c.as_dict() for c in tensors], "skipped": [s.as_dict() for s in self.skipped],
                "verification": self.verification}
        if self.note:
            out["note"] = self.note
        return out

    def report_note(self) -> str:
        """The 'notes' cell of report.md: what each method stored and the sizes, or why nothing; then remarks."""
        stored = [row.summary(list(choices)) for row, choices in self.encoded] + \
            [s.stored for s in self.steps if s.stored]
        head = (", ".join(stored) + f", model {self.bytes_before:,} → {self.bytes_after:,} B") if stored \
            else (self.note or "")
        return "; ".join(part for part in [head] + [s.remark for s in self.steps if s.remark] if part)
