"""An offline memory plan for TFLM: tensor lifetimes, placement, and the `OfflineMemoryAllocation` metadata.

TFLM (micro_allocator.cc, micro_allocation_info.cc) plans the arena's non-persistent section when
a model is allocated: every tensor with no data in the flatbuffer (activations, DECODE outputs),
that is not a variable and has bytes, gets a lifetime in "allocation scopes" and a place from its
greedy planner. A model may carry that place itself: the metadata entry "OfflineMemoryAllocation"
names a buffer of int32 values [version 0, subgraph 0, number of tensors, one offset per tensor of
every subgraph]; -1 leaves a tensor to the online planner, which then fits it (and the kernels'
scratch buffers, which are always planned online) into the gaps of the offline plan.

Lifetimes follow AllocationInfoBuilder::MarkAllocationLifetimes: the subgraph inputs are live from
scope 0; operator i opens scope i + 1, in which its outputs are created and its inputs last read;
the subgraph outputs stay live to the last scope. Only single-subgraph models are planned here
(control-flow operators nest their subgraphs' scopes into the caller's).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .memory_placement import Buffer, Placement, align, greedy, lower_bound, tighter
from .schema import NUMPY_TYPES
from .tflite_model import TfliteModel

METADATA_NAME = "OfflineMemoryAllocation"
ONLINE = -1                 # kOnlinePlannedBuffer


class NotPlannable(ValueError):
    """The model has something this planner does not model (the reason is the message)."""


@dataclass
class MemoryPlan:
    buffers: list[Buffer]
    greedy: Placement           # what TFLM's own planner does with the same buffers
    planned: Placement          # the smallest placement found
    lower_bound: int            # the most bytes live at one time
    tensor_count: int           # tensors in the model (one metadata entry each)

    @property
    def saving(self) -> int:
        return self.greedy.arena - self.planned.arena

    def offsets(self) -> list[int]:
        """One entry per tensor, as the metadata holds them."""
        return [self.planned.offsets.get(t, ONLINE) for t in range(self.tensor_count)]

    def as_dict(self) -> dict:
        return {"tensors_planned": len(self.buffers), "greedy_bytes": self.greedy.arena,
                "planned_bytes": self.planned.arena, "lower_bound_bytes": self.lower_bound,
                "method": self.planned.method, "search_nodes": self.planned.nodes,
                "optimal": self.planned.optimal}


def _byte_length(model: TfliteModel, tensor) -> int:
    dtype = NUMPY_TYPES.get(model.tensor_type(tensor))
    if dtype is None:
        raise NotPlannable(f"tensor {model.tensor_name(tensor)!r} has type {model.tensor_type(tensor)}, "
                           "whose size in the arena the planner does not know")
    return int(np.prod(model.shape(tensor), dtype=np.int64)) * np.dtype(dtype).itemsize


def lifetimes(model: TfliteModel) -> list[Buffer]:  # noqa: C901 (one walk over the graph; to split)
    """The tensors TFLM plans in the arena, with their aligned sizes and lifetimes (scopes)."""
    if len(model.subgraphs) != 1:
        raise NotPlannable(f"the model has {len(model.subgraphs)} subgraphs; only single-subgraph models "
                           "are planned offline")
    subgraph = model.subgraph
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def created(t: int, scope: int) -> None:
        first.setdefault(t, scope)

    def used(t: int, scope: int) -> None:
        last[t] = scope

    for t in subgraph.inputs if subgraph.inputs is not None else []:
        created(int(t), 0)
        used(int(t), 0)
    scope = 0
    for operator in model.operators:
        scope += 1
        outputs = [int(t) for t in (operator.outputs if operator.outputs is not None else [])]
        for t in outputs:
            created(t, scope)
        for t in operator.inputs if operator.inputs is not None else []:
            if int(t) >= 0:  # -1: an omitted optional input
                used(int(t), scope)
        for t in outputs:
            used(t, scope)
    for t in subgraph.outputs if subgraph.outputs is not None else []:
        created(int(t), scope)
        used(int(t), scope)
    buffers = []
    for t, tensor in enumerate(model.tensors):
        if model.data(tensor) is not None or tensor.isVariable or t not in first:
            continue  # constants live in the flatbuffer, variables in the persistent section
        size = _byte_length(model, tensor)
        if size:
            buffers.append(Buffer(t, align(size), first[t], last[t]))
    return buffers


def plan_memory(model_bytes: bytes, **budget) -> MemoryPlan:
    """TFLM's greedy plan and the tightest one found, for the model's tensors (scratch buffers excluded:
    their sizes are known only to the kernels, at run time)."""
    model = TfliteModel.from_bytes(model_bytes)
    buffers = lifetimes(model)
    return MemoryPlan(buffers, greedy(buffers), tighter(buffers, **budget), lower_bound(buffers),
                      len(model.tensors))


def read_offline_plan(model_bytes: bytes) -> list[int] | None:
    """The per-tensor offsets of the model's OfflineMemoryAllocation entry, or None."""
    model = TfliteModel.from_bytes(model_bytes)
    for entry in model.root.metadata or []:
        if (entry.name or b"").decode(errors="replace") == METADATA_NAME:
            raw = model.buffers[entry.buffer].data
            values = np.frombuffer(bytes(np.asarray(raw, np.uint8)), "<i4")
            return [int(v) for v in values[3:3 + int(values[2])]]
    return None


def with_offline_plan(model_bytes: bytes, offsets: list[int]) -> bytes:
    """The model with `offsets` (one per tensor, -1 = online) as its OfflineMemoryAllocation entry,
    replacing any earlier one (Vela writes them too)."""
    from .schema import schema

    model = TfliteModel.from_bytes(model_bytes)
    if len(offsets) != sum(len(s.tensors or []) for s in model.subgraphs):
        raise ValueError(f"{len(offsets)} offsets for a model with "
                         f"{sum(len(s.tensors or []) for s in model.subgraphs)} tensors")
    # version 0 and subgraph 0; TFLM reads only the count and the offsets (GetOfflinePlannedOffsets)
    values = np.array([0, 0, len(offsets), *offsets], "<i4")
    metadata = [m for m in model.root.metadata or [] if (m.name or b"").decode(errors="replace") != METADATA_NAME]
    for entry in model.root.metadata or []:
        if entry not in metadata:
            model.buffers[entry.buffer].data = None
    entry = schema.MetadataT()
    entry.name = METADATA_NAME.encode()
    entry.buffer = model.add_buffer(values.tobytes())
    model.root.metadata = metadata + [entry]
    model.compact()
    # 16-byte aligned buffers, as the kit's DECODE models are written (re-packing would lose that)
    return model.to_bytes(aligned=True)
