"""Keep an offline memory plan only when TFLM's measured arena shrinks with it.

The plan (tflite/memory_plan.py) covers the tensors; the kernels' scratch buffers are still placed
by TFLM's online planner, into the plan's gaps or above it, and the persistent section does not
change. So the saving the plan predicts is checked, not assumed: TFLM allocates and invokes the
model with and without the plan (arena.measure_arena), and the plan stays only when the smallest
arena that works is smaller with it. Whether the outputs stay byte-identical is checked by the
caller with every other change to the model (stages/compress.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..tflite.memory_plan import NotPlannable, plan_memory, with_offline_plan
from ..tflite.model import read_model
from .arena import measure_arena


@dataclass
class OfflinePlanResult:
    kept: bool
    note: str
    plan: dict = field(default_factory=dict)       # MemoryPlan.as_dict(): greedy, planned, lower bound bytes
    arena_without_plan: int | None = None          # host TFLM, smallest arena that allocates and invokes
    arena_with_plan: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def apply_offline_plan(model_bytes: bytes) -> tuple[bytes, OfflinePlanResult]:
    """(the model with the plan, or unchanged, and why)."""
    try:
        plan = plan_memory(model_bytes)
    except NotPlannable as reason:
        return model_bytes, OfflinePlanResult(False, f"no offline memory plan: {reason}")
    if plan.saving <= 0:
        proof = "the lower bound, so no plan can do better" if plan.greedy.arena <= plan.lower_bound else \
            f"the best found; lower bound {plan.lower_bound:,} B"
        return model_bytes, OfflinePlanResult(
            False, f"no offline memory plan: TFLM's greedy plan ({plan.greedy.arena:,} B of tensors) is already "
                   f"{proof}", plan.as_dict())
    planned = with_offline_plan(model_bytes, plan.offsets())
    # TFLM allocates before it reads an input, so any values measure the arena: zeros, one per input
    sample = [np.zeros(t.shape, t.dtype) for t in read_model(model_bytes).inputs]
    without, with_plan = measure_arena(model_bytes, sample), measure_arena(planned, sample)
    result = OfflinePlanResult(with_plan < without, "", plan.as_dict(), without, with_plan)
    if not result.kept:
        result.note = (f"no offline memory plan: it places the tensors in {plan.planned.arena:,} B instead of "
                       f"{plan.greedy.arena:,} B, but TFLM's arena does not shrink ({without:,} -> {with_plan:,} B: "
                       "the kernels' scratch buffers, planned online, take the gap)")
        return model_bytes, result
    result.note = (f"offline memory plan: tensors {plan.greedy.arena:,} -> {plan.planned.arena:,} B "
                   f"({plan.planned.method}), TFLM arena {without:,} -> {with_plan:,} B")
    return planned, result
