"""Tiny int16x8 flatbuffer models for the AOT runtime's int16 tests: int16 activations (zero point 0, as
TFLite's 16x8 scheme and TFLM's int16 kernels require), int8 filters quantized per channel or per tensor,
int64 biases. Each operator is independent (its own input and output), several per model, random shapes,
scales (powers of two for rounding ties), fused activations, and biases large enough to need 64 bits."""
from __future__ import annotations

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

from tests.aot_chain_models import Chain
from tests.aot_models import ACTIVATIONS, ModelBuilder, Random, _out_size, conv_op


def _act(b: ModelBuilder, shape, scale) -> int:
    return b.tensor(shape, "INT16", scale, 0)


def _scale(r: Random, ties: bool) -> float:
    """int16 activations have 256x finer steps than int8 ones."""
    return r.scale(ties) / 256


def _bias(r: Random, count: int) -> bytes:
    span = r.choice((1 << 10, 1 << 24, 1 << 30))
    return r.rng.integers(-span, span, count).astype("<i8").tobytes()


def _calibrated(r: Random, out_s: float, in_s: float, f_scales, products: int) -> float:
    """Mostly an output scale a calibration would give (|x| ~ 1,000 inputs, products of int8 filters: outputs
    that do not clamp, so an LSB shows), else the random one; never above _out_scale's bound."""
    if r.rng.random() < 0.7:
        out_s = in_s * max(f_scales) * np.sqrt(products) * 127 * 1024 / 32767 * r.rng.uniform(0.5, 2)
    return _out_scale(float(out_s), in_s, f_scales)


def _out_scale(out_s: float, in_s: float, f_scales) -> float:
    """At most half the input x filter scale's output multiplier, so the requantized accumulator (at most
    2^28.8 from the products plus 2^30 of bias) stays below 2^30: CMSIS-NN's arm_nn_requantize_s64 keeps
    twice the result in an int32 before its last rounding shift and wraps from 2^30 on, where TFLM's
    reference wraps from 2^31 (TFLM assumes results that fit; measured: with multipliers near 1 and
    saturated inputs the two give opposite signs). Real 16x8 models stay far below."""
    return max(out_s, 2 * in_s * max(f_scales))


def add_conv16(b: ModelBuilder, r: Random, depthwise: bool = False) -> tuple[int, int]:
    ties = r.rng.random() < 0.25
    in_c = r.int(1, 7)
    mult = r.int(1, 3) if depthwise else 1
    out_c = in_c * mult if depthwise else r.int(1, 9)
    k_h, k_w, stride, dil = r.int(1, 4), r.int(1, 4), r.int(1, 3), r.choice((1, 1, 2))
    same = r.rng.random() < 0.5
    in_h, in_w = r.int(max(1, (k_h - 1) * dil + 1), 9), r.int(max(1, (k_w - 1) * dil + 1), 9)
    out_h, out_w = _out_size(same, in_h, k_h, stride, dil), _out_size(same, in_w, k_w, stride, dil)
    in_s, out_s = _scale(r, ties), _scale(r, ties)
    per_channel = r.rng.random() < 0.7
    f_scales = [r.scale(ties) for _ in range(out_c if per_channel else 1)]
    out_s = _calibrated(r, out_s, in_s, f_scales, k_h * k_w * (1 if depthwise else in_c))
    f_shape = (1, k_h, k_w, out_c) if depthwise else (out_c, k_h, k_w, in_c)
    _, f_bytes = r.filter(f_shape, False)
    x = _act(b, (1, in_h, in_w, in_c), in_s)
    w = b.tensor(f_shape, "INT8", f_scales, 0, f_bytes, axis=3 if depthwise else 0)
    bias_scales = [np.float32(in_s) * np.float32(f) for f in f_scales]
    with_bias = depthwise or r.rng.random() < 0.9    # TFLM's DEPTHWISE_CONV_2D needs one (see aot_models)
    bias = b.tensor((out_c,), "INT64", bias_scales, 0, _bias(r, out_c)) if with_bias else -1
    y = _act(b, (1, out_h, out_w, out_c), out_s)
    conv_op(b, (x, w, bias, y), depthwise, mult, same, stride, dil, r.choice(ACTIVATIONS))
    return x, y


def add_fully_connected16(b: ModelBuilder, r: Random, per_channel: bool | None = None) -> tuple[int, int]:
    ties = r.rng.random() < 0.25
    per_channel = r.rng.random() < 0.5 if per_channel is None else per_channel
    depth, out_c, batches = r.int(1, 37), r.int(1, 12), r.int(1, 3)
    in_s, out_s = _scale(r, ties), _scale(r, ties)
    f_scales = [r.scale(ties) for _ in range(out_c if per_channel else 1)]
    out_s = _calibrated(r, out_s, in_s, f_scales, depth)
    _, f_bytes = r.filter((out_c, depth), False)
    x = _act(b, (1, batches, depth), in_s)
    w = b.tensor((out_c, depth), "INT8", f_scales, 0, f_bytes)
    bias_scales = [np.float32(in_s) * np.float32(f) for f in f_scales]
    bias = b.tensor((out_c,), "INT64", bias_scales, 0, _bias(r, out_c)) if r.rng.random() < 0.9 else -1
    y = _act(b, (1, batches, out_c), out_s)
    o = s.FullyConnectedOptionsT()
    o.keepNumDims = True
    o.fusedActivationFunction = r.choice(ACTIVATIONS)
    b.op("FULLY_CONNECTED", (x, w, bias), (y,), o, "FullyConnectedOptions")
    return x, y


def add_pool16(b: ModelBuilder, r: Random, average: bool) -> tuple[int, int]:
    ch, k_h, k_w, stride = r.int(1, 7), r.int(1, 4), r.int(1, 4), r.int(1, 3)
    same = r.rng.random() < 0.5
    in_h, in_w = r.int(k_h, 9), r.int(k_w, 9)
    scale = _scale(r, False)
    x = _act(b, (1, in_h, in_w, ch), scale)
    y = _act(b, (1, _out_size(same, in_h, k_h, stride), _out_size(same, in_w, k_w, stride), ch), scale)
    o = s.Pool2DOptionsT()
    o.padding = s.Padding.SAME if same else s.Padding.VALID
    o.strideH = o.strideW = stride
    o.filterHeight, o.filterWidth = k_h, k_w
    o.fusedActivationFunction = r.choice(ACTIVATIONS)
    b.op("AVERAGE_POOL_2D" if average else "MAX_POOL_2D", (x,), (y,), o, "Pool2DOptions")
    return x, y


def add_softmax16(b: ModelBuilder, r: Random, rows: int | None = None, depth: int | None = None,
                  scale: float | None = None) -> tuple[int, int]:
    rows, depth = rows or r.int(1, 3), depth or r.int(1, 20)
    x = _act(b, (1, rows, depth), scale or r.choice((_scale(r, False), _scale(r, True), 10 / 65535, 1e-3)))
    y = _act(b, (1, rows, depth), 1 / 32768)
    o = s.SoftmaxOptionsT()
    o.beta = r.choice((1.0, 1.0, 0.5, 2.0))
    b.op("SOFTMAX", (x,), (y,), o, "SoftmaxOptions")
    return x, y


def add_add16(b: ModelBuilder, r: Random) -> tuple[tuple[int, int], int]:
    """ADD of two int16 tensors, same shape or broadcast (up to 4 dimensions, TFLM's BroadcastAdd4DSlow)."""
    ties = r.rng.random() < 0.25
    shape = (1, *(r.int(1, 5) for _ in range(r.int(1, 3))))
    other = shape
    if r.rng.random() < 0.5:
        other = tuple(1 if r.rng.random() < 0.5 else d for d in shape)[r.int(0, len(shape) - 1):]
    first, second = (shape, other) if r.rng.random() < 0.5 else (other, shape)
    s1, s2 = _scale(r, ties), _scale(r, ties)
    a, c = _act(b, first, s1), _act(b, second, s2)
    y = _act(b, shape, max(_scale(r, ties), max(s1, s2) / 8192))   # the output rescale below one (TFLM aborts else)
    o = s.AddOptionsT()
    o.fusedActivationFunction = r.choice(ACTIVATIONS)
    b.op("ADD", (a, c), (y,), o, "AddOptions")
    return (a, c), y


def add_mean16(b: ModelBuilder, r: Random) -> tuple[int, int]:
    """MEAN of an int16 tensor over constant axes (negative ones too), kept dims or not, same or new scale."""
    shape = (1, *(r.int(1, 5) for _ in range(r.int(1, 2))))
    axes = sorted({r.int(1, len(shape) - 1) for _ in range(r.int(1, 2))}) if len(shape) > 1 else [0]
    keep = r.rng.random() < 0.5
    out_shape = tuple((1 if d in axes else n) for d, n in enumerate(shape) if keep or d not in axes)
    scale = _scale(r, False)
    x = _act(b, shape, scale)
    a = b.tensor((len(axes),), "INT32", data=np.array([d if r.rng.random() < 0.7 else d - len(shape) for d in axes],
                                                       "<i4").tobytes())
    y = _act(b, out_shape, scale if r.rng.random() < 0.4 else _scale(r, r.rng.random() < 0.3))
    o = s.ReducerOptionsT()
    o.keepDims = keep
    b.op("MEAN", (x, a), (y,), o, "ReducerOptions")
    return x, y


def add_reshape16(b: ModelBuilder, r: Random) -> tuple[int, int]:
    """A RESHAPE to a model output: the generated code copies the int16 bytes."""
    n = r.int(1, 5)
    scale = _scale(r, False)
    x, y = _act(b, (1, 2, n), scale), _act(b, (1, 2 * n), scale)
    shape = b.tensor((2,), "INT32", data=np.asarray([1, 2 * n], "<i4").tobytes())
    o = s.ReshapeOptionsT()
    o.newShape = [1, 2 * n]
    b.op("RESHAPE", (x, shape), (y,), o, "ReshapeOptions")
    return x, y


ADDERS16 = {"CONV_2D": lambda b, r: add_conv16(b, r), "DEPTHWISE_CONV_2D": lambda b, r: add_conv16(b, r, True),
            "FULLY_CONNECTED": add_fully_connected16, "AVERAGE_POOL_2D": lambda b, r: add_pool16(b, r, True),
            "MAX_POOL_2D": lambda b, r: add_pool16(b, r, False), "SOFTMAX": add_softmax16,
            "ADD": add_add16, "MEAN": add_mean16, "RESHAPE": add_reshape16}


def random_model16(kinds, count: int, seed: int) -> bytes:
    b, r = ModelBuilder(), Random(seed)
    for i in range(count):
        ins, out = ADDERS16[kinds[i % len(kinds)]](b, r)
        b.io(ins if isinstance(ins, tuple) else (ins,), (out,))
    return b.to_bytes()


def random_inputs16(model: bytes, vectors: int, seed: int) -> list[np.ndarray]:
    """Random int16 inputs: the first two saturate (all -32768, all 32767), then full-range vectors alternate with
    small-range ones (|x| < 256 or 2048), where most layers' outputs do not clamp and an LSB shows."""
    from converter.tflite.model import read_model

    rng = np.random.default_rng(seed)
    inputs = []
    for t in read_model(model).inputs:
        x = rng.integers(-32768, 32768, (vectors, *t.shape)).astype(np.int16)
        for v in range(2, vectors, 2):
            span = (256, 2048)[(v // 2) % 2]
            x[v] = rng.integers(-span, span, t.shape)
        x[0], x[1 % vectors] = -32768, 32767
        inputs.append(x)
    return inputs


def softmax_sweep_model() -> bytes:
    """One SOFTMAX over rows of 64 int16 values with the scale that maps the full input span onto the exp
    table's [-10, 0] (multiplier 1): every table entry and interpolation step is reached (softmax_sweep)."""
    b, r = ModelBuilder(), Random(0)
    x, y = add_softmax16(b, r, rows=1, depth=64, scale=10 / 65535)
    b.model.subgraph.operators[-1].builtinOptions.beta = 1.0
    b.io((x,), (y,))
    return b.to_bytes()


def softmax_sweep() -> np.ndarray:
    """1,552 rows of 64 that reach all 512 segments of both tables (counted with the reference arithmetic while
    writing this): 1,040 rows whose maximum is 32767 and whose other values take each difference 0..-65519 once
    (every third row mostly at -32768 instead: sums of a few large exps), then 512 rows of the maximum plus one
    value placed so that the sum of the two exps lands in each of the 1/(1+x) table's segments in turn."""
    rng = np.random.default_rng(1)
    diffs = np.arange(65536, dtype=np.int64)
    rows = []
    for start in range(1040):
        row = np.full(64, 32767, np.int64)
        row[1:] = 32767 - diffs[start + 1040 * np.arange(63)]          # each of 0..65519 once
        if start % 3 == 1:
            row[1:] = np.where(rng.random(63) < 0.9, -32768, row[1:])
        rows.append(row)
    for j in range(512):     # x = exp(-10 d / 65535): the second exp, relative to the first
        d = min(65535, round(-np.log((j + 0.5) / 512) * 65535 / 10))
        row = np.full(64, -32768, np.int64)
        row[0], row[1] = 32767, 32767 - d
        rows.append(row)
    return np.asarray(rows, np.int16).reshape(len(rows), 1, 1, 64)


LAYERS16 = ("dw", "conv", "pool", "pw", "res", "dw", "pw")


class Chain16(Chain):
    """tests/aot_chain_models.Chain with int16 activations (zero point 0), int8 filters, int64 biases and output
    scales calibrated as _calibrated does, so the plan's overlaps are checked on bytes that do not all clamp."""

    def __init__(self, seed: int, shape: tuple):
        self.b, self.r = ModelBuilder(), Random(seed)
        self.scale, self.zp = _scale(self.r, False), 0
        self.x = _act(self.b, shape, self.scale)
        self.input, self.shape = self.x, shape

    def _next(self, shape) -> int:
        self.scale = _scale(self.r, False)
        return _act(self.b, shape, self.scale)

    def conv(self, out_c: int, k: int, stride: int, same: bool, depthwise: bool = False, x: int | None = None,
             shape: tuple | None = None) -> tuple[int, tuple]:
        x, shape = (self.x, self.shape) if x is None else (x, shape)
        _, h, w, c = shape
        in_scale = float(self.b.model.tensors[x].quantization.scale[0])
        f_shape = (1, k, k, out_c) if depthwise else (out_c, k, k, c)
        f_scales = [self.r.scale() for _ in range(out_c)]
        _, data = self.r.filter(f_shape, False)
        wt = self.b.tensor(f_shape, "INT8", f_scales, 0, data, axis=3 if depthwise else 0)
        bias = self.b.tensor((out_c,), "INT64", [np.float32(in_scale) * np.float32(f) for f in f_scales], 0,
                             _bias(self.r, out_c), axis=0)
        out_shape = (1, _out_size(same, h, k, stride), _out_size(same, w, k, stride), out_c)
        self.scale = _calibrated(self.r, self.r.scale(), in_scale, f_scales, k * k * (1 if depthwise else c))
        y = _act(self.b, out_shape, self.scale)
        conv_op(self.b, (x, wt, bias, y), depthwise, out_c // c, same, stride, 1, self.r.choice((0, 1, 3)))
        return y, out_shape


    def layer(self, kind: str) -> None:
        """Chain.layer, plus "pool": a MAX_POOL_2D or AVERAGE_POOL_2D (2x2 stride 2, or 3x3 stride 1 SAME)."""
        if kind != "pool":
            super().layer(kind)
            return
        _, h, w, c = self.shape
        k, stride, same = (2, 2, False) if min(h, w) >= 4 and self.r.rng.random() < 0.5 else (3, 1, True)
        out_shape = (1, _out_size(same, h, k, stride), _out_size(same, w, k, stride), c)
        y = _act(self.b, out_shape, self.scale)      # pools keep their input's quantization
        o = s.Pool2DOptionsT()
        o.padding = s.Padding.SAME if same else s.Padding.VALID
        o.strideH = o.strideW = stride
        o.filterHeight = o.filterWidth = k
        o.fusedActivationFunction = self.r.choice((0, 1))
        self.b.op(self.r.choice(("MAX_POOL_2D", "AVERAGE_POOL_2D")), (self.x,), (y,), o, "Pool2DOptions")
        self.x, self.shape = y, out_shape

    def add(self, a: int, c: int, shape: tuple) -> int:
        """ADD with an output scale at least the larger input's (below it by 2^15 / 2, TFLM's Prepare aborts:
        the output rescale must be below one)."""
        scales = [float(self.b.model.tensors[t].quantization.scale[0]) for t in (a, c)]
        y = super().add(a, c, shape)
        self.scale = max(scales) * float(self.r.rng.uniform(1, 3))
        self.b.model.tensors[y].quantization.scale = [np.float32(self.scale)]
        return y


def chain16(seed: int, layers: int = 8) -> bytes:
    """A chain of int16 layers (depthwise, 3x3, 1x1, pools, residual ADD, RESHAPE) whose plan overlaps them."""
    r = Random(seed)
    c = Chain16(seed, (1, r.int(5, 14), r.int(5, 14), r.int(1, 8)))
    for i in range(layers):
        c.layer(LAYERS16[(i + seed) % len(LAYERS16)] if i % 3 else c.r.choice(LAYERS16))
    return c.finish()
