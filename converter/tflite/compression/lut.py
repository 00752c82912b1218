"""LUT compression: b-bit indices into value tables, written by TFLM's own compressor.

TF-MOT clustering leaves at most k distinct values per channel in a float kernel, and per-channel
int8 quantization keeps them distinct and at most k. TFLM's LUT compression stores such a tensor
as b-bit indices into value tables, decoded by TFLM_DECODE into the arena before its consumer runs.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np

from ...errors import KitError, foreign_text
from .candidates import Candidate

DCM_BYTES = 16       # TFLM's DecodeCommonMetadata header in front of every ancillary tensor
MAX_LUT_BITS = 7     # the LUT ancillary data holds index widths 1..7


@dataclass(frozen=True)
class LutChoice:
    """How one tensor is stored after LUT compression."""

    subgraph: int
    tensor: int
    name: str
    shape: tuple
    consumers: tuple
    unique_values: int            # distinct values in the whole tensor
    max_unique_per_table: int     # distinct values in the largest value table of the chosen layout
    axis: int | None              # None: one table for the tensor; else one table per slice along axis
    bits: int
    bytes_before: int
    bytes_after: int              # packed indices + DCM + value tables

    def as_dict(self) -> dict:
        # no "method" key: LUT rows stay as manifests recorded them before PRUNE existed
        return {"subgraph": self.subgraph, "tensor": self.tensor, "name": self.name,
                "shape": list(self.shape), "consumers": list(self.consumers), "unique_values": self.unique_values,
                "max_unique_per_table": self.max_unique_per_table,
                "layout": "per_tensor" if self.axis is None else f"per_channel(axis={self.axis})",
                "index_bits": self.bits, "bytes_before": self.bytes_before, "bytes_after": self.bytes_after}


def index_bits(distinct: int) -> int:
    """The smallest index width that addresses `distinct` table entries (at least 1 bit)."""
    return max(1, (distinct - 1).bit_length())


def lut_bytes(elements: int, bits: int, tables: int, table_len: int, itemsize: int) -> int:
    """Bytes TFLM's LUT compressor writes: packed indices, plus the DCM header and padded value tables."""
    return (elements * bits + 7) // 8 + DCM_BYTES + tables * table_len * itemsize


def layout(array: np.ndarray, channels: int, axis: int | None) -> tuple[int | None, int, int] | None:
    """(axis, tables, largest table) that TFLM's DECODE kernel reads for this tensor, or None.

    The LUT decoder (decode_state_lut.cc, checked at TFLM 90b983c) ignores the axis written in the
    ancillary data: it keeps one value table per quantization scale, along the quantized dimension,
    which must be 0 or the last axis. A per-tensor table on a per-channel-quantized tensor is
    accepted by the compressor but decoded wrongly, so the layout follows the quantization.
    """
    if axis is None or channels <= 1:
        return None, 1, len(np.unique(array))
    if axis not in (0, array.ndim - 1) or array.shape[axis] != channels:
        return None
    slices = np.moveaxis(array, axis, 0).reshape(channels, -1)
    return axis, channels, max(len(np.unique(s)) for s in slices)


def plan_lut(candidate: Candidate, max_bits: int = MAX_LUT_BITS) -> tuple[LutChoice | None, str | None]:
    """The LUT encoding of a candidate, or None and the reason it does not qualify."""
    chosen_layout = layout(candidate.array, candidate.channels, candidate.axis)
    if chosen_layout is None:
        return None, "its quantization axis is neither the first nor the last (TFLM's decoder needs one of them)"
    axis, tables, table_len = chosen_layout
    array = candidate.array
    bits = index_bits(table_len)
    size = lut_bytes(array.size, bits, tables, table_len, array.itemsize)
    choice = LutChoice(candidate.subgraph, candidate.tensor, candidate.name, tuple(int(d) for d in array.shape),
                       candidate.consumers, int(len(np.unique(array))), table_len, axis, bits,
                       candidate.nbytes, size)
    if bits > max_bits:
        return None, f"{table_len} distinct values need a {bits}-bit index (max_index_bits: {max_bits})"
    if size >= candidate.nbytes:
        return None, f"LUT would not shrink it ({candidate.nbytes} -> {size} B)"
    return choice, None


def compress_bytes(model_bytes: bytes, choices: list[LutChoice]) -> bytes:
    """The flatbuffer with the chosen tensors LUT-compressed and TFLM_DECODE operators inserted."""
    from tflite_micro.tensorflow.lite.micro import compression
    from tflite_micro.tensorflow.lite.micro.compression import spec

    specs = [spec.Tensor(c.subgraph, c.tensor, [spec.LookUpTableCompression(
        index_bitwidth=c.bits, mode=spec.PerTensor() if c.axis is None else spec.PerChannel(axis=c.axis))])
        for c in choices]
    printed = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(printed):
            warnings.simplefilter("ignore")
            return bytes(compression.compress(model_bytes, specs))
    except Exception as exc:
        raise KitError(f"TFLM's LUT compressor failed: {foreign_text(exc)}",
                       "remove the compress step from the recipe and report this with the model") from None
