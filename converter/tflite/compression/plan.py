"""Per tensor, the smallest of the enabled DECODE encodings (LUT, PRUNE), or why none applies.

TFLM's DECODE decodes each tensor with one method (one DCM type per ancillary tensor), and its
input must be a constant (decode.cc checks IsConstantTensor), so the methods cannot be chained on
one tensor; they combine across tensors: a clustered layer as LUT, a sparse one as PRUNE.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..tflite_model import TfliteModel
from .candidates import Candidate, find_candidates, skip_row
from .lut import MAX_LUT_BITS, LutChoice, plan_lut
from .prune import PruneChoice, plan_prune


@dataclass
class Plan:
    lut: list[LutChoice] = field(default_factory=list)
    prune: list[PruneChoice] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    candidates: dict = field(default_factory=dict)   # (subgraph, tensor) -> Candidate, for the encoders

    @property
    def choices(self) -> list:
        return sorted(self.lut + self.prune, key=lambda c: (c.subgraph, c.tensor))


def plan(model_bytes: bytes, lut: bool = True, prune: bool = False, max_index_bits: int = MAX_LUT_BITS) -> Plan:
    candidates, skipped = find_candidates(TfliteModel.from_bytes(model_bytes))
    result = Plan(skipped=skipped)
    for candidate in candidates:
        options, reasons = [], []
        for enabled, planner in ((lut, lambda c: plan_lut(c, max_index_bits)), (prune, plan_prune)):
            if enabled:
                choice, reason = planner(candidate)
                options.append(choice) if choice else reasons.append(reason)
        if not options:
            result.skipped.append(_skipped(candidate, "; ".join(reasons) or "no encoding enabled"))
            continue
        best = min(options, key=lambda c: c.bytes_after)
        (result.lut if isinstance(best, LutChoice) else result.prune).append(best)
        result.candidates[(candidate.subgraph, candidate.tensor)] = candidate
    result.skipped.sort(key=lambda row: (row["subgraph"], row["tensor"]))
    return result


def _skipped(candidate: Candidate, reason: str) -> dict:
    return skip_row(candidate.subgraph, candidate.tensor, candidate.name, candidate.array, reason)
