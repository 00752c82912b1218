"""Where each arena buffer goes: TFLM's greedy planner reproduced, and tighter placements.

A buffer is a tensor (or scratch area) with a size and a lifetime [first, last] in TFLM's
allocation scopes; two buffers whose lifetimes share a scope must not share a byte. The arena
the plan needs is the highest end of any buffer.

- `greedy`: TFLM's GreedyMemoryPlanner (memory_planner/greedy_memory_planner.cc): buffers by
  size, largest first (equal sizes: the last added first), each at the lowest
  offset where it fits among the buffers placed so far that are live at the same time.
- `lowest_fit(order)`: the same placement rule for any order. Every placement is reachable this
  way: take an optimal plan, place its buffers in the order of their offsets at the lowest
  offset that fits, and each lands at or below its optimal offset (the buffers below it and
  live with it end no higher than before). So searching orders is searching all plans.
- `tighter`: several orders (by size, lifetime, area, first use), lowest-fit and best-fit,
  then a depth-first search over orders with a node and time budget, stopping as soon as a plan
  meets the lower bound (the most bytes ever live at one time), which no plan can beat. When the
  search finishes within its budget its result is optimal; otherwise it is the best found.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

ALIGNMENT = 16            # MicroArenaBufferAlignment(): TFLM rounds every planned size up to it
NODE_BUDGET = 200_000     # placements the exact search may try before it keeps the best so far
TIME_BUDGET = 20.0        # seconds, for the same reason on graphs with hundreds of tensors


@dataclass(frozen=True)
class Buffer:
    key: int        # the tensor index (scratch buffers are not planned offline)
    size: int       # bytes, a multiple of ALIGNMENT
    first: int      # first allocation scope in which the buffer is live
    last: int       # last one

    def live_with(self, other: "Buffer") -> bool:
        return not (self.first > other.last or other.first > self.last)


@dataclass
class Placement:
    offsets: dict[int, int]     # buffer key -> offset in the arena's planned (head) section
    arena: int                  # highest end of any buffer
    method: str
    nodes: int = 0              # placements the search tried (0 for single orders)
    optimal: bool = False       # proven: meets the lower bound


def align(size: int) -> int:
    return (size + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def lower_bound(buffers: list[Buffer]) -> int:
    """The most bytes live in any one scope: no plan needs less."""
    scopes = {b.first for b in buffers}
    return max((sum(b.size for b in buffers if b.first <= s <= b.last) for s in scopes), default=0)


def overlapping(buffers: list[Buffer], offsets: dict[int, int]) -> list[tuple[int, int]]:
    """Pairs of buffer keys that are live together and share bytes (an empty list for a valid plan)."""
    clashes = []
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            if a.live_with(b) and offsets[a.key] < offsets[b.key] + b.size and \
                    offsets[b.key] < offsets[a.key] + a.size:
                clashes.append((a.key, b.key))
    return clashes


def _fit(buffer: Buffer, placed: list[tuple[int, Buffer]], best_fit: bool) -> int:
    """The offset for `buffer` among `placed` (offset, buffer), sorted by offset."""
    candidate, choice, choice_gap = 0, None, None
    for offset, other in placed:
        if not buffer.live_with(other):
            continue
        gap = offset - candidate
        if gap >= buffer.size:
            if not best_fit:
                return candidate
            if choice_gap is None or gap < choice_gap:
                choice, choice_gap = candidate, gap
        candidate = max(candidate, offset + other.size)
    return candidate if choice is None else choice


def _insert(placed: list[tuple[int, Buffer]], offset: int, buffer: Buffer) -> None:
    at = len(placed)
    while at > 0 and placed[at - 1][0] > offset:
        at -= 1
    placed.insert(at, (offset, buffer))


def lowest_fit(order: list[Buffer], method: str, best_fit: bool = False,
               preplaced: tuple[tuple[int, Buffer], ...] = ()) -> Placement:
    """`order` placed one by one at the lowest (or best) fitting offset, around the `preplaced` (offset, buffer)."""
    placed: list[tuple[int, Buffer]] = []
    offsets, arena = {}, 0
    for offset, buffer in preplaced:
        _insert(placed, offset, buffer)
        offsets[buffer.key] = offset
        arena = max(arena, offset + buffer.size)
    for buffer in order:
        offset = _fit(buffer, placed, best_fit)
        _insert(placed, offset, buffer)
        offsets[buffer.key] = offset
        arena = max(arena, offset + buffer.size)
    return Placement(offsets, arena, method)


def greedy(buffers: list[Buffer], fixed: dict[int, int] | None = None) -> Placement:
    """TFLM's own plan for these buffers (given in the order TFLM adds them: by tensor index).

    TFLM copies the buffers it plans into its sort array from the back, then sorts that array by
    size with a stable bubble sort: buffers of equal size go in reverse order of addition. `fixed`:
    the offsets of offline-planned buffers (a model's OfflineMemoryAllocation), which TFLM places first,
    in the order added, and fits the others around."""
    fixed = fixed or {}
    online = [b for b in buffers if b.key not in fixed]
    return lowest_fit(sorted(reversed(online), key=lambda b: -b.size), "tflm-greedy",
                      preplaced=tuple((fixed[b.key], b) for b in buffers if b.key in fixed))


ORDERS = {
    "size": lambda b: (-b.size, b.first),
    "size-then-lifetime": lambda b: (-b.size, -(b.last - b.first), b.first),
    "lifetime": lambda b: (-(b.last - b.first), -b.size),
    "area": lambda b: (-b.size * (b.last - b.first + 1), -b.size),
    "first-use": lambda b: (b.first, -b.size),
    "last-use": lambda b: (-b.last, -b.size),
}


def tighter(buffers: list[Buffer], node_budget: int = NODE_BUDGET, time_budget: float = TIME_BUDGET) -> Placement:
    """The smallest placement found: TFLM's greedy, the ordering heuristics, then the exact search."""
    bound = lower_bound(buffers)
    best = greedy(buffers)
    for name, key in ORDERS.items():
        for best_fit in (False, True):
            if best.arena <= bound:
                break
            candidate = lowest_fit(sorted(buffers, key=key), f"{name} {'best' if best_fit else 'lowest'}-fit",
                                   best_fit)
            best = candidate if candidate.arena < best.arena else best
    if best.arena > bound:
        found, nodes, finished = _search(buffers, best.arena, bound, node_budget, time.monotonic() + time_budget)
        if found is not None:
            best = found
        best.nodes = nodes
        best.optimal = finished  # the search ran out of branches: nothing smaller exists
    best.optimal = best.optimal or best.arena <= bound
    return best


@dataclass
class _Search:
    buffers: list[Buffer]
    bound: int
    best_arena: int
    nodes_left: int
    deadline: float
    nodes: int = 0
    best_offsets: dict = field(default_factory=dict)
    stopped: bool = False

    def out_of_budget(self) -> bool:
        if self.nodes_left <= 0 or (self.nodes % 256 == 0 and time.monotonic() > self.deadline):
            self.stopped = True
        return self.stopped


def _search(buffers: list[Buffer], incumbent: int, bound: int, node_budget: int, deadline: float
            ) -> tuple[Placement | None, int, bool]:
    """(a placement smaller than `incumbent` or None, nodes tried, whether the search was exhaustive).

    Depth-first over orders in which the offsets lowest-fit gives never decrease (ties by position):
    some optimal plan is reached that way. Re-placing a plan in the order of its offsets moves no
    buffer up (see the module's note); repeating that ends at a plan which re-placing in its own
    offset order reproduces, so it comes from an order with non-decreasing offsets. A buffer placed
    later can only go higher (more obstacles), so a branch is cut as soon as some remaining buffer,
    at its lowest fit or at the last offset if that is higher, would end at or above the best arena
    found."""
    ordered = sorted(buffers, key=lambda b: (-b.size, b.first))
    state = _Search(ordered, bound, incumbent, node_budget, deadline)
    _descend(state, [], {}, 0, (0, -1), list(range(len(ordered))))
    found = Placement(state.best_offsets, state.best_arena, "order search") if state.best_offsets else None
    # not stopped: every branch was explored or cut, or a plan met the lower bound
    return found, state.nodes, not state.stopped


def _descend(state: _Search, placed: list, offsets: dict, arena: int, last: tuple[int, int],
             remaining: list[int]) -> None:
    if not remaining:
        state.best_arena, state.best_offsets = arena, dict(offsets)
        return
    options = []
    for index in remaining:
        buffer = state.buffers[index]
        offset = _fit(buffer, placed, best_fit=False)
        if max(offset, last[0]) + buffer.size >= state.best_arena:
            return  # this buffer cannot fit under the best arena in any completion
        if (offset, index) > last:
            options.append((offset, index))
    for offset, index in options:
        if state.best_arena <= state.bound or state.out_of_budget():
            return
        buffer = state.buffers[index]
        state.nodes += 1
        state.nodes_left -= 1
        child = list(placed)
        _insert(child, offset, buffer)
        offsets[buffer.key] = offset
        _descend(state, child, offsets, max(arena, offset + buffer.size), (offset, index),
                 [i for i in remaining if i != index])
        del offsets[buffer.key]
