"""Offline memory plans against TFLM's greedy planner, per model: a markdown table on stdout.

    PYTHONPATH=. python bench/memory_plan.py MODEL.tflite [MODEL.tflite ...]

For each model: the tensors TFLM plans, the bytes TFLM's greedy planner needs for them (the kit's
reproduction), the tightest placement found and how, the lower bound (most bytes live at once),
and TFLM's measured host arena (converter.tflm.arena.measure_arena: the smallest arena that
allocates and invokes) without and with the plan written as OfflineMemoryAllocation metadata,
plus whether TFLM's outputs stay identical on random inputs. The arena does not depend on the
input values, so zeros serve for the measurement. The last columns: how many operator orders the
graph allows (topological orders, up to ORDER_CAP) and the lowest lower bound among them, which says
whether reordering the operators could save more than any plan for the file's order.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from converter import TfliteModel, measure_arena, read_model, run_tflm
# the planner's own pieces: this bench measures the algorithm itself, not only the kit's result
from converter.tflite.memory_placement import lower_bound
from converter.tflite.memory_plan import ONLINE, lifetimes, plan_memory, with_offline_plan

HEADER = ("| model | tensors planned | TFLM greedy B | planned B | lower bound B | how | host arena B (TFLM) | "
          "same with TFLM's plan written offline | host arena B (plan) | TFLM outputs | seconds | "
          "operator orders | lowest lower bound, any order |")
ORDER_CAP = 20_000


def operator_orders(model: TfliteModel, cap: int = ORDER_CAP) -> list[list[int]]:
    """Topological orders of the main subgraph's operators (each after the writers of its inputs)."""
    operators = model.operators
    writer = {int(t): i for i, op in enumerate(operators) for t in op.outputs}
    needs = [{writer[int(t)] for t in op.inputs if int(t) in writer} for op in operators]
    orders: list[list[int]] = []

    def extend(order: list[int], done: set[int]) -> None:
        if len(orders) >= cap:
            return
        if len(order) == len(operators):
            orders.append(list(order))
            return
        for i in range(len(operators)):
            if i not in done and needs[i] <= done:
                extend(order + [i], done | {i})

    extend([], set())
    return orders


def lowest_bound_any_order(model_bytes: bytes) -> tuple[int, int]:
    """(number of orders tried, the lowest lower bound among them)."""
    model = TfliteModel.from_bytes(model_bytes)
    operators, orders = model.operators, operator_orders(model)
    bounds = []
    for order in orders:
        model.subgraph.operators = [operators[i] for i in order]
        bounds.append(lower_bound(lifetimes(model)))
    return len(orders), min(bounds)


def row(path: Path, vectors: int = 20) -> str:
    model_bytes = path.read_bytes()
    info = read_model(model_bytes)
    started = time.perf_counter()
    plan = plan_memory(model_bytes)
    seconds = time.perf_counter() - started
    sample = [np.zeros(t.shape, t.dtype) for t in info.inputs]
    without = measure_arena(model_bytes, sample)
    # the reproduction of TFLM's greedy planner, written as an offline plan, must give TFLM's own arena
    reproduced = with_offline_plan(model_bytes, [plan.greedy.offsets.get(t, ONLINE)
                                                 for t in range(plan.tensor_count)])
    same = "yes" if measure_arena(reproduced, sample) == without else "NO"
    with_plan, outputs = "—", "—"
    if plan.saving > 0:
        planned = with_offline_plan(model_bytes, plan.offsets())
        with_plan = f"{measure_arena(planned, sample):,}"
        rng = np.random.default_rng(0)
        inputs = [rng.integers(np.iinfo(t.dtype).min, np.iinfo(t.dtype).max, (vectors, *t.shape[1:]),
                               endpoint=True).astype(t.dtype) if t.dtype.kind == "i" else
                  rng.uniform(0, 1, (vectors, *t.shape[1:])).astype(t.dtype) for t in info.inputs]
        identical = all(np.array_equal(a, b) for a, b in zip(run_tflm(model_bytes, inputs),
                                                        run_tflm(planned, inputs)))
        outputs = f"{vectors}/{vectors} identical" if identical else "DIFFER"
    how = plan.planned.method + (" (optimal)" if plan.planned.optimal else "")
    orders, lowest = lowest_bound_any_order(model_bytes)
    label = path.parent.name if path.name == "model.tflite" else path.name  # a `convert` output folder
    return (f"| {label} | {len(plan.buffers)} | {plan.greedy.arena:,} | {plan.planned.arena:,} | "
            f"{plan.lower_bound:,} | {how} | {without:,} | {same} | {with_plan} | {outputs} | {seconds:.2f} | "
            f"{orders:,}{'+' if orders >= ORDER_CAP else ''} | {lowest:,} |")


def main(paths: list[str]) -> None:
    print(HEADER)
    print("|" + "---|" * HEADER.count(" |"))
    for path in paths:
        print(row(Path(path)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
