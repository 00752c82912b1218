"""TFLM's Prepare arithmetic, reproduced in Python bit for bit (quantization_util.cc, kernel_util.cc,
padding.h). Every per-operator parameter the AOT code carries is computed here once, on the host.

Why each detail matters (docs/aot.md, "Numerics"): `TfLiteRound` rounds half away from zero (Python's
`round` rounds half to even); `QuantizeMultiplier` renormalises q == 2^31 and flushes shifts below -31;
activation clamps divide in float32 (`f / scale` with float operands), not double. IEEE arithmetic is
correctly rounded on the host and on the devices, so equal formulas give equal bits.
"""
from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


def round_away(x: float) -> int:
    """TfLiteRound / std::round: half away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier(double): (multiplier in Q31, shift: positive = left)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    multiplier, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"multiplier {real} is below one")
    return multiplier, shift


def f32(x) -> float:
    return float(np.float32(x))


def activation_range(activation: int, scale: float, zero_point: int,
                     qmin: int = INT8_MIN, qmax: int = INT8_MAX) -> tuple[int, int]:
    """CalculateActivationRangeQuantizedImpl: NONE 0, RELU 1, RELU_N1_TO_1 2, RELU6 3 (schema's
    ActivationFunctionType). `f / scale` is a float32 division, rounded half away from zero."""
    def quantize(f: float) -> int:
        return zero_point + round_away(f32(np.float32(f) / np.float32(scale)))

    if activation == 1:
        return max(qmin, quantize(0.0)), qmax
    if activation == 3:
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == 2:
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    if activation == 0:
        return qmin, qmax
    raise ValueError(f"fused activation {activation}")


def out_size(padding_same: bool, image: int, filter_: int, stride: int, dilation: int = 1) -> int:
    """ComputeOutSize."""
    effective = (filter_ - 1) * dilation + 1
    return (image + stride - 1) // stride if padding_same else (image + stride - effective) // stride


def padding(stride: int, dilation: int, image: int, filter_: int, out: int) -> int:
    """ComputePaddingWithOffset's padding (the offset half goes to the far side and is implicit)."""
    effective = (filter_ - 1) * dilation + 1
    total = max(0, (out - 1) * stride + effective - image)
    return total // 2


def conv_multipliers(input_scale: float, filter_scales, output_scale: float, channels: int):
    """PopulateConvolutionQuantizationParams: per output channel, double throughout (a per-tensor
    filter scale is broadcast). Also FULLY_CONNECTED's per-channel path."""
    scales = [f32(s) for s in filter_scales]
    pairs = [quantize_multiplier(f32(input_scale) * (scales[c] if len(scales) > 1 else scales[0]) / f32(output_scale))
             for c in range(channels)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


# FULLY_CONNECTED per tensor: how TFLM forms input scale x filter scale. Measured (tests/test_aot_params.py):
# TFLM 90b983c2 (the firmware's libraries) multiplies in float32 (GetQuantizedConvolutionMultipler);
# the tflite-micro Python interpreter the kit validates with (0.dev20261023) computes it in double, as for
# CONV_2D. The two multipliers differ for most scale triples and flip an output byte only rarely.
FC_PRODUCTS = ("double", "float32")


def fc_per_tensor_multiplier(input_scale: float, filter_scale: float, output_scale: float,
                             product: str = "double") -> tuple[int, int]:
    """FULLY_CONNECTED's per-tensor multiplier, with the input x filter scale product in `product`."""
    if product == "float32":
        joint = f32(np.float32(input_scale) * np.float32(filter_scale))
        return quantize_multiplier(joint / f32(output_scale))
    if product != "double":
        raise ValueError(f"product {product!r}: one of {FC_PRODUCTS}")
    return quantize_multiplier(f32(input_scale) * f32(filter_scale) / f32(output_scale))


def add_params(scale1: float, scale2: float, scale_out: float, left_shift: int = 20) -> dict:
    """add_common.cc for int8: left shift 20, both inputs rescaled to twice the larger input scale."""
    twice_max = 2 * float(max(f32(scale1), f32(scale2)))
    m1, s1 = quantize_multiplier(f32(scale1) / twice_max)
    m2, s2 = quantize_multiplier(f32(scale2) / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << left_shift) * f32(scale_out)))
    return {"left_shift": left_shift, "m1": m1, "s1": s1, "m2": m2, "s2": s2, "mo": mo, "so": so}


SOFTMAX_SCALED_DIFF_BITS = 5


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input multiplier, input left shift, diff_min): PreprocessSoftmaxScaling and CalculateInputRadius
    (double rounding build: the multiplier caps at 2^31 - 1)."""
    bits = SOFTMAX_SCALED_DIFF_BITS
    real = min(f32(beta) * f32(input_scale) * (1 << (31 - bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier_greater_than_one(real)
    radius = math.floor(1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift))
    return multiplier, left_shift, -radius


INT16_MIN, INT16_MAX = -32768, 32767


def softmax16_params(beta: float, input_scale: float) -> tuple[int, int]:
    """CalculateSoftmaxParams for int16: QuantizeMultiplier(double(in_scale) * double(beta) / (10 / 65535)),
    so that input differences [-65535, 0] map onto the exp table's [-10, 0]."""
    return quantize_multiplier(f32(input_scale) * f32(beta) / (10.0 / 65535.0))


def _round_f32(x: np.float32) -> np.float32:
    """TfLiteRound on a float: std::round (half away from zero), exact on float32 values."""
    return np.float32(round_away(float(x)))


def lut16(transform, input_scale: np.float32, input_zero_point: int, output_scale: np.float32,
          output_zero_point: int) -> list[int]:
    """detail::LUTPopulateInt16<float> (common.h) in float32, operation by operation: 512 samples with a
    midpoint correction, plus the end point. `transform` maps a float32 to a float32."""
    f = np.float32
    input_min = f(input_scale) * f(INT16_MIN - input_zero_point)
    input_max = f(input_scale) * f(INT16_MAX - input_zero_point)
    output_min = f(output_scale) * f(INT16_MIN - output_zero_point)
    output_max = f(output_scale) * f(INT16_MAX - output_zero_point)
    steps = 512
    step = (input_max - input_min) / f(steps)
    half_step = step / f(2)
    scaling_inv = f(INT16_MAX - INT16_MIN + 1) / (output_max - output_min)
    table = []
    for i in range(steps):
        at = input_min + f(i) * step
        val, mid, nxt = transform(at), transform(at + half_step), transform(input_min + f(i + 1) * step)
        sample = _round_f32(val * scaling_inv)
        interpolated = _round_f32((nxt * scaling_inv + _round_f32(val * scaling_inv)) / f(2))
        bias = _round_f32((interpolated - _round_f32(mid * scaling_inv)) / f(2))
        table.append(int(min(max(sample - bias, f(INT16_MIN)), f(INT16_MAX))))
    table.append(int(min(max(_round_f32(transform(input_max) * scaling_inv), f(INT16_MIN)), f(INT16_MAX))))
    return table


def _expf(x: np.float32) -> np.float32:
    """std::exp on a float: exp correctly rounded to float32 (glibc's and newlib's expf agree on every
    argument the tables use: tests/test_aot_int16.py compares with TFLM's own code on the host)."""
    return np.float32(math.exp(float(x)))


def _one_over_one_plus(x: np.float32) -> np.float32:
    return np.float32(1.0) / (np.float32(1.0) + x)


def softmax16_tables() -> tuple[list[int], list[int]]:
    """The exp and 1/(1+x) tables InitializeLutForInt16 (softmax_common.cc) builds in Prepare. They depend on
    no model parameter: every int16 softmax shares them."""
    span = np.float32(INT16_MAX - INT16_MIN)        # the int `range` 65535, converted for the float divisions
    exp_table = lut16(_expf, np.float32(10.0) / span, INT16_MAX, np.float32(2.0) / span, 0)
    reciprocal = lut16(_one_over_one_plus, np.float32(1.0) / span, INT16_MIN, np.float32(2.0) / span, 0)
    return exp_table, reciprocal
