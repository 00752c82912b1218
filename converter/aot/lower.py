"""Each operator lowered to one kernel call: the C function, its parameter struct (every value
precomputed as TFLM's Prepare computes it: quant.py), the constant arrays it points to, and the
activation tensors it reads and writes. One lowering function per operator kind (LOWERINGS); an
operator or type outside the set is refused (graph.refuse), never lowered approximately."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from . import quant
from .graph import AotGraph, Operator, refuse


@dataclass(frozen=True)
class Numerics:
    """Where TFLM versions differ in Prepare arithmetic, which one the generated code follows."""
    fc_product: str = "double"      # quant.FC_PRODUCTS: the golden interpreter's (default) or TFLM 90b983c2's


DEFAULT_NUMERICS = Numerics()


@dataclass(frozen=True)
class ConstArray:
    name: str
    ctype: str                      # "int8_t", "int32_t"
    values: bytes                   # little-endian raw bytes of the array


@dataclass(frozen=True)
class Step:
    """One operator as one kernel call (or none: an alias)."""
    op: int
    kind: str
    function: str | None            # None: RESHAPE aliased, no code at all
    struct: str | None = None
    fields: tuple = ()              # (field, C initializer) in struct order
    arrays: tuple = ()              # ConstArray, owned by this step (multipliers, shifts)
    reads: tuple = ()               # activation tensors, in call order
    writes: int = -1
    scratch: dict = field(default_factory=dict)   # back-end variant -> bytes
    note: str = ""                  # one line for the plan printout
    tag: str = ""                   # parameter struct aot_op<op><tag>: several steps of one operator (DECODE)
    keeps: tuple = ()               # decoded tensors the kernel reads through its parameter struct (live here)


def _i32(values) -> bytes:
    return np.asarray(values, "<i4").tobytes()


def _weights(graph: AotGraph, index: int) -> str:
    """The C expression of a constant operand: its array, or its decoded bytes in the buffer (decode.py)."""
    if index >= 0 and graph.tensor(index).decoded:
        ctype = "int32_t" if graph.tensor(index).type in ("INT32", "INT64") else "int8_t"   # int64: cast back in C
        return f"(const {ctype}*)AOT_T{index}"
    return f"aot_w{index}" if index >= 0 else "NULL"


def _fixed(tensor) -> bool:
    """A constant operand: stored as is, or compressed and decoded before use (TFLM_DECODE)."""
    return tensor.constant or tensor.decoded


def _need(cond: bool, operator: Operator, graph: AotGraph, why: str) -> None:
    if not cond:
        raise refuse(operator, graph, why)


# the operators with int16x8 kernels (int16 activations, int8 filters, int64 biases), named in refusals
INT16_OPERATORS = ("ADD", "AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D",
                   "MEAN", "RESHAPE", "SOFTMAX", "DEQUANTIZE", "QUANTIZE from float32")


def _io_int8(operator: Operator, graph: AotGraph, count: int, constants: bool = False) -> None:
    """The first `count` inputs and every output are int8 activations quantized per tensor (constant
    int8 inputs allowed when `constants`)."""
    for position, t in enumerate(operator.inputs[:count] + operator.outputs):
        tensor = graph.tensor(t)
        constant_ok = constants and position < count
        int16 = f" (int16 activations: {', '.join(INT16_OPERATORS)})" if tensor.type == "INT16" else ""
        _need(tensor.type == "INT8" and (constant_ok or not tensor.constant), operator, graph,
              f"tensor '{tensor.name}' is {tensor.type.lower()}{' constant' if tensor.constant else ''}; "
              f"the AOT kernels of {operator.kind} take int8 activations{int16}")
        _need(len(tensor.scales) == 1, operator, graph, f"activation '{tensor.name}' is not quantized per tensor")


def _io_width(operator: Operator, graph: AotGraph, count: int, constants: bool = False) -> str:
    """"s8" or "s16": the first `count` inputs and every output are activations of one type, int8 (as
    _io_int8, `constants` included) or int16 with zero point 0 (int16x8; TFLM's cmsis_nn kernels require it at
    Prepare; no constant int16 operands)."""
    first = graph.tensor(operator.inputs[0])
    if first.type != "INT16":
        _io_int8(operator, graph, count, constants)
        return "s8"
    for t in operator.inputs[:count] + operator.outputs:
        tensor = graph.tensor(t)
        _need(tensor.type == "INT16" and not tensor.constant and len(tensor.scales) == 1, operator, graph,
              f"tensor '{tensor.name}' is {tensor.type.lower()}; an int16 layer takes int16 activations quantized per "
              "tensor")
        _need(tensor.zero_point == 0, operator, graph, f"int16 activation '{tensor.name}' has zero point "
              f"{tensor.zero_point} (TFLM's int16 kernels require 0)")
    return "s16"


def _range(width: str) -> tuple[int, int]:
    return (quant.INT16_MIN, quant.INT16_MAX) if width == "s16" else (quant.INT8_MIN, quant.INT8_MAX)


def _filter_ok(operator: Operator, graph: AotGraph, index: int) -> str:
    tensor = graph.tensor(index)
    _need(_fixed(tensor) and tensor.type in ("INT8", "INT4"), operator, graph,
          f"filter '{tensor.name}' is {tensor.type.lower()}; int8 or packed int4 constant filters only")
    _need(all(z == 0 for z in tensor.zero_points), operator, graph, "filter zero points are not 0")
    return "s4" if tensor.type == "INT4" else "s8"


def _int16_filter(operator: Operator, graph: AotGraph, act: str, width: str) -> str:
    """The kernel width: the filter's (s8, s4) for int8 activations; s16 for int16 ones, which take int8 filters."""
    if act != "s16":
        return width
    _need(width == "s8", operator, graph, "int16 activations take int8 filters only")
    return "s16"


def _bias_ok(operator: Operator, graph: AotGraph, act: str = "s8") -> int:
    """The bias tensor (-1: none): int32 for int8 layers, int64 for int16 ones (the 16x8 scheme's)."""
    index = operator.inputs[2] if len(operator.inputs) > 2 else -1
    if index >= 0:
        tensor = graph.tensor(index)
        want = "INT64" if act == "s16" else "INT32"
        _need(_fixed(tensor) and tensor.type == want, operator, graph,
              f"the bias is not a constant {want.lower()} tensor (int16 layers: int64, int8 layers: int32)")
    return index


def _conv_common(operator: Operator, graph: AotGraph, depthwise: bool) -> Step:
    act = _io_width(operator, graph, 1)
    o = operator.options
    x, w, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.inputs[1]), graph.tensor(operator.outputs[0])
    width = _int16_filter(operator, graph, act, _filter_ok(operator, graph, w.index))
    bias = _bias_ok(operator, graph, act)
    _need(act == "s8" or depthwise or x.shape[-1] == w.shape[-1], operator, graph,
          "a grouped int16 convolution (CMSIS-NN's arm_convolve_s16 has no groups)")
    _need(len(x.shape) == 4 and len(w.shape) == 4 and len(y.shape) == 4, operator, graph, "not rank 4")
    batches, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
    k_h, k_w = w.shape[1], w.shape[2]
    same = o.padding == 0
    _need(out_h == quant.out_size(same, in_h, k_h, o.strideH, o.dilationHFactor) and
          out_w == quant.out_size(same, in_w, k_w, o.strideW, o.dilationWFactor), operator, graph,
          "the output shape does not follow from the padding")
    mult, shift = quant.conv_multipliers(x.scale, w.scales, y.scale, out_c)
    clamp = quant.activation_range(o.fusedActivationFunction, y.scale, y.zero_point, *_range(act))
    name = f"aot_op{operator.index}"
    fields = (("batches", batches), ("in_h", in_h), ("in_w", in_w), ("in_c", in_c), ("out_h", out_h),
              ("out_w", out_w), ("out_c", out_c), ("k_h", k_h), ("k_w", k_w),
              ("filter_in_c", in_c if depthwise else w.shape[3]), ("stride_h", o.strideH), ("stride_w", o.strideW),
              ("dil_h", o.dilationHFactor), ("dil_w", o.dilationWFactor),
              ("pad_h", quant.padding(o.strideH, o.dilationHFactor, in_h, k_h, out_h)),
              ("pad_w", quant.padding(o.strideW, o.dilationWFactor, in_w, k_w, out_w)),
              ("depth_mult", o.depthMultiplier if depthwise else 1),
              ("input_offset", -x.zero_point), ("output_offset", y.zero_point),
              ("act_min", clamp[0]), ("act_max", clamp[1]), ("filter", _weights(graph, w.index)),
              ("bias", _weights(graph, bias)), ("mult", f"{name}_mult"), ("shift", f"{name}_shift"))
    if depthwise:
        _need(out_c == in_c * o.depthMultiplier and w.shape[3] == out_c, operator, graph, "channel counts disagree")
    else:
        _need(in_c % w.shape[3] == 0 and out_c == w.shape[0], operator, graph, "channel counts disagree")
    kind = "dwconv" if depthwise else "conv"
    return Step(operator.index, operator.kind, f"aot_{kind}_{width}", "aot_conv_t", fields,
                (ConstArray(f"{name}_mult", "int32_t", _i32(mult)), ConstArray(f"{name}_shift", "int32_t", _i32(shift))),
                (x.index,), y.index, note=f"{k_h}x{k_w}/{o.strideH} {width}")


def lower_conv(operator: Operator, graph: AotGraph) -> Step:
    return _conv_common(operator, graph, depthwise=False)


def lower_depthwise(operator: Operator, graph: AotGraph) -> Step:
    return _conv_common(operator, graph, depthwise=True)


def lower_fully_connected(operator: Operator, graph: AotGraph, numerics: Numerics = DEFAULT_NUMERICS) -> Step:
    act_width = _io_width(operator, graph, 1)
    o = operator.options
    x, w, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.inputs[1]), graph.tensor(operator.outputs[0])
    width = _int16_filter(operator, graph, act_width, _filter_ok(operator, graph, w.index))
    bias = _bias_ok(operator, graph, act_width)
    _need(len(w.shape) == 2, operator, graph, "the filter is not 2-D")
    out_c, depth = w.shape
    _need(bool(y.shape) and y.shape[-1] == out_c and x.elements % depth == 0, operator, graph, "shapes disagree")
    per_channel = len(w.scales) > 1
    _need(not (per_channel and width == "s4"), operator, graph, "TFLM takes int4 FULLY_CONNECTED filters per tensor only")
    if per_channel:
        mult, shift = quant.conv_multipliers(x.scale, w.scales, y.scale, out_c)
    else:
        m, s = quant.fc_per_tensor_multiplier(x.scale, w.scale, y.scale, numerics.fc_product)
        mult, shift = [m], [s]
    act = quant.activation_range(o.fusedActivationFunction, y.scale, y.zero_point, *_range(act_width))
    name = f"aot_op{operator.index}"
    fields = (("batches", y.elements // out_c), ("accum_depth", depth), ("out_c", out_c),
              ("input_offset", -x.zero_point), ("filter_offset", -w.zero_point), ("output_offset", y.zero_point),
              ("act_min", act[0]), ("act_max", act[1]), ("per_channel", int(per_channel)),
              ("filter", _weights(graph, w.index)), ("bias", _weights(graph, bias)),
              ("mult", f"{name}_mult"), ("shift", f"{name}_shift"))
    return Step(operator.index, operator.kind, f"aot_fc_{width}", "aot_fc_t", fields,
                (ConstArray(f"{name}_mult", "int32_t", _i32(mult)), ConstArray(f"{name}_shift", "int32_t", _i32(shift))),
                (x.index,), y.index, note=f"{depth}->{out_c} {'per channel' if per_channel else 'per tensor'} {width}")


def _lower_pool(operator: Operator, graph: AotGraph, function: str) -> Step:
    width = _io_width(operator, graph, 1)
    o = operator.options
    x, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.outputs[0])
    _need(len(x.shape) == 4 and x.scales == y.scales and x.zero_points == y.zero_points, operator, graph,
          "input and output quantization differ")
    batches, in_h, in_w, ch = x.shape
    _, out_h, out_w, _ = y.shape
    act = quant.activation_range(o.fusedActivationFunction, y.scale, y.zero_point, *_range(width))
    fields = (("batches", batches), ("in_h", in_h), ("in_w", in_w), ("ch", ch), ("out_h", out_h), ("out_w", out_w),
              ("k_h", o.filterHeight), ("k_w", o.filterWidth), ("stride_h", o.strideH), ("stride_w", o.strideW),
              ("pad_h", quant.padding(o.strideH, 1, in_h, o.filterHeight, out_h)),
              ("pad_w", quant.padding(o.strideW, 1, in_w, o.filterWidth, out_w)),
              ("act_min", act[0]), ("act_max", act[1]))
    return Step(operator.index, operator.kind, f"{function}_{width}", "aot_pool_t", fields, (), (x.index,), y.index,
                note=f"{o.filterHeight}x{o.filterWidth}/{o.strideH}")


def lower_max_pool(operator: Operator, graph: AotGraph) -> Step:
    return _lower_pool(operator, graph, "aot_maxpool")


def lower_average_pool(operator: Operator, graph: AotGraph) -> Step:
    return _lower_pool(operator, graph, "aot_avgpool")


SOFTMAX16_TABLES = ("aot_softmax16_exp_lut", "aot_softmax16_one_by_one_lut")


def _lower_softmax16(operator: Operator, graph: AotGraph) -> Step:
    """SOFTMAX int16 (CalculateSoftmaxParams): both zero points 0, output scale 1/32768 within TFLM's
    tolerance; TFLM's two 513-entry tables (quant.softmax16_tables), one copy per model."""
    x, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.outputs[0])
    _need(bool(abs(np.float32(y.scale) - np.float32(1 / 32768)) <= np.float32(0.001 / 32768)), operator, graph,
          "the int16 output is not quantized with scale 1/32768")
    mult, left_shift = quant.softmax16_params(operator.options.beta, x.scale)
    depth = x.shape[-1]
    tables = quant.softmax16_tables()
    fields = (("rows", x.elements // depth), ("depth", depth), ("mult", mult), ("left_shift", left_shift),
              ("exp_lut", SOFTMAX16_TABLES[0]), ("one_by_one_lut", SOFTMAX16_TABLES[1]))
    arrays = tuple(ConstArray(name, "int16_t", np.asarray(t, "<i2").tobytes()) for name, t in zip(SOFTMAX16_TABLES, tables))
    return Step(operator.index, operator.kind, "aot_softmax_s16", "aot_softmax16_t", fields, arrays, (x.index,),
                y.index, note="int16")


def lower_softmax(operator: Operator, graph: AotGraph) -> Step:
    if _io_width(operator, graph, 1) == "s16":
        return _lower_softmax16(operator, graph)
    x, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.outputs[0])
    _need(y.zero_point == -128 and np.float32(y.scale) == np.float32(1 / 256), operator, graph,
          "the output is not quantized with zero point -128 and scale 1/256")
    mult, left_shift, diff_min = quant.softmax_params(operator.options.beta, x.scale)
    depth = x.shape[-1]
    fields = (("rows", x.elements // depth), ("depth", depth), ("mult", mult), ("left_shift", left_shift),
              ("diff_min", diff_min))
    return Step(operator.index, operator.kind, "aot_softmax_s8", "aot_softmax_t", fields, (), (x.index,), y.index)


def lower_reshape(operator: Operator, graph: AotGraph) -> Step:
    x, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.outputs[0])
    _need(x.type == y.type and x.nbytes == y.nbytes and not x.constant, operator, graph,
          "input and output sizes or types differ")
    return Step(operator.index, operator.kind, None, reads=(x.index,), writes=y.index, note="alias")


def _broadcast(shape1: tuple, shape2: tuple, out: tuple) -> tuple:
    """(dims, out shape, stride1, stride2) over the output's dimensions, strides 0 where broadcast."""
    rank = len(out)

    def strides(shape: tuple) -> list[int]:
        full = (1,) * (rank - len(shape)) + tuple(shape)
        result, step = [0] * rank, 1
        for d in range(rank - 1, -1, -1):
            result[d] = 0 if full[d] == 1 and out[d] != 1 else step
            step *= full[d]
        return result

    return rank, list(out), strides(shape1), strides(shape2)


def lower_add(operator: Operator, graph: AotGraph) -> Step:
    """ADD (CalculateOpDataAdd): int8 with left shift 20 (constant operands allowed), int16 activations with
    left shift 15."""
    width = _io_width(operator, graph, 2, constants=True)
    a, b, y = (graph.tensor(operator.inputs[0]), graph.tensor(operator.inputs[1]),
               graph.tensor(operator.outputs[0]))
    _need(len(y.shape) <= (4 if width == "s16" else 6), operator, graph,
          "more than 6 dimensions (int16: 4, TFLM's BroadcastAdd4DSlow)")
    p = quant.add_params(a.scale, b.scale, y.scale, 15 if width == "s16" else 20)
    _need(p["so"] <= 0, operator, graph, "the output rescale is not below one (TFLM's Prepare aborts on it too)")
    act = quant.activation_range(operator.options.fusedActivationFunction, y.scale, y.zero_point, *_range(width))
    same = a.shape == b.shape == y.shape
    dims, shape, s1, s2 = (0, [0] * 6, [0] * 6, [0] * 6) if same else _broadcast(a.shape, b.shape, y.shape)
    pad = [0] * (6 - len(shape))

    def arr(values: list[int]) -> str:
        return "{" + ", ".join(str(v) for v in list(values) + pad) + "}"

    fields = (("size", y.elements), ("dims", dims), ("out_shape", arr(shape)), ("stride1", arr(s1)),
              ("stride2", arr(s2)), ("in1_offset", -a.zero_point), ("in2_offset", -b.zero_point),
              ("out_offset", y.zero_point), ("left_shift", p["left_shift"]), ("m1", p["m1"]), ("s1", p["s1"]),
              ("m2", p["m2"]), ("s2", p["s2"]), ("mo", p["mo"]), ("so", p["so"]),
              ("act_min", act[0]), ("act_max", act[1]))
    return Step(operator.index, operator.kind, f"aot_add_{width}", "aot_add_t", fields, (), (a.index, b.index),
                y.index, note="elementwise" if same else "broadcast")


def _size(operator: Operator, graph: AotGraph) -> int:
    return graph.tensor(operator.outputs[0]).elements


def lower_requantize(operator: Operator, graph: AotGraph) -> Step:
    """QUANTIZE int8 -> int8 (Requantize) and RELU (CalculateReluOpData): both rescale by in/out scale."""
    _io_int8(operator, graph, 1)
    x, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.outputs[0])
    mult, shift = quant.quantize_multiplier(quant.f32(x.scale) / quant.f32(y.scale))
    low, high = (quant.activation_range(1, y.scale, y.zero_point) if operator.kind == "RELU" else (-128, 127))
    fields = (("size", _size(operator, graph)), ("in_zp", x.zero_point), ("out_zp", y.zero_point), ("mult", mult),
              ("shift", shift), ("act_min", low), ("act_max", high))
    return Step(operator.index, operator.kind, "aot_requant_s8", "aot_requant_t", fields, (), (x.index,), y.index)


def _c_float(value: float) -> str:
    """A float32 as an exact C99 hexadecimal literal."""
    return f"{float(np.float32(value)).hex()}f"


def lower_dequantize(operator: Operator, graph: AotGraph) -> Step:
    """DEQUANTIZE int8/int16 -> float32 (reference Dequantize): float(double(scale) * (x - zp)). The kernel
    multiplies in float32: x - zp fits 17 bits and the scale 24, so the product is exact in double and TFLM's
    one rounding to float equals float32's correctly rounded product (IEEE, no flush to zero)."""
    x, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.outputs[0])
    _need(x.type in ("INT8", "INT16") and not x.constant and len(x.scales) == 1 and y.type == "FLOAT32", operator,
          graph, "DEQUANTIZE takes an int8 or int16 activation quantized per tensor to float32")
    fields = (("size", x.elements), ("zero_point", x.zero_point), ("scale", _c_float(x.scale)))
    width = "s16" if x.type == "INT16" else "s8"
    return Step(operator.index, operator.kind, f"aot_dequantize_{width}", "aot_dequantize_t", fields, (), (x.index,),
                y.index, note=f"{x.type.lower()} -> float32")


def lower_quantize(operator: Operator, graph: AotGraph) -> Step:
    """QUANTIZE: int8 -> int8 (Requantize), or float32 -> int8 (AffineQuantize: round(x / float(scale)) in
    float32, half away from zero, + zp, clamped; |x / scale| >= 2^31 saturates as on Cortex-M)."""
    x, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.outputs[0])
    if x.type != "FLOAT32":
        return lower_requantize(operator, graph)
    _need(not x.constant and y.type in ("INT8", "INT16") and len(y.scales) == 1, operator, graph,
          "QUANTIZE from float32 takes an activation to int8 or int16 quantized per tensor")
    fields = (("size", x.elements), ("zero_point", y.zero_point), ("scale", _c_float(y.scale)))
    function = "aot_quantize_f32_s16" if y.type == "INT16" else "aot_quantize_f32"
    return Step(operator.index, operator.kind, function, "aot_dequantize_t", fields, (), (x.index,),
                y.index, note=f"float32 -> {y.type.lower()}")


def lower_relu6(operator: Operator, graph: AotGraph) -> Step:
    """RELU6 (Relu6Prepare): clamps to [zero point, FloatToQuantizedType(6)] of the input, no rescale."""
    _io_int8(operator, graph, 1)
    x, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.outputs[0])
    six = x.zero_point + quant.round_away(quant.f32(np.float32(6.0) / np.float32(x.scale)))
    _need(-128 <= six <= 127, operator, graph, "6.0 is outside the input's int8 range (TFLM refuses it too)")
    fields = (("size", _size(operator, graph)), ("lo", x.zero_point), ("hi", six))
    return Step(operator.index, operator.kind, "aot_clamp_s8", "aot_clamp_t", fields, (), (x.index,), y.index)


def lower_mul(operator: Operator, graph: AotGraph) -> Step:
    """MUL (CalculateOpDataMul): one multiplier s1 * s2 / s_out in double."""
    _io_int8(operator, graph, 2, constants=True)
    a, b, y = (graph.tensor(operator.inputs[0]), graph.tensor(operator.inputs[1]),
               graph.tensor(operator.outputs[0]))
    _need(len(y.shape) <= 4, operator, graph, "more than 4 dimensions (TFLM's broadcast MUL takes 4)")
    mult, shift = quant.quantize_multiplier(quant.f32(a.scale) * quant.f32(b.scale) / quant.f32(y.scale))
    act = quant.activation_range(operator.options.fusedActivationFunction, y.scale, y.zero_point)
    same = a.shape == b.shape == y.shape
    dims, shape, s1, s2 = (0, [0] * 6, [0] * 6, [0] * 6) if same else _broadcast(a.shape, b.shape, y.shape)
    fields = (("size", y.elements), ("dims", dims), ("out_shape", _c_array(shape)), ("stride1", _c_array(s1)),
              ("stride2", _c_array(s2)), ("in1_offset", -a.zero_point), ("in2_offset", -b.zero_point),
              ("out_offset", y.zero_point), ("mult", mult), ("shift", shift), ("act_min", act[0]), ("act_max", act[1]))
    return Step(operator.index, operator.kind, "aot_mul_s8", "aot_mul_t", fields, (), (a.index, b.index), y.index,
                note="elementwise" if same else "broadcast")


def _c_array(values) -> str:
    values = list(values) + [0] * (6 - len(values))
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def lower_pad(operator: Operator, graph: AotGraph) -> Step:
    """PAD with constant paddings: the pad value is the output zero point (TFLM's int8 PAD)."""
    _io_int8(operator, graph, 1)
    x, pads, y = (graph.tensor(operator.inputs[0]), graph.tensor(operator.inputs[1]),
                  graph.tensor(operator.outputs[0]))
    _need(pads.constant and len(x.shape) <= 6, operator, graph, "the paddings are not constant")
    _need(x.scales == y.scales and x.zero_point == y.zero_point, operator, graph, "input and output quantization differ")
    before = np.frombuffer(pads.data, "<i4" if pads.type == "INT32" else "<i8").reshape(-1, 2)[:, 0]
    fields = (("dims", len(y.shape)), ("size", y.elements), ("out_shape", _c_array(y.shape)),
              ("in_shape", _c_array(x.shape)), ("before", _c_array(before)), ("pad_value", y.zero_point))
    return Step(operator.index, operator.kind, "aot_pad_s8", "aot_pad_t", fields, (), (x.index,), y.index)


def lower_concatenation(operator: Operator, graph: AotGraph) -> Step:
    """CONCATENATION of int8 tensors with the output's quantization: row-wise copies."""
    count = len(operator.inputs)
    _io_int8(operator, graph, count, constants=True)
    y = graph.tensor(operator.outputs[0])
    ins = [graph.tensor(t) for t in operator.inputs]
    _need(all(t.scales == y.scales and t.zero_point == y.zero_point for t in ins), operator, graph,
          "an input's quantization differs from the output's")
    _need(operator.options.fusedActivationFunction == 0, operator, graph, "a fused activation")
    axis = operator.options.axis % len(y.shape)
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    sizes = [t.elements // outer for t in ins]
    name = f"aot_op{operator.index}_sizes"
    fields = (("count", count), ("outer", outer), ("sizes", name))
    return Step(operator.index, operator.kind, "aot_concat_s8", "aot_concat_t", fields,
                (ConstArray(name, "int32_t", _i32(sizes)),), tuple(t.index for t in ins), y.index, note="array")


def lower_logistic(operator: Operator, graph: AotGraph) -> Step:
    """LOGISTIC and TANH int8 (CalculateArithmeticOpDataLogistic, Tanh's Prepare): input in Q4.27;
    output zero point -128 (LOGISTIC) or 0 (TANH)."""
    _io_int8(operator, graph, 1)
    x, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.outputs[0])
    tanh = operator.kind == "TANH"
    _need(y.zero_point == (0 if tanh else -128), operator, graph,
          f"the output zero point is not {0 if tanh else -128}")
    q, left_shift = math.frexp(quant.f32(x.scale) * float(1 << 27))
    mult = quant.round_away(q * (1 << 31))
    _need(mult < 1 << 31, operator, graph, "the input scale's multiplier overflows (TFLM's would too)")
    radius = math.floor(1.0 * 15 * (1 << 27) / (1 << left_shift)) if left_shift >= 0 else \
        math.floor(1.0 * 15 * (1 << 27) * (1 << -left_shift))
    fields = (("size", _size(operator, graph)), ("in_zp", x.zero_point), ("radius", radius), ("mult", mult),
              ("left_shift", left_shift))
    return Step(operator.index, operator.kind, "aot_tanh_s8" if tanh else "aot_logistic_s8", "aot_logistic_t", fields,
                (), (x.index,), y.index)


def _mean_multiplier(multiplier: int, shift: int, count: int) -> tuple[int, int]:
    """QuantizedMeanOrSum folds 1/count into the multiplier (shift clamped to 32 and 31 + shift)."""
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    return int(np.int32((multiplier << extra) // count)), shift - extra


def lower_mean(operator: Operator, graph: AotGraph) -> Step:
    """MEAN int8 or int16 over constant axes: TFLM's QuantizedMeanOrSum, also when input and output share their
    quantization (measured: the Python interpreter and TFLM 90b983c2 both rescale; a plain integer mean
    differs), one int32 sum per output in scratch."""
    width = _io_width(operator, graph, 1)
    x, axes, y = (graph.tensor(operator.inputs[0]), graph.tensor(operator.inputs[1]),
                  graph.tensor(operator.outputs[0]))
    _need(axes.constant and 0 < len(x.shape) <= 6, operator, graph, "the axes are not constant")
    reduced = sorted({int(a) % len(x.shape) for a in np.frombuffer(axes.data, "<i4")})
    kept = [d for d in range(len(x.shape)) if d not in reduced]
    count = int(np.prod([x.shape[d] for d in reduced], dtype=np.int64))
    strides, step = [0] * len(x.shape), 1
    for d in reversed(kept):
        strides[d], step = step, step * x.shape[d]
    mult, shift = quant.quantize_multiplier(quant.f32(x.scale) / quant.f32(y.scale))
    mult, shift = _mean_multiplier(mult, shift, count)
    fields = (("dims", len(x.shape)), ("size", x.elements), ("out_size", y.elements), ("count", count),
              ("in_zp", x.zero_point), ("out_zp", y.zero_point), ("mult", mult),
              ("shift", shift), ("in_shape", _c_array(x.shape)), ("out_stride", _c_array(strides)))
    scratch = 4 * y.elements
    return Step(operator.index, operator.kind, f"aot_mean_{width}", "aot_mean_t", fields, (), (x.index,), y.index,
                scratch={v: scratch for v in ("portable", "cmsis-c", "cmsis-dsp", "cmsis-mve")})


def _int16_multiplier(multiplier: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    return 32767 if multiplier >= (1 << 31) - 1 - (1 << 15) else (multiplier + (1 << 15)) >> 16


def lower_hard_swish(operator: Operator, graph: AotGraph) -> Step:
    """HARD_SWISH int8 (HardSwishPrepare): float32 scale ratios, int16 fixed-point multipliers."""
    _io_int8(operator, graph, 1)
    x, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.outputs[0])
    hires = np.float32(1.0 / 128.0) * np.float32(x.scale)
    out_mult, out_exp = quant.quantize_multiplier(float(np.float32(hires / np.float32(y.scale))))
    _need(out_exp <= 0, operator, graph, "the output multiplier is above one (TFLM refuses it too)")
    relu_mult, relu_exp = quant.quantize_multiplier(float(np.float32(hires / np.float32(3.0 / 32768.0))))
    fields = (("size", _size(operator, graph)), ("in_zp", x.zero_point), ("out_zp", y.zero_point),
              ("out_mult16", _int16_multiplier(out_mult)), ("out_exp", out_exp),
              ("relu_mult16", _int16_multiplier(relu_mult)), ("relu_exp", relu_exp))
    return Step(operator.index, operator.kind, "aot_hard_swish_s8", "aot_hard_swish_t", fields, (), (x.index,),
                y.index)


LOWERINGS = {
    "MEAN": lower_mean,
    "HARD_SWISH": lower_hard_swish,
    "QUANTIZE": lower_quantize,
    "DEQUANTIZE": lower_dequantize,
    "RELU": lower_requantize,
    "RELU6": lower_relu6,
    "MUL": lower_mul,
    "PAD": lower_pad,
    "CONCATENATION": lower_concatenation,
    "LOGISTIC": lower_logistic,
    "TANH": lower_logistic,
    "CONV_2D": lower_conv,
    "DEPTHWISE_CONV_2D": lower_depthwise,
    "FULLY_CONNECTED": lower_fully_connected,
    "MAX_POOL_2D": lower_max_pool,
    "AVERAGE_POOL_2D": lower_average_pool,
    "SOFTMAX": lower_softmax,
    "RESHAPE": lower_reshape,
    "ADD": lower_add,
}


def lower(graph: AotGraph, numerics: Numerics = DEFAULT_NUMERICS) -> list[Step]:
    from .decode import lower_decode    # decode.py builds on this module's Step

    steps: list[Step] = []
    for operator in graph.operators:
        if operator.kind == "TFLM_DECODE":
            steps += lower_decode(operator, graph)
            continue
        lowering = LOWERINGS.get(operator.kind)
        if lowering is None:
            raise refuse(operator, graph, f"no AOT kernel for {operator.kind} (the set: "
                                          f"{', '.join(sorted(LOWERINGS))})")
        # only FULLY_CONNECTED's Prepare arithmetic differs between TFLM versions (Numerics)
        step = lower_fully_connected(operator, graph, numerics) if lowering is lower_fully_connected \
            else lowering(operator, graph)
        keeps = tuple(t for t in operator.inputs if t >= 0 and graph.tensor(t).decoded and t not in step.reads)
        steps.append(replace(step, keeps=keeps) if keeps else step)
    return steps
