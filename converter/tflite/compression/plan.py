"""Per tensor, the smallest of the enabled DECODE encodings (LUT, PRUNE, ...), or why none applies.

TFLM's DECODE decodes each tensor with one method (one DCM type per ancillary tensor), and its
input must be a constant (decode.cc checks IsConstantTensor), so the methods cannot be chained on
one tensor; they combine across tensors: a clustered layer as LUT, a sparse one as PRUNE.

The encodings are given as planners by name (the compress stage's rows, stages/compressors.py):
this module knows none of them, only how to pick the smallest.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

from ..tflite_model import TfliteModel
from .candidates import Candidate, SkippedTensor, find_candidates, skip_row


class TensorChoice(Protocol):
    """How one tensor is stored by an encoding (LutChoice, PruneChoice): what the plan compares and records."""

    @property
    def subgraph(self) -> int: ...
    @property
    def tensor(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def bytes_before(self) -> int: ...
    @property
    def bytes_after(self) -> int: ...
    def as_dict(self) -> dict: ...


# An encoding's planner: the candidate's encoding, or None and the reason it does not qualify.
Planner = Callable[[Candidate], tuple[Optional[TensorChoice], Optional[str]]]


@dataclass
class Plan:
    chosen: dict[str, list] = field(default_factory=dict)   # encoding name -> its choices, in the planners' order
    skipped: list[SkippedTensor] = field(default_factory=list)
    candidates: dict = field(default_factory=dict)   # (subgraph, tensor) -> Candidate, for the encoders

    def of(self, encoding: str) -> list:
        """The tensors `encoding` stores."""
        return self.chosen.get(encoding, [])

    @property
    def choices(self) -> list:
        return sorted((c for chosen in self.chosen.values() for c in chosen), key=lambda c: (c.subgraph, c.tensor))


def plan(model_bytes: bytes, planners: dict[str, Planner]) -> Plan:
    """Every candidate tensor given to the encoding that stores it smallest (the first on a tie)."""
    candidates, skipped = find_candidates(TfliteModel.from_bytes(model_bytes))
    result = Plan({name: [] for name in planners}, skipped)
    for candidate in candidates:
        options, reasons = [], []
        for name, planner in planners.items():
            choice, reason = planner(candidate)
            options.append((name, choice)) if choice else reasons.append(reason)
        if not options:
            result.skipped.append(_skipped(candidate, "; ".join(reasons) or "no encoding enabled"))
            continue
        name, best = min(options, key=lambda option: option[1].bytes_after)
        result.chosen[name].append(best)
        result.candidates[(candidate.subgraph, candidate.tensor)] = candidate
    result.skipped.sort(key=lambda row: (row.subgraph, row.tensor))
    return result


def _skipped(candidate: Candidate, reason: str) -> SkippedTensor:
    return skip_row(candidate.subgraph, candidate.tensor, candidate.name, candidate.array, reason)
