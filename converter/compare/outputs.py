"""Bit-for-bit comparison of runtimes' outputs against TFLM, the golden runtime."""
from __future__ import annotations

import numpy as np


def compare_outputs(golden: list[np.ndarray], candidate: list[np.ndarray]) -> dict:
    """Vectors whose every output byte matches, and the largest difference in LSB (quantized units)."""
    count = len(golden[0])
    vector_equal = np.ones(count, dtype=bool)
    max_lsb = 0
    differing = 0
    for expected, actual in zip(golden, candidate):
        expected = expected.reshape(count, -1)
        actual = actual.reshape(count, -1)
        vector_equal &= np.all(expected.view(np.uint8).reshape(count, -1) == actual.view(np.uint8).reshape(count, -1), axis=1)
        difference = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
        differing += int(np.count_nonzero(difference))
        if difference.size:
            max_lsb = max(max_lsb, float(difference.max()))
    integral = all(np.issubdtype(g.dtype, np.integer) for g in golden)
    return {
        "equal": int(vector_equal.sum()),
        "total": int(count),
        "max_lsb": int(max_lsb) if integral else None,
        "max_abs_difference": max_lsb,
        "differing_elements": differing,
        "first_differing_vector": None if vector_equal.all() else int(np.argmin(vector_equal)),
    }


def bit_exact(result: dict) -> bool:
    return result["equal"] == result["total"]
