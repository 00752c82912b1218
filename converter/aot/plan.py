"""Where every activation lives: one static buffer, planned at generation time.

Model inputs and outputs are the caller's arrays (read and written in place, never copied into the
buffer). Every other activation and each kernel's scratch area gets an offset in the buffer from the
kit's planner (tflite/memory_placement.py: TFLM's greedy rule and the tighter search, whichever is
smaller). A RESHAPE output is its input's bytes (an alias: no copy, no bytes). Scratch sizes depend on
the kernel back-end, so there is one plan per back-end variant (VARIANTS).

In-place execution (inplace.py, PlanOptions): an operator's output may share bytes with an input that dies
there, at a fixed distance. Such tensors form a group placed as one block (their offsets fixed relative to
each other); an overlap is kept only when the greedy plan does not grow, and the final plan is never above
the plan without in-place execution (`baseline_bytes`). `check_plan` proves every plan before it is used:
tensors live at the same step share bytes only as an allowed overlap."""
from __future__ import annotations

from dataclasses import dataclass

from ..tflite.memory_placement import Buffer, align, greedy, tighter
from .graph import AotGraph
from .inplace import DEFAULT_PLAN, Overlap, PlanOptions, candidates, in_flight, kernel_family, step_delta
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
    overlaps: tuple = ()      # Overlap, the in-place executions this plan relies on
    baseline_bytes: int = 0   # the buffer planned without in-place execution (NO_INPLACE)

    def table(self) -> str:
        rows = [f"{'offset':>8} {'bytes':>8}  steps    tensor"]
        rows += [f"{e.offset:>8} {e.size:>8}  {e.first:>2}..{e.last:<3}  {e.what}" for e in self.entries]
        saved = f", {self.baseline_bytes:,} B without in-place execution" if self.overlaps else ""
        return "\n".join(rows + [f"buffer: {self.buffer_bytes:,} B ({self.variant}{saved})"])


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


@dataclass(frozen=True)
class _Block:
    """Buffers placed together: member key -> (offset from the block's start, size, first, last)."""
    parts: dict

    @property
    def size(self) -> int:
        return max(rel + size for rel, size, _, _ in self.parts.values())

    @property
    def first(self) -> int:
        return min(part[2] for part in self.parts.values())


def _clash(a: tuple, b: tuple) -> bool:
    """Two (offset, size, first, last) rectangles share bytes while both live."""
    return a[2] <= b[3] and b[2] <= a[3] and a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


def _lowest_fit(blocks: list[_Block]) -> tuple[dict[int, int], int]:
    """Each block, in order, at the lowest offset where none of its parts clashes with a placed part."""
    placed: list[tuple] = []
    offsets, arena = {}, 0
    for block in blocks:
        starts = sorted({0} | {o + s - rel for o, s, f, last in placed for rel, _, bf, bl in block.parts.values()
                               if f <= bl and bf <= last and o + s - rel > 0})
        for start in starts:
            mine = [(start + rel, size, f, last) for rel, size, f, last in block.parts.values()]
            if not any(_clash(m, p) for m in mine for p in placed):
                break
        placed += mine
        offsets.update({key: start + rel for key, (rel, _, _, _) in block.parts.items()})
        arena = max(arena, start + block.size)
    return offsets, arena


BLOCK_ORDERS = (lambda b: (-b.size, b.first), lambda b: (b.first, -b.size),
                lambda b: (-b.size * (max(p[3] for p in b.parts.values()) - b.first + 1), b.first))


@dataclass(frozen=True)
class _Groups:
    """Tensors whose offsets are fixed relative to each other (anchor tensor, offset from the anchor)."""
    anchor: dict
    rel: dict

    def blocks(self, sizes: dict[int, int], spans: dict, scratch: list[Buffer]) -> list[_Block]:
        members: dict[int, list[int]] = {}
        for t, a in self.anchor.items():
            members.setdefault(a, []).append(t)
        blocks = []
        for group in members.values():
            low = min(self.rel[t] for t in group)
            blocks.append(_Block({t: (self.rel[t] - low, sizes[t], *spans[t]) for t in group}))
        return blocks + [_Block({b.key: (0, b.size, b.first, b.last)}) for b in scratch]

    def merge(self, o: Overlap, sizes: dict[int, int], spans: dict, allowed: set) -> _Groups | None:
        """The groups with o.target fixed o.delta bytes before o.source; None if that makes two tensors of the
        merged group share bytes while both live (other than as an allowed overlap)."""
        keep, move = self.anchor[o.source], self.anchor[o.target]
        if keep == move:
            return None
        shift = self.rel[o.source] - o.delta - self.rel[o.target]
        anchor, rel = dict(self.anchor), dict(self.rel)
        moved = [t for t, a in anchor.items() if a == move]
        for t in moved:
            anchor[t], rel[t] = keep, rel[t] + shift
        others = [t for t, a in anchor.items() if a == keep and t not in moved]
        pairs = allowed | {(o.source, o.target)}
        for a in moved:
            for b in others:
                if (a, b) not in pairs and (b, a) not in pairs and \
                        _clash((rel[a], sizes[a], *spans[a]), (rel[b], sizes[b], *spans[b])):
                    return None
        return _Groups(anchor, rel)


def _best_fit(blocks: list[_Block]) -> tuple[dict[int, int], int]:
    """The smallest of the lowest-fit placements in each of BLOCK_ORDERS."""
    return min((_lowest_fit(sorted(blocks, key=order)) for order in BLOCK_ORDERS), key=lambda p: p[1])


# How a candidate overlap is judged: the lowest-fit in the first order, or the best of all orders. Neither
# wins everywhere (the acceptance is greedy), so both are run and the smaller final plan kept.
EVALUATORS = (lambda blocks: _lowest_fit(sorted(blocks, key=BLOCK_ORDERS[0])), _best_fit)


def _choose(candidates: list[Overlap], sizes: dict, spans: dict, scratch: list[Buffer], evaluate
            ) -> tuple[_Groups, list]:
    """Overlaps accepted one by one, in step order, while the plan does not grow; again over the ones left
    until none is accepted (one overlap may pay only once another is in: a residual block's ADD)."""

    def _arena(groups: _Groups, sizes: dict, spans: dict, scratch: list[Buffer]) -> int:
        return evaluate(groups.blocks(sizes, spans, scratch))[1]

    groups = _Groups({t: t for t in spans}, {t: 0 for t in spans})
    accepted: list[Overlap] = []
    best, left = _arena(groups, sizes, spans, scratch), list(candidates)
    while left:
        rejected = []
        for o in left:
            merged = groups.merge(o, sizes, spans, {(a.source, a.target) for a in accepted})
            arena = _arena(merged, sizes, spans, scratch) if merged is not None else None
            if arena is not None and arena <= best:
                groups, best = merged, arena
                accepted.append(o)
            else:
                rejected.append(o)
        if len(rejected) == len(left):
            break
        left = rejected
    return groups, accepted


def _scratch_buffers(steps: list[Step], variant: str) -> list[Buffer]:
    return [Buffer(SCRATCH_KEY + k, align(step.scratch[variant]), k, k)
            for k, step in enumerate(steps) if step.scratch.get(variant, 0) > 0]


def _place(graph: AotGraph, steps: list[Step], variant: str, options: PlanOptions, root: dict, spans: dict
           ) -> tuple[dict[int, int], int, list[Overlap], int]:
    """(offset per buffer key, buffer bytes, overlaps used, bytes without them): the plan without in-place
    execution (TFLM's greedy rule or the tighter search), or the in-place plan when it is smaller."""
    sizes = {t: align(graph.tensor(t).nbytes) for t in spans}
    scratch = _scratch_buffers(steps, variant)
    buffers = [Buffer(t, sizes[t], a, b) for t, (a, b) in spans.items()] + scratch
    placement = min((greedy(buffers), tighter(buffers, node_budget=NODE_BUDGET, time_budget=60.0)),
                    key=lambda p: p.arena) if buffers else None
    no_overlaps: list[Overlap] = []
    plain = (placement.offsets, placement.arena, no_overlaps, placement.arena) if placement else \
        ({}, 0, no_overlaps, 0)
    found = candidates(graph, steps, variant, options, root, spans) if options.any else []
    if not found:
        return plain
    best = plain
    for evaluate in EVALUATORS:
        _, accepted = _choose(found, sizes, spans, scratch, evaluate)
        groups, accepted = _without_idle_slices(accepted, sizes, spans, scratch)
        offsets, arena = _best_fit(groups.blocks(sizes, spans, scratch))
        if accepted and arena < best[1]:
            best = (offsets, arena, accepted, plain[1])
    return best


def _grouped(overlaps: list[Overlap], sizes: dict, spans: dict) -> _Groups:
    """The groups these overlaps make (each merge was valid with more members, so it is with fewer)."""
    groups, done = _Groups({t: t for t in spans}, {t: 0 for t in spans}), set[tuple[int, int]]()
    for o in overlaps:
        merged = groups.merge(o, sizes, spans, done)
        assert merged is not None, o
        groups = merged
        done.add((o.source, o.target))
    return groups


def _without_idle_slices(accepted: list[Overlap], sizes: dict, spans: dict,
                         scratch: list[Buffer]) -> tuple[_Groups, list[Overlap]]:
    """The accepted overlaps without the row-sliced 1x1 convolutions that do not lower the buffer (their
    slices only cost instructions), last ones first."""
    arena = _best_fit(_grouped(accepted, sizes, spans).blocks(sizes, spans, scratch))[1]
    for o in reversed(list(accepted)):
        if o.rows:
            fewer = [a for a in accepted if a != o]
            if _best_fit(_grouped(fewer, sizes, spans).blocks(sizes, spans, scratch))[1] <= arena:
                accepted = fewer
    return _grouped(accepted, sizes, spans), accepted


def check_plan(graph: AotGraph, steps: list[Step], plan: MemoryPlan) -> list[str]:
    """What is wrong with a plan (empty: nothing): two buffers live at the same step sharing bytes other
    than as one of the plan's overlaps, an overlap closer than its rule allows, or the buffer overrun."""
    root = storage_roots(graph, steps)
    spans = _lifetimes(graph, steps, root)
    rects = {t: (plan.locations[t].index, graph.tensor(t).nbytes, *spans[t]) for t in spans}
    rects.update({SCRATCH_KEY + k: (offset, steps[k].scratch[plan.variant], k, k) for k, offset in plan.scratch.items()})
    allowed = {(o.source, o.target): o for o in plan.overlaps}
    wrong = [f"{key} ends at {r[0] + r[1]} beyond the buffer" for key, r in rects.items()
             if r[0] + r[1] > plan.buffer_bytes]
    keys = sorted(rects)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if _clash(rects[a], rects[b]) and (a, b) not in allowed and (b, a) not in allowed:
                wrong.append(f"#{a} and #{b} share bytes while both live")
    for o in plan.overlaps:
        step = steps[o.step]
        need = 0 if step.function is not None and kernel_family(step.function) == "aot_add" else None
        if need is None:
            flight = o.rows * dict(step.fields)["out_w"] if o.rows else in_flight(step, plan.variant, DEFAULT_PLAN)
            need = step_delta(step, flight) if flight else None
        actual = rects[o.source][0] - rects[o.target][0]
        if need is None or actual < need or spans[o.source][1] != o.step or spans[o.target][0] != o.step:
            wrong.append(f"overlap at step {o.step} (#{o.source} -> #{o.target}) is not allowed or too close")
    return wrong


def plan_memory(graph: AotGraph, steps: list[Step], variant: str, options: PlanOptions = DEFAULT_PLAN) -> MemoryPlan:
    root = storage_roots(graph, steps)
    spans = _lifetimes(graph, steps, root)
    offsets, arena, overlaps, baseline = _place(graph, steps, variant, options, root, spans)
    locations = {}
    for t in graph.tensors:
        r = root.get(t, t)
        if r in graph.inputs:
            locations[t] = Location("input", graph.inputs.index(r))
        elif r in graph.outputs:
            locations[t] = Location("output", graph.outputs.index(r))
        elif r in offsets:
            locations[t] = Location("buffer", offsets[r])
    over = {o.target: o for o in overlaps}
    entries = []
    for key in offsets:
        if key >= SCRATCH_KEY:
            k = key - SCRATCH_KEY
            what, size, first, last = f"scratch of operator {steps[k].op} ({steps[k].kind})", \
                steps[k].scratch[variant], k, k
        else:
            what = " = ".join(_label(graph, t) for t in [key, *(t for t, r in root.items() if r == key)])
            if key in over:
                o = over[key]
                what += f"  [in place over #{o.source}]" if o.delta == 0 else \
                    f"  [{o.delta} B before #{o.source}'s reads]"
            size, (first, last) = graph.tensor(key).nbytes, spans[key]
        entries.append(PlanEntry(offsets[key], align(size), what, first, last))
    entries.sort(key=lambda e: (e.offset, e.first))
    scratch = {key - SCRATCH_KEY: offsets[key] for key in offsets if key >= SCRATCH_KEY}
    plan = MemoryPlan(variant, arena, tuple(entries), locations, scratch, tuple(overlaps), baseline)
    wrong = check_plan(graph, steps, plan)
    if wrong:
        raise AssertionError(f"AOT memory plan ({variant}) is inconsistent: {'; '.join(wrong[:3])}")
    return plan
