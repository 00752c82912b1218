"""Tiny .tflite models written directly as flatbuffers, for the AOT runtime's per-operator tests: every
scale, zero point, shape and option is chosen by the test (random, ties, extremes), which a converter
would not let us do. Several independent operators go into one model (one input and one output each),
so one host build and one TFLM run check them all; the trace build names a diverging operator."""
from __future__ import annotations

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

from converter.tflite.tflite_model import TfliteModel

ACTIVATIONS = (0, 1, 2, 3)      # NONE, RELU, RELU_N1_TO_1, RELU6


class ModelBuilder:
    def __init__(self):
        root = s.ModelT()
        root.version = 3
        root.buffers = [s.BufferT()]
        root.operatorCodes = []
        sub = s.SubGraphT()
        sub.tensors, sub.operators, sub.inputs, sub.outputs = [], [], [], []
        root.subgraphs = [sub]
        self.model = TfliteModel(root)

    def tensor(self, shape, type_="INT8", scale=None, zero_point=None, data=None, axis=0) -> int:
        quant = None
        if scale is not None:
            scales = np.atleast_1d(np.asarray(scale, np.float32))
            zeros = np.atleast_1d(np.asarray(0 if zero_point is None else zero_point, np.int64))
            if len(zeros) < len(scales):
                zeros = np.repeat(zeros, len(scales))
            quant = s.QuantizationParametersT(scale=list(scales), zeroPoint=list(zeros), quantizedDimension=axis)
        buffer = self.model.add_buffer(data) if data is not None else 0
        return self.model.add_tensor(list(shape), type_, buffer=buffer, quantization=quant)

    def activation(self, shape, scale, zero_point) -> int:
        return self.tensor(shape, "INT8", scale, zero_point)

    def op(self, kind: str, inputs, outputs, options=None, options_type: str | None = None) -> None:
        operator = s.OperatorT()
        operator.opcodeIndex = self.model.opcode_index(kind)
        operator.inputs, operator.outputs = list(inputs), list(outputs)
        if options is not None:
            operator.builtinOptionsType = getattr(s.BuiltinOptions, options_type)
            operator.builtinOptions = options
        self.model.subgraph.operators.append(operator)

    def io(self, inputs, outputs) -> None:
        self.model.subgraph.inputs += list(inputs)
        self.model.subgraph.outputs += list(outputs)

    def to_bytes(self) -> bytes:
        return self.model.to_bytes()


def pack_int4(values: np.ndarray) -> bytes:
    """Two int4 values per byte, low nibble first (TFLM's packed int4 layout)."""
    flat = (np.asarray(values, np.int8).reshape(-1) & 0x0F).astype(np.uint8)
    if len(flat) % 2:
        flat = np.append(flat, np.uint8(0))
    return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8).tobytes()


class Random:
    """Random operator parameters, with the edges the AOT numerics must survive."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def int(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high + 1))

    def choice(self, options):
        return options[self.int(0, len(options) - 1)]

    def scale(self, ties: bool = False) -> float:
        if ties:  # powers of two: multipliers of exactly 0.5 * 2^k, accumulators landing on .5 ties
            return float(2.0 ** self.int(-10, -2))
        return float(np.float32(10 ** self.rng.uniform(-3.5, -0.5)))

    def zero_point(self) -> int:
        return self.choice((-128, 127, 0, self.int(-128, 127), self.int(-128, 127)))

    def filter(self, shape, int4: bool):
        low, high = (-8, 7) if int4 else (-127, 127)
        values = self.rng.integers(low, high + 1, shape).astype(np.int8)
        return values, pack_int4(values) if int4 else values.tobytes()

    def bias(self, count: int) -> bytes:
        span = self.choice((1 << 8, 1 << 14, 1 << 20))
        return self.rng.integers(-span, span, count).astype("<i4").tobytes()


def _out_size(same: bool, size: int, k: int, stride: int, dilation: int = 1) -> int:
    effective = (k - 1) * dilation + 1
    return (size + stride - 1) // stride if same else (size + stride - effective) // stride


def conv_op(b: ModelBuilder, io: tuple[int, int, int, int], depthwise: bool, mult: int, same: bool, stride: int,
            dilation: int, activation: int) -> None:
    """One CONV_2D or DEPTHWISE_CONV_2D (io: input, filter, bias or -1, output), as every test model writes it."""
    if depthwise:
        o = s.DepthwiseConv2DOptionsT()
        o.depthMultiplier = mult
    else:
        o = s.Conv2DOptionsT()
    o.padding = s.Padding.SAME if same else s.Padding.VALID
    o.strideH = o.strideW = stride
    o.dilationHFactor = o.dilationWFactor = dilation
    o.fusedActivationFunction = activation
    x, w, bias, y = io
    b.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", (x, w, bias), (y,), o,
         "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")


def add_conv(b: ModelBuilder, r: Random, depthwise: bool = False) -> tuple[int, int]:
    """One CONV_2D or DEPTHWISE_CONV_2D with random everything; (input, output) tensors."""
    ties = r.rng.random() < 0.25
    int4 = r.rng.random() < 0.35
    in_c = r.int(1, 7)
    mult = r.int(1, 3) if depthwise else 1
    out_c = in_c * mult if depthwise else r.int(1, 9)
    k_h, k_w, stride, dil = r.int(1, 4), r.int(1, 4), r.int(1, 3), r.choice((1, 1, 2))
    same = r.rng.random() < 0.5
    in_h, in_w = r.int(max(1, (k_h - 1) * dil + 1), 9), r.int(max(1, (k_w - 1) * dil + 1), 9)
    out_h, out_w = _out_size(same, in_h, k_h, stride, dil), _out_size(same, in_w, k_w, stride, dil)
    in_s, out_s = r.scale(ties), r.scale(ties)
    per_channel = r.rng.random() < 0.6
    f_scales = [r.scale(ties) for _ in range(out_c if per_channel else 1)]
    if r.rng.random() < 0.1:   # extreme shifts: a multiplier far above one, or one flushed to zero
        # (TFLM refuses clamps that overflow int32: 6 / out_s must fit, so out_s stays above 1e-8)
        out_s = max(in_s * f_scales[0] * r.choice((1e-2, 1e12)), 1e-8)
    f_shape = (1, k_h, k_w, out_c) if depthwise else (out_c, k_h, k_w, in_c)
    _, f_bytes = r.filter(f_shape, int4)
    x = b.activation((1, in_h, in_w, in_c), in_s, r.zero_point())
    w = b.tensor(f_shape, "INT4" if int4 else "INT8", f_scales, 0, f_bytes, axis=3 if depthwise else 0)
    bias_scales = [np.float32(in_s) * np.float32(f) for f in f_scales]
    # TFLM's DEPTHWISE_CONV_2D crashes without a bias (segfault in its Python interpreter): always one there
    with_bias = depthwise or r.rng.random() < 0.9
    bias = b.tensor((out_c,), "INT32", bias_scales, 0, r.bias(out_c), axis=0) if with_bias else -1
    y = b.activation((1, out_h, out_w, out_c), out_s, r.zero_point())
    conv_op(b, (x, w, bias, y), depthwise, mult, same, stride, dil, r.choice(ACTIVATIONS))
    return x, y


def add_fully_connected(b: ModelBuilder, r: Random) -> tuple[int, int]:
    ties = r.rng.random() < 0.25
    int4 = r.rng.random() < 0.35
    per_channel = not int4 and r.rng.random() < 0.4
    depth, out_c, batches = r.int(1, 37), r.int(1, 12), r.int(1, 3)
    in_s, out_s = r.scale(ties), r.scale(ties)
    f_scales = [r.scale(ties) for _ in range(out_c if per_channel else 1)]
    _, f_bytes = r.filter((out_c, depth), int4)
    x = b.activation((1, batches, depth), in_s, r.zero_point())
    w = b.tensor((out_c, depth), "INT4" if int4 else "INT8", f_scales, 0, f_bytes)
    bias_scales = [np.float32(in_s) * np.float32(f) for f in f_scales]
    bias = b.tensor((out_c,), "INT32", bias_scales, 0, r.bias(out_c)) if r.rng.random() < 0.9 else -1
    y = b.activation((1, batches, out_c), out_s, r.zero_point())
    o = s.FullyConnectedOptionsT()
    o.keepNumDims = True
    o.fusedActivationFunction = r.choice(ACTIVATIONS)
    b.op("FULLY_CONNECTED", (x, w, bias), (y,), o, "FullyConnectedOptions")
    return x, y


def add_pool(b: ModelBuilder, r: Random, average: bool) -> tuple[int, int]:
    ch, k_h, k_w, stride = r.int(1, 7), r.int(1, 4), r.int(1, 4), r.int(1, 3)
    same = r.rng.random() < 0.5
    in_h, in_w = r.int(k_h, 9), r.int(k_w, 9)
    scale, zp = r.scale(), r.zero_point()
    x = b.activation((1, in_h, in_w, ch), scale, zp)
    y = b.activation((1, _out_size(same, in_h, k_h, stride), _out_size(same, in_w, k_w, stride), ch), scale, zp)
    o = s.Pool2DOptionsT()
    o.padding = s.Padding.SAME if same else s.Padding.VALID
    o.strideH = o.strideW = stride
    o.filterHeight, o.filterWidth = k_h, k_w
    o.fusedActivationFunction = r.choice(ACTIVATIONS)
    b.op("AVERAGE_POOL_2D" if average else "MAX_POOL_2D", (x,), (y,), o, "Pool2DOptions")
    return x, y


def add_softmax(b: ModelBuilder, r: Random) -> tuple[int, int]:
    rows, depth = r.int(1, 3), r.int(1, 20)
    x = b.activation((1, rows, depth), r.choice((r.scale(), r.scale(True), 0.5, 1e-3)), r.zero_point())
    y = b.activation((1, rows, depth), 1 / 256, -128)
    o = s.SoftmaxOptionsT()
    o.beta = r.choice((1.0, 1.0, float(np.float32(r.rng.uniform(0.1, 3.0)))))
    b.op("SOFTMAX", (x,), (y,), o, "SoftmaxOptions")
    return x, y


def add_add(b: ModelBuilder, r: Random) -> tuple[tuple[int, int], int]:
    ties = r.rng.random() < 0.25
    shape = (1, *(r.int(1, 5) for _ in range(r.int(1, 4))))
    other = shape
    if r.rng.random() < 0.5:  # broadcast: some dimensions 1, maybe fewer dimensions
        other = tuple(1 if r.rng.random() < 0.5 else d for d in shape)[r.int(0, len(shape) - 1):]
    first, second = (shape, other) if r.rng.random() < 0.5 else (other, shape)
    a = b.activation(first, r.scale(ties), r.zero_point())
    c = b.activation(second, r.scale(ties), r.zero_point())
    y = b.activation(shape, r.scale(ties), r.zero_point())
    o = s.AddOptionsT()
    o.fusedActivationFunction = r.choice(ACTIVATIONS)
    b.op("ADD", (a, c), (y,), o, "AddOptions")
    return (a, c), y


def add_reshape(b: ModelBuilder, r: Random) -> tuple[int, int]:
    n = r.int(1, 6)
    scale, zp = r.scale(), r.zero_point()
    x = b.activation((1, n, 2), scale, zp)
    shape = b.tensor((2,), "INT32", data=np.array([1, 2 * n], "<i4").tobytes())
    y = b.activation((1, 2 * n), scale, zp)
    b.op("RESHAPE", (x, shape), (y,))
    return x, y


def _shape(r: Random, rank: int | None = None) -> tuple:
    return (1, *(r.int(1, 5) for _ in range(rank if rank is not None else r.int(1, 3))))


def add_unary(b: ModelBuilder, r: Random, kind: str) -> tuple[int, int]:
    """RELU, RELU6, QUANTIZE (int8 -> int8) or LOGISTIC on a random shape and quantization."""
    shape = _shape(r)
    in_s = r.scale(r.rng.random() < 0.25)
    zp = r.zero_point()
    if kind == "RELU6":   # TFLM refuses a 6.0 outside the int8 range
        in_s, zp = max(in_s, 6.0 / 100), min(zp, 27)
    x = b.activation(shape, in_s, zp)
    if kind == "RELU6":
        y = b.activation(shape, in_s, b.model.tensors[x].quantization.zeroPoint[0])
    elif kind == "LOGISTIC":
        y = b.activation(shape, 1 / 256, -128)
    elif kind == "TANH":
        y = b.activation(shape, 1 / 128, 0)
    elif kind == "HARD_SWISH":   # TFLM needs the output multiplier at most one: out scale >= in scale / 128
        y = b.activation(shape, in_s * r.choice((1 / 64, 0.5, 1.0, 3.0)), r.zero_point())
    else:
        y = b.activation(shape, r.scale(r.rng.random() < 0.25), r.zero_point())
    b.op(kind, (x,), (y,))
    return x, y


def add_mul(b: ModelBuilder, r: Random) -> tuple[tuple[int, int], int]:
    shape = _shape(r, r.int(1, 3))
    other = shape
    if r.rng.random() < 0.5:
        other = tuple(1 if r.rng.random() < 0.5 else d for d in shape)
    first, second = (shape, other) if r.rng.random() < 0.5 else (other, shape)
    a = b.activation(first, r.scale(), r.zero_point())
    c = b.activation(second, r.scale(), r.zero_point())
    y = b.activation(shape, r.scale() * r.choice((0.01, 0.1, 1.0)), r.zero_point())
    o = s.MulOptionsT()
    o.fusedActivationFunction = r.choice(ACTIVATIONS)
    b.op("MUL", (a, c), (y,), o, "MulOptions")
    return (a, c), y


def add_pad(b: ModelBuilder, r: Random) -> tuple[int, int]:
    shape = _shape(r, r.int(1, 3))
    pads = [[0, 0]] + [[r.int(0, 2), r.int(0, 2)] for _ in shape[1:]]
    scale, zp = r.scale(), r.zero_point()
    x = b.activation(shape, scale, zp)
    p = b.tensor((len(shape), 2), "INT32", data=np.array(pads, "<i4").tobytes())
    y = b.activation(tuple(d + a + c for d, (a, c) in zip(shape, pads)), scale, zp)
    b.op("PAD", (x, p), (y,))
    return x, y


def add_concatenation(b: ModelBuilder, r: Random) -> tuple[tuple, int]:
    rank = r.int(2, 4)
    base = list(_shape(r, rank - 1))
    axis = r.int(1, rank - 1)
    scale, zp = r.scale(), r.zero_point()
    parts = []
    for _ in range(r.int(1, 3)):
        shape = list(base)
        shape[axis] = r.int(1, 4)
        parts.append(b.activation(tuple(shape), scale, zp))
    out_shape = list(base)
    out_shape[axis] = sum(b.model.tensors[t].shape[axis] for t in parts)
    y = b.activation(tuple(out_shape), scale, zp)
    o = s.ConcatenationOptionsT()
    o.axis = axis if r.rng.random() < 0.5 else axis - rank
    b.op("CONCATENATION", parts, (y,), o, "ConcatenationOptions")
    return tuple(parts), y


def add_mean(b: ModelBuilder, r: Random) -> tuple[int, int]:
    shape = _shape(r, r.int(2, 3))
    axes = sorted({r.int(1, len(shape) - 1) for _ in range(r.int(1, 2))})
    keep = r.rng.random() < 0.5
    out_shape = tuple((1 if d in axes else n) for d, n in enumerate(shape) if keep or d not in axes)
    scale, zp = r.scale(), r.zero_point()
    same = r.rng.random() < 0.4
    x = b.activation(shape, scale, zp)
    a = b.tensor((len(axes),), "INT32", data=np.array([d if r.rng.random() < 0.7 else d - len(shape) for d in axes],
                                                       "<i4").tobytes())
    y = b.activation(out_shape, scale if same else r.scale(), zp if same else r.zero_point())
    o = s.ReducerOptionsT()
    o.keepDims = keep
    b.op("MEAN", (x, a), (y,), o, "ReducerOptions")
    return x, y


ADDERS = {"CONV_2D": lambda b, r: add_conv(b, r), "DEPTHWISE_CONV_2D": lambda b, r: add_conv(b, r, True),
          "FULLY_CONNECTED": add_fully_connected, "AVERAGE_POOL_2D": lambda b, r: add_pool(b, r, True),
          "MAX_POOL_2D": lambda b, r: add_pool(b, r, False), "SOFTMAX": add_softmax, "ADD": add_add,
          "RESHAPE": add_reshape, "RELU": lambda b, r: add_unary(b, r, "RELU"),
          "RELU6": lambda b, r: add_unary(b, r, "RELU6"), "QUANTIZE": lambda b, r: add_unary(b, r, "QUANTIZE"),
          "LOGISTIC": lambda b, r: add_unary(b, r, "LOGISTIC"), "TANH": lambda b, r: add_unary(b, r, "TANH"),
          "HARD_SWISH": lambda b, r: add_unary(b, r, "HARD_SWISH"), "MEAN": add_mean, "MUL": add_mul, "PAD": add_pad,
          "CONCATENATION": add_concatenation}


def random_model(kinds, count: int, seed: int) -> bytes:
    """`count` independent operators drawn from `kinds`, each with its own inputs and output."""
    b, r = ModelBuilder(), Random(seed)
    for i in range(count):
        ins, out = ADDERS[kinds[i % len(kinds)]](b, r)
        b.io(ins if isinstance(ins, tuple) else (ins,), (out,))
    return b.to_bytes()


def random_inputs(model: bytes, vectors: int, seed: int) -> list[np.ndarray]:
    """Random int8 inputs with saturating vectors (all -128, all 127) first."""
    from converter.tflite.model import read_model

    rng = np.random.default_rng(seed)
    inputs = []
    for t in read_model(model).inputs:
        x = rng.integers(-128, 128, (vectors, *t.shape)).astype(np.int8)
        x[0], x[1 % vectors] = -128, 127
        inputs.append(x)
    return inputs


def chain_model(seed: int = 0, int4: bool = False) -> bytes:
    """A small CNN as one chain (CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED,
    SOFTMAX): intermediate tensors the planner must place, RESHAPE as an alias."""
    b, r = ModelBuilder(), Random(seed)
    scales = [r.scale() for _ in range(6)]
    x = b.activation((1, 8, 8, 3), scales[0], -128)

    def weights(shape, axis=0):
        _, data = r.filter(shape, int4)
        return b.tensor(shape, "INT4" if int4 else "INT8", [r.scale()], 0, data, axis)

    def bias(count, in_scale, w):
        scale = float(np.float32(in_scale) * np.float32(b.model.tensors[w].quantization.scale[0]))
        return b.tensor((count,), "INT32", [scale], 0, r.bias(count))

    conv = s.Conv2DOptionsT()
    conv.padding, conv.strideH, conv.strideW, conv.fusedActivationFunction = s.Padding.VALID, 1, 1, 1
    conv.dilationHFactor = conv.dilationWFactor = 1
    w1 = weights((4, 3, 3, 3))
    c1 = b.activation((1, 6, 6, 4), scales[1], -128)
    b.op("CONV_2D", (x, w1, bias(4, scales[0], w1)), (c1,), conv, "Conv2DOptions")
    dw = s.DepthwiseConv2DOptionsT()
    dw.padding, dw.strideH, dw.strideW, dw.depthMultiplier, dw.fusedActivationFunction = s.Padding.SAME, 1, 1, 2, 3
    dw.dilationHFactor = dw.dilationWFactor = 1
    w2 = weights((1, 3, 3, 8), axis=3)
    c2 = b.activation((1, 6, 6, 8), scales[2], -100)
    b.op("DEPTHWISE_CONV_2D", (c1, w2, bias(8, scales[1], w2)), (c2,), dw, "DepthwiseConv2DOptions")
    pool = s.Pool2DOptionsT()
    pool.padding, pool.strideH, pool.strideW, pool.filterHeight, pool.filterWidth = s.Padding.VALID, 2, 2, 2, 2
    p = b.activation((1, 3, 3, 8), scales[2], -100)
    b.op("MAX_POOL_2D", (c2,), (p,), pool, "Pool2DOptions")
    shape = b.tensor((2,), "INT32", data=np.array([1, 72], "<i4").tobytes())
    flat = b.activation((1, 72), scales[2], -100)
    b.op("RESHAPE", (p, shape), (flat,))
    w3 = weights((5, 72))
    logits = b.activation((1, 5), scales[3], 7)
    b.op("FULLY_CONNECTED", (flat, w3, bias(5, scales[2], w3)), (logits,), s.FullyConnectedOptionsT(),
         "FullyConnectedOptions")
    probs = b.activation((1, 5), 1 / 256, -128)
    soft = s.SoftmaxOptionsT()
    soft.beta = 1.0
    b.op("SOFTMAX", (logits,), (probs,), soft, "SoftmaxOptions")
    b.io((x,), (probs,))
    return b.to_bytes()


def break_maxpool_kernel(monkeypatch) -> None:
    """A plausible kernel bug for the checks that must fail: the portable max pool takes the minimum."""
    from converter.aot import emit

    original = emit.kernel_sources

    def broken() -> dict[str, str]:
        files = dict(original())
        files["aot_kernels_portable.c"] = files["aot_kernels_portable.c"].replace(
            "else acc = v > acc ? v : acc;", "else acc = (count == 0 || v < acc) ? v : acc;")
        return files

    monkeypatch.setattr(emit, "kernel_sources", broken)
