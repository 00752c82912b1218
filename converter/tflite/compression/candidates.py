"""The constant INT8 tensors a DECODE encoding may replace, and the reason for each one left alone."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tflite_model import TfliteModel

# Operator inputs TFLM's kernels read in Prepare and check with IsConstantTensor (a DECODE output
# is filled only in Invoke): shapes and parameters, per the portable kernels at TFLM 90b983c.
MUST_STAY_CONSTANT = frozenset({
    ("PAD", 1), ("PADV2", 1), ("TRANSPOSE", 1), ("STRIDED_SLICE", 1), ("STRIDED_SLICE", 2),
    ("STRIDED_SLICE", 3), ("EXPAND_DIMS", 1), ("FILL", 0), ("BROADCAST_TO", 1), ("SPLIT", 0),
    ("SPLIT_V", 2), ("RESIZE_BILINEAR", 1), ("RESIZE_NEAREST_NEIGHBOR", 1),
})


@dataclass(frozen=True)
class Candidate:
    """A constant INT8 tensor and the quantization its decoder will read."""

    subgraph: int
    tensor: int
    name: str
    array: np.ndarray
    channels: int                 # number of quantization scales
    axis: int | None              # quantized dimension when per channel, else None
    zero_points: tuple            # one per channel (or one)
    consumers: tuple              # operator names

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)


def _quantization(tensor) -> tuple[int, int | None, tuple]:
    quant = tensor.quantization
    scales = None if quant is None else quant.scale
    count = len(scales) if scales is not None else 1
    zeros = tuple(int(z) for z in (quant.zeroPoint if quant is not None and quant.zeroPoint is not None else [0]))
    axis = (quant.quantizedDimension or 0) if count > 1 else None
    return count, axis, zeros or (0,)


@dataclass(frozen=True)
class SkippedTensor:
    """A constant INT8 tensor no encoding stores, and why (the record's `skipped` rows)."""

    subgraph: int
    tensor: int
    name: str
    bytes: int
    unique_values: int
    reason: str

    def as_dict(self) -> dict:
        return {"subgraph": self.subgraph, "tensor": self.tensor, "name": self.name, "bytes": self.bytes,
                "unique_values": self.unique_values, "reason": self.reason}


def find_candidates(model: TfliteModel) -> tuple[list[Candidate], list[SkippedTensor]]:
    """Every constant INT8 tensor: as a Candidate, or in `skipped` with the reason."""
    users = model.buffer_users()
    found: list[Candidate] = []
    skipped: list[SkippedTensor] = []
    for s, subgraph in enumerate(model.subgraphs):
        for t, tensor in enumerate(subgraph.tensors or []):
            if model.tensor_type(tensor) != "INT8" or (array := model.constant(tensor)) is None:
                continue
            name = model.tensor_name(tensor) or f"tensor {t}"
            reads = [(model.operator_name(subgraph.operators[o]), p) for o, p in model.consumers(t, s)]
            reason = None
            if any(read in MUST_STAY_CONSTANT for read in reads):
                reason = "an operator needs it constant at Prepare"
            elif users[tensor.buffer] > 1:
                reason = "its buffer is shared with another tensor"
            elif not reads:
                reason = "no operator reads it"
            if reason:
                skipped.append(skip_row(s, t, name, array, reason))
                continue
            channels, axis, zeros = _quantization(tensor)
            found.append(Candidate(s, t, name, array, channels, axis, zeros, tuple(op for op, _ in reads)))
    return found, skipped


def skip_row(subgraph: int, tensor: int, name: str, array: np.ndarray, reason: str) -> SkippedTensor:
    return SkippedTensor(subgraph, tensor, name, int(array.nbytes), int(len(np.unique(array))), reason)
