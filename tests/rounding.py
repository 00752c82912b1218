"""Integer requantization as TFLite kernels do it, in both rounding modes.

An int8 kernel accumulates in int32 and scales the sum by real = s_in * s_w / s_out,
stored as a Q31 multiplier M and a power-of-two shift. Kernels differ in how they round:

- double rounding (gemmlowp): round in SaturatingRoundingDoublingHighMul, then again in
  RoundingDivideByPOT. TFLM's reference kernels use this.
- single rounding (TFLITE_SINGLE_ROUNDING): one rounding of (acc * M) >> (31 - shift).
  LiteRT's reference FULLY_CONNECTED uses this.

The two differ by one LSB when the first rounding pushes a value across a .5 boundary.
tests/test_rounding_evidence.py shows each mode reproducing its runtime bit for bit.
"""
from __future__ import annotations

import math

import numpy as np


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(Q31 multiplier, shift) with real = M * 2^(shift - 31), as tflite::QuantizeMultiplier."""
    if real == 0:
        return 0, 0
    fraction, shift = math.frexp(real)
    multiplier = int(round(fraction * (1 << 31)))
    if multiplier == 1 << 31:
        multiplier //= 2
        shift += 1
    return multiplier, shift


def _rounding_doubling_high_mul(a: np.ndarray, multiplier: int) -> np.ndarray:
    product = a.astype(object) * multiplier  # exact: int64 would overflow for large accumulators
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    total = product + nudge
    # C++ integer division truncates toward zero.
    quotient = np.array([abs(t) // (1 << 31) * (1 if t >= 0 else -1) for t in total.ravel()], dtype=object)
    return quotient.reshape(a.shape)


def _rounding_divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def double_rounding(acc: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    left, right = max(shift, 0), max(-shift, 0)
    high = _rounding_doubling_high_mul(np.asarray(acc, dtype=object) * (1 << left), multiplier)
    return _rounding_divide_by_pot(high, right).astype(np.int64)


def single_rounding(acc: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    total_shift = 31 - shift
    product = np.asarray(acc, dtype=object) * multiplier
    return ((product + (1 << (total_shift - 1))) >> total_shift).astype(np.int64)
