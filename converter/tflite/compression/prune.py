"""The PRUNE encoder for TFLM's DECODE kernel (TFLM's own Python compressor for it is a stub).

Written from the decoder, tensorflow/lite/micro/kernels/decode_state_prune.cc at TFLM 90b983c:

- ancillary tensor: the 16-byte DCM (byte 0: decode type 2 = PRUNE, byte 1: DCM version 1,
  byte 4: PRUNE version 1) followed by the value table: every kept element, in the decoded
  tensor's type, in the tensor's memory order;
- encoded tensor: one bit per element of the decoded tensor, most significant bit first
  (element i is bit 7 - i % 8 of byte i // 8); 1 takes the next value of the table, 0 writes
  the zero point;
- the zero point comes from the decoded tensor's quantization: one per channel when there are
  several and any is non-zero (channel = i // (elements / channels) for the quantized dimension
  0, i % channels when it is the last dimension), else the first one; types other than int8
  need all zero points 0.

An element is pruned exactly when it equals its channel's zero point, i.e. a float weight of 0,
so decoding reproduces every byte.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .candidates import Candidate
from .lut import DCM_BYTES

DECODE_TYPE_PRUNE = 2
DCM_VERSION = 1
PRUNE_VERSION = 1
# What one more DECODE costs the flatbuffer besides the encoded data: the operator, the decoded
# and ancillary tensors (with names) and two 16-byte-aligned buffers. Measured 309-312 B per tensor
# on the demo model (bench/compression_options.py); a tensor is pruned only when it saves more.
DECODE_OVERHEAD_BYTES = 320


@dataclass(frozen=True)
class PruneChoice:
    subgraph: int
    tensor: int
    name: str
    shape: tuple
    consumers: tuple
    kept: int                 # elements stored in the value table
    bytes_before: int
    bytes_after: int          # bitmask + DCM + kept values

    @property
    def sparsity(self) -> float:
        elements = int(np.prod(self.shape)) if self.shape else 1
        return 1 - self.kept / elements

    def as_dict(self) -> dict:
        return {"method": "prune", "subgraph": self.subgraph, "tensor": self.tensor, "name": self.name,
                "shape": list(self.shape), "consumers": list(self.consumers), "kept_values": self.kept,
                "sparsity": round(self.sparsity, 4), "bytes_before": self.bytes_before,
                "bytes_after": self.bytes_after}


def element_zero_points(shape: tuple, zero_points: tuple, axis: int | None) -> np.ndarray:
    """The zero point the decoder writes for each element (flattened), as decode_state_prune.cc picks it."""
    elements = int(np.prod(shape)) if shape else 1
    channels = len(zero_points)
    if channels > 1 and any(zero_points):
        zeros = np.asarray(zero_points, np.int64)
        if axis == len(shape) - 1:
            return np.tile(zeros, elements // channels)
        return np.repeat(zeros, elements // channels)
    return np.full(elements, zero_points[0] if zero_points else 0, np.int64)


def kept_mask(candidate: Candidate) -> np.ndarray:
    flat = candidate.array.reshape(-1).astype(np.int64)
    return flat != element_zero_points(candidate.array.shape, candidate.zero_points, candidate.axis)


def prune_bytes(elements: int, kept: int, itemsize: int) -> int:
    return (elements + 7) // 8 + DCM_BYTES + kept * itemsize


def plan_prune(candidate: Candidate) -> tuple[PruneChoice | None, str | None]:
    if candidate.axis is not None and candidate.axis not in (0, candidate.array.ndim - 1):
        return None, "its quantization axis is neither the first nor the last (TFLM's decoder needs one of them)"
    kept = int(kept_mask(candidate).sum())
    size = prune_bytes(candidate.array.size, kept, candidate.array.itemsize)
    if size + DECODE_OVERHEAD_BYTES >= candidate.nbytes:
        return None, f"PRUNE would not shrink it ({candidate.nbytes} -> {size} B + ~{DECODE_OVERHEAD_BYTES} B " \
                     f"for the DECODE operator; {kept} of {candidate.array.size} values kept)"
    return PruneChoice(candidate.subgraph, candidate.tensor, candidate.name,
                       tuple(int(d) for d in candidate.array.shape), candidate.consumers, kept,
                       candidate.nbytes, size), None


def encode_prune(candidate: Candidate) -> tuple[bytes, bytes]:
    """(encoded bitmask, ancillary data) of a candidate tensor."""
    mask = kept_mask(candidate)
    bitmask = np.packbits(mask, bitorder="big").tobytes()  # element i -> bit 7 - i % 8 of byte i // 8
    dcm = bytearray(DCM_BYTES)
    dcm[0], dcm[1], dcm[4] = DECODE_TYPE_PRUNE, DCM_VERSION, PRUNE_VERSION
    values = candidate.array.reshape(-1)[mask]
    return bitmask, bytes(dcm) + values.tobytes()


def decode_prune(encoded: bytes, ancillary: bytes, shape: tuple, zero_points: tuple, axis: int | None,
                 dtype=np.int8) -> np.ndarray:
    """The inverse, as the C++ decoder computes it (for tests and for reading compressed models)."""
    elements = int(np.prod(shape)) if shape else 1
    mask = np.unpackbits(np.frombuffer(encoded, np.uint8), bitorder="big")[:elements].astype(bool)
    out = element_zero_points(shape, zero_points, axis).astype(dtype)
    out[mask] = np.frombuffer(ancillary[DCM_BYTES:], dtype)[:int(mask.sum())]
    return out.reshape(shape)
