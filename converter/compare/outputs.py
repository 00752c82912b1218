"""Bit-for-bit comparison against TFLM, the golden runtime: the one comparator the kit uses for
runtime outputs (validate, convert), golden checks, intermediate tensors (divergence) and the
bytes a firmware self-test prints (flash)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def differing(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """(vectors, elements) mask, True where an element's bits differ. Arrays of another type or
    size differ everywhere: a bit-exact comparison does not convert."""
    e = np.ascontiguousarray(expected).reshape(len(expected), -1)
    a = np.ascontiguousarray(actual).reshape(len(actual), -1)
    if e.dtype != a.dtype or e.shape != a.shape:
        return np.ones(e.shape, dtype=bool)
    if e.dtype.itemsize not in (1, 2, 4, 8):  # no tensor type the kit reads
        return e != a
    bits = np.dtype(f"u{e.dtype.itemsize}")  # compare bits, not values: -0.0 differs from 0.0, NaN from itself never
    return e.view(bits) != a.view(bits)


@dataclass(frozen=True)
class Mismatch:
    """The first value that differs, and how many do."""
    vector: int
    output: int
    index: int
    expected: object
    actual: object
    differing: int
    total: int

    def __str__(self) -> str:
        return (f"vector {self.vector} output {self.output} index {self.index}: expected {self.expected!r}, "
                f"got {self.actual!r} ({self.differing} of {self.total} values differ)")


def first_mismatch(expected: list[np.ndarray], actual: list[np.ndarray]) -> Mismatch | None:
    """The first differing value, output by output, or None when every bit matches."""
    for j, (e, a) in enumerate(zip(expected, actual)):
        mask = differing(e, a)
        if mask.any():
            vector = int(np.argmax(mask.any(axis=1)))
            index = int(np.argmax(mask[vector]))
            e2 = e.reshape(len(e), -1)
            a2 = a.reshape(len(a), -1)
            got = a2[vector, index].item() if vector < len(a2) and index < a2.shape[1] else None
            return Mismatch(vector, j, index, e2[vector, index].item(), got, int(np.count_nonzero(mask)), mask.size)
    return None


def first_differing_byte(expected: bytes, actual: bytes) -> int | None:
    """Position of the first byte that differs (a shorter sequence differs where it ends), or None."""
    shorter = min(len(expected), len(actual))
    if expected[:shorter] != actual[:shorter]:
        difference = np.frombuffer(expected[:shorter], np.uint8) != np.frombuffer(actual[:shorter], np.uint8)
        return int(np.argmax(difference))
    return None if len(expected) == len(actual) else shorter


def compare_outputs(golden: list[np.ndarray], candidate: list[np.ndarray]) -> dict:
    """Vectors whose every output bit matches, and the largest difference in LSB (quantized units)."""
    count = len(golden[0])
    vector_equal = np.ones(count, dtype=bool)
    max_lsb = 0
    differing_elements = 0
    for expected, actual in zip(golden, candidate):
        mask = differing(expected, actual)
        vector_equal &= ~mask.any(axis=1)
        differing_elements += int(np.count_nonzero(mask))
        difference = np.abs(expected.reshape(count, -1).astype(np.float64) - actual.reshape(count, -1).astype(np.float64))
        if difference.size:
            max_lsb = max(max_lsb, float(difference.max()))
    integral = all(np.issubdtype(g.dtype, np.integer) for g in golden)
    return {
        "equal": int(vector_equal.sum()),
        "total": int(count),
        "max_lsb": int(max_lsb) if integral else None,
        "max_abs_difference": max_lsb,
        "differing_elements": differing_elements,
        "first_differing_vector": None if vector_equal.all() else int(np.argmin(vector_equal)),
    }


def bit_exact(result: dict) -> bool:
    return result["equal"] == result["total"]
