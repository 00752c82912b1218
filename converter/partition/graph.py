"""Cuts of an int8 graph: tensor sets that separate it into a head (part 0) and a tail (part 1).

A cut is a set of operators closed under "runs before" (every producer of a tensor an operator
reads is in the set too). The tensors crossing from that set to the rest are what part 0 sends
and part 1 receives; a residual branch makes a cut carry two or more tensors.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import KitError

# Enumerating every closed operator set is exponential in parallel branches; past this many the
# search keeps the cuts along the execution order (one per position), which still covers the graph.
MAX_CUTS = 2000


@dataclass(frozen=True)
class Op:
    index: int
    name: str
    inputs: tuple      # activation tensor indices read (constants and omitted inputs left out)
    outputs: tuple


@dataclass(frozen=True)
class GraphView:
    """What cutting needs from a model: operators in execution order and the model's I/O."""
    ops: tuple
    inputs: tuple          # model input tensor indices
    outputs: tuple         # model output tensor indices
    tensor_names: dict     # tensor index -> name

    def producer(self) -> dict:
        return {t: op.index for op in self.ops for t in op.outputs}


@dataclass(frozen=True)
class Cut:
    head: tuple          # operator indices of part 0, in execution order
    tail: tuple          # operator indices of part 1, in execution order
    tensors: tuple       # tensor indices crossing the cut, in the order part 0 outputs them

    @property
    def key(self) -> str:
        return "+".join(str(t) for t in self.tensors)


def _crossing(view: GraphView, head: set) -> tuple:
    producer = view.producer()
    crossing = []
    for op in view.ops:
        if op.index in head:
            continue
        for t in op.inputs:
            if producer.get(t) in head and t not in crossing:
                crossing.append(t)
    return tuple(sorted(crossing, key=lambda t: (producer[t], t)))


def _cut_from_head(view: GraphView, head: set) -> Cut | None:
    """The cut whose part 0 is `head`, or None when it is not a usable split."""
    if not head or len(head) == len(view.ops):
        return None
    producer = view.producer()
    if any(producer.get(t) in head for t in view.outputs):
        return None  # a model output would come out of part 0: no longer a two-stage pipeline
    tail_ops = [op for op in view.ops if op.index not in head]
    if any(t in view.inputs for op in tail_ops for t in op.inputs):
        return None  # part 1 would need the model input too
    crossing = _crossing(view, head)
    if not crossing:
        return None
    return Cut(tuple(op.index for op in view.ops if op.index in head),
               tuple(op.index for op in tail_ops), crossing)


def enumerate_cuts(view: GraphView) -> list[Cut]:
    """Every valid cut: all closed operator sets when there are at most MAX_CUTS, else the prefixes
    of the execution order. Sorted by the number of operators in part 0, then by tensor."""
    producer = view.producer()
    needs = {op.index: {producer[t] for t in op.inputs if t in producer} for op in view.ops}
    seen: set = set()
    frontier: list = [frozenset()]
    heads: list = []
    while frontier and len(seen) <= MAX_CUTS:
        head = frontier.pop()
        for op in view.ops:
            if op.index not in head and needs[op.index] <= head:
                grown = head | {op.index}
                if grown not in seen:
                    seen.add(grown)
                    frontier.append(grown)
                    heads.append(grown)
    if len(seen) > MAX_CUTS:
        heads = [frozenset(op.index for op in view.ops[:k]) for k in range(1, len(view.ops))]
    cuts = {}
    for head in heads:
        cut = _cut_from_head(view, set(head))
        if cut is not None:
            cuts[cut.head] = cut
    return sorted(cuts.values(), key=lambda c: (len(c.head), c.tensors))


def resolve_tensor(view: GraphView, name: str) -> int:
    """A tensor index from its name (or '#<index>'), refusing names the graph does not have."""
    if name.startswith("#") and name[1:].isdigit() and int(name[1:]) in view.tensor_names:
        return int(name[1:])
    matches = [t for t, n in view.tensor_names.items() if n == name]
    if not matches:
        produced = [view.tensor_names[t] for op in view.ops for t in op.outputs][:6]
        raise KitError(f"unknown tensor '{name}' in the model",
                       "name an activation tensor, e.g. " + ", ".join(f"'{n}'" for n in produced) +
                       " (see partition.json's cut list, or use '#<tensor index>')")
    return matches[0]


def cut_at(view: GraphView, tensors: list[int]) -> Cut:
    """The cut that sends exactly `tensors`: part 0 is everything they depend on."""
    producer = view.producer()
    names = ", ".join(view.tensor_names.get(t, str(t)) for t in tensors)
    for t in tensors:
        if t not in producer:
            raise KitError(f"tensor '{view.tensor_names.get(t, t)}' is not produced by an operator "
                           "(a model input or a constant) and cannot be a cut",
                           "name a tensor an operator writes")
    head, stack = set(), [producer[t] for t in tensors]
    by_index = {op.index: op for op in view.ops}
    while stack:
        index = stack.pop()
        if index not in head:
            head.add(index)
            stack.extend(producer[t] for t in by_index[index].inputs if t in producer)
    cut = _cut_from_head(view, head)
    if cut is None or set(cut.tensors) != set(tensors):
        needed = "" if cut is None else ", ".join(view.tensor_names.get(t, str(t)) for t in cut.tensors)
        raise KitError(f"the tensor set {{{names}}} does not separate the graph"
                       + (f": after the operators it depends on, part 1 also needs {{{needed}}}" if needed else
                          " (it leaves nothing to run on one side, or a model input/output on the wrong side)"),
                       "give every tensor that crosses from part 0 to part 1, comma-separated, or --cut auto")
    return cut
