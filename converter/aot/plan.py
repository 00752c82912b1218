"""Where every activation lives: one static buffer, planned at generation time.

Model inputs and outputs are the caller's arrays (read and written in place, never copied into the
buffer). Every other activation and each kernel's scratch area gets an offset in the buffer from the
kit's planner (tflite/memory_placement.py: TFLM's greedy rule and the tighter search, whichever is
smaller). A RESHAPE output is its input's bytes (an alias: no copy, no bytes). Scratch sizes depend on
the kernel back-end, so there is one plan per back-end variant (VARIANTS)."""
from __future__ import annotations

from dataclasses import dataclass

from ..tflite.memory_placement import Buffer, align, greedy, tighter
from .graph import AotGraph
from .lower import Step

# Back-end variants, each with its own scratch sizes: the portable kernels (no scratch), CMSIS-NN's
# plain C path (Armv6-M, Armv7-M without DSP, a host), its DSP path (Cortex-M4/M7/M33) and MVE
# (Cortex-M55/M85).
VARIANTS = ("portable", "cmsis-c", "cmsis-dsp", "cmsis-mve")
SCRATCH_KEY = 1 << 24         # planner keys at or above it are scratch areas (key - SCRATCH_KEY = step)
NODE_BUDGET = 20_000          # placements the search tries (deterministic: the node budget binds first)


@dataclass(frozen=True)
class Location:
    where: str                # "input", "output" (the caller's arrays) or "buffer"
    index: int                # input/output position, or the byte offset in the buffer


@dataclass(frozen=True)
class PlanEntry:
    offset: int
    size: int
    what: str                 # tensor name, or "scratch of operator k (KIND)"
    first: int                # first and last step that use the bytes
    last: int


@dataclass(frozen=True)
class MemoryPlan:
    variant: str
    buffer_bytes: int
    entries: tuple            # PlanEntry, by offset
    locations: dict           # tensor index -> Location
    scratch: dict             # step position -> buffer offset (steps with scratch only)

    def table(self) -> str:
        rows = [f"{'offset':>8} {'bytes':>8}  steps    tensor"]
        rows += [f"{e.offset:>8} {e.size:>8}  {e.first:>2}..{e.last:<3}  {e.what}" for e in self.entries]
        return "\n".join(rows + [f"buffer: {self.buffer_bytes:,} B ({self.variant})"])


def _label(graph: AotGraph, t: int) -> str:
    """'#12 name' with the name's first part (converters join many names with ';'), at most 48 characters."""
    name = graph.tensor(t).name.split(";")[0]
    return f"#{t} {name[:45] + '...' if len(name) > 48 else name}".rstrip()


def storage_roots(graph: AotGraph, steps: list[Step]) -> dict[int, int]:
    """Tensor -> the tensor whose bytes it uses (itself, or a RESHAPE's input, transitively)."""
    root: dict[int, int] = {}
    for step in steps:
        if step.function is None and step.writes not in graph.outputs:
            source = step.reads[0]
            root[step.writes] = root.get(source, source)
    return root


def _lifetimes(graph: AotGraph, steps: list[Step], root: dict[int, int]) -> dict[int, list[int]]:
    span: dict[int, list[int]] = {}
    for position, step in enumerate(steps):
        for t in (*step.reads, *step.keeps, step.writes):   # keeps: decoded weights (decode.py)
            r = root.get(t, t)
            if r in graph.inputs or r in graph.outputs or graph.tensor(r).constant:
                continue
            first_last = span.setdefault(r, [position, position])
            first_last[1] = position
    return span


def plan_memory(graph: AotGraph, steps: list[Step], variant: str) -> MemoryPlan:
    root = storage_roots(graph, steps)
    spans = _lifetimes(graph, steps, root)
    buffers = [Buffer(t, align(graph.tensor(t).nbytes), a, b) for t, (a, b) in spans.items()]
    buffers += [Buffer(SCRATCH_KEY + k, align(step.scratch[variant]), k, k)
                for k, step in enumerate(steps) if step.scratch.get(variant, 0) > 0]
    placement = min((greedy(buffers), tighter(buffers, node_budget=NODE_BUDGET, time_budget=60.0)),
                    key=lambda p: p.arena) if buffers else None
    offsets = placement.offsets if placement else {}
    locations = {}
    for t in graph.tensors:
        r = root.get(t, t)
        if r in graph.inputs:
            locations[t] = Location("input", graph.inputs.index(r))
        elif r in graph.outputs:
            locations[t] = Location("output", graph.outputs.index(r))
        elif r in offsets:
            locations[t] = Location("buffer", offsets[r])
    entries = []
    for b in buffers:
        if b.key >= SCRATCH_KEY:
            k = b.key - SCRATCH_KEY
            what = f"scratch of operator {steps[k].op} ({steps[k].kind})"
        else:
            what = " = ".join(_label(graph, t) for t in [b.key, *(t for t, r in root.items() if r == b.key)])
        entries.append(PlanEntry(offsets[b.key], b.size, what, b.first, b.last))
    entries.sort(key=lambda e: (e.offset, e.first))
    scratch = {b.key - SCRATCH_KEY: offsets[b.key] for b in buffers if b.key >= SCRATCH_KEY}
    return MemoryPlan(variant, placement.arena if placement else 0, tuple(entries), locations, scratch)
