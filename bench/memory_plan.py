"""Offline memory plans against TFLM's greedy planner, per model: a markdown table on stdout.

    PYTHONPATH=. python bench/memory_plan.py MODEL.tflite [MODEL.tflite ...]

For each model: the tensors TFLM plans, the bytes TFLM's greedy planner needs for them (the kit's
reproduction), the tightest placement found and how, the lower bound (most bytes live at once),
and TFLM's measured host arena (converter.tflm.arena.measure_arena: the smallest arena that
allocates and invokes) without and with the plan written as OfflineMemoryAllocation metadata,
plus whether TFLM's outputs stay identical on random inputs. The arena does not depend on the
input values, so zeros serve for the measurement.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from converter.tflite.memory_plan import plan_memory, with_offline_plan
from converter.tflite.model import read_model
from converter.tflm.arena import measure_arena
from converter.tflm.runners import run_tflm

HEADER = ("| model | tensors planned | TFLM greedy B | planned B | lower bound B | how | host arena B (TFLM) | "
          "host arena B (plan) | TFLM outputs | seconds |")


def row(path: Path, vectors: int = 20) -> str:
    model_bytes = path.read_bytes()
    info = read_model(model_bytes)
    started = time.perf_counter()
    plan = plan_memory(model_bytes)
    seconds = time.perf_counter() - started
    sample = [np.zeros(t.shape, t.dtype) for t in info.inputs]
    without = measure_arena(model_bytes, sample)
    with_plan, outputs = "—", "—"
    if plan.saving > 0:
        planned = with_offline_plan(model_bytes, plan.offsets())
        with_plan = f"{measure_arena(planned, sample):,}"
        rng = np.random.default_rng(0)
        inputs = [rng.integers(np.iinfo(t.dtype).min, np.iinfo(t.dtype).max, (vectors, *t.shape[1:]),
                               endpoint=True).astype(t.dtype) if t.dtype.kind == "i" else
                  rng.uniform(0, 1, (vectors, *t.shape[1:])).astype(t.dtype) for t in info.inputs]
        same = all(np.array_equal(a, b) for a, b in zip(run_tflm(model_bytes, info, inputs),
                                                        run_tflm(planned, read_model(planned), inputs)))
        outputs = f"{vectors}/{vectors} identical" if same else "DIFFER"
    how = plan.planned.method + (" (optimal)" if plan.planned.optimal else "")
    label = path.parent.name if path.name == "model.tflite" else path.name  # a `convert` output folder
    return (f"| {label} | {len(plan.buffers)} | {plan.greedy.arena:,} | {plan.planned.arena:,} | "
            f"{plan.lower_bound:,} | {how} | {without:,} | {with_plan} | {outputs} | {seconds:.2f} |")


def main(paths: list[str]) -> None:
    print(HEADER)
    print("|" + "---|" * HEADER.count(" |"))
    for path in paths:
        print(row(Path(path)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
