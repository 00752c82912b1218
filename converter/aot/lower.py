"""Each operator lowered to one kernel call: the C function, its parameter struct (every value
precomputed as TFLM's Prepare computes it: quant.py), the constant arrays it points to, and the
activation tensors it reads and writes. One lowering function per operator kind (LOWERINGS); an
operator or type outside the set is refused (graph.refuse), never lowered approximately."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import quant
from .graph import AotGraph, Operator, refuse


@dataclass(frozen=True)
class Numerics:
    """Where TFLM versions differ in Prepare arithmetic, which one the generated code follows."""
    fc_product: str = "double"      # quant.FC_PRODUCTS: the golden interpreter's (default) or TFLM 90b983c2's


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


def _i32(values) -> bytes:
    return np.asarray(values, "<i4").tobytes()


def _weights(graph: AotGraph, index: int) -> str:
    return f"aot_w{index}" if index >= 0 else "NULL"


def _need(cond: bool, operator: Operator, graph: AotGraph, why: str) -> None:
    if not cond:
        raise refuse(operator, graph, why)


def _io_int8(operator: Operator, graph: AotGraph, count: int) -> None:
    for t in operator.inputs[:count] + operator.outputs:
        tensor = graph.tensor(t)
        _need(tensor.type == "INT8" and not tensor.constant, operator, graph,
              f"tensor '{tensor.name}' is {tensor.type.lower()}{' constant' if tensor.constant else ''}; "
              "the AOT kernels take int8 activations")
        _need(len(tensor.scales) == 1, operator, graph, f"activation '{tensor.name}' is not quantized per tensor")


def _filter_ok(operator: Operator, graph: AotGraph, index: int) -> str:
    tensor = graph.tensor(index)
    _need(tensor.constant and tensor.type in ("INT8", "INT4"), operator, graph,
          f"filter '{tensor.name}' is {tensor.type.lower()}; int8 or packed int4 constant filters only")
    _need(all(z == 0 for z in tensor.zero_points), operator, graph, "filter zero points are not 0")
    return "s4" if tensor.type == "INT4" else "s8"


def _bias_ok(operator: Operator, graph: AotGraph) -> int:
    index = operator.inputs[2] if len(operator.inputs) > 2 else -1
    if index >= 0:
        tensor = graph.tensor(index)
        _need(tensor.constant and tensor.type == "INT32", operator, graph, "the bias is not a constant int32 tensor")
    return index


def _conv_common(operator: Operator, graph: AotGraph, depthwise: bool) -> Step:
    _io_int8(operator, graph, 1)
    o = operator.options
    x, w, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.inputs[1]), graph.tensor(operator.outputs[0])
    width = _filter_ok(operator, graph, w.index)
    bias = _bias_ok(operator, graph)
    _need(len(x.shape) == 4 and len(w.shape) == 4 and len(y.shape) == 4, operator, graph, "not rank 4")
    batches, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
    k_h, k_w = w.shape[1], w.shape[2]
    same = o.padding == 0
    _need(out_h == quant.out_size(same, in_h, k_h, o.strideH, o.dilationHFactor) and
          out_w == quant.out_size(same, in_w, k_w, o.strideW, o.dilationWFactor), operator, graph,
          "the output shape does not follow from the padding")
    mult, shift = quant.conv_multipliers(x.scale, w.scales, y.scale, out_c)
    act = quant.activation_range(o.fusedActivationFunction, y.scale, y.zero_point)
    name = f"aot_op{operator.index}"
    fields = (("batches", batches), ("in_h", in_h), ("in_w", in_w), ("in_c", in_c), ("out_h", out_h),
              ("out_w", out_w), ("out_c", out_c), ("k_h", k_h), ("k_w", k_w),
              ("filter_in_c", in_c if depthwise else w.shape[3]), ("stride_h", o.strideH), ("stride_w", o.strideW),
              ("dil_h", o.dilationHFactor), ("dil_w", o.dilationWFactor),
              ("pad_h", quant.padding(o.strideH, o.dilationHFactor, in_h, k_h, out_h)),
              ("pad_w", quant.padding(o.strideW, o.dilationWFactor, in_w, k_w, out_w)),
              ("depth_mult", o.depthMultiplier if depthwise else 1),
              ("input_offset", -x.zero_point), ("output_offset", y.zero_point),
              ("act_min", act[0]), ("act_max", act[1]), ("filter", _weights(graph, w.index)),
              ("bias", _weights(graph, bias)), ("mult", f"{name}_mult"), ("shift", f"{name}_shift"))
    if depthwise:
        _need(out_c == in_c * o.depthMultiplier and w.shape[3] == out_c, operator, graph, "channel counts disagree")
    else:
        _need(in_c % w.shape[3] == 0 and out_c == w.shape[0], operator, graph, "channel counts disagree")
    kind = "dwconv" if depthwise else "conv"
    return Step(operator.index, operator.kind, f"aot_{kind}_{width}", "aot_conv_t", fields,
                (ConstArray(f"{name}_mult", "int32_t", _i32(mult)), ConstArray(f"{name}_shift", "int32_t", _i32(shift))),
                (x.index,), y.index, note=f"{k_h}x{k_w}/{o.strideH} {width}")


def lower_conv(operator: Operator, graph: AotGraph, numerics: Numerics) -> Step:
    return _conv_common(operator, graph, depthwise=False)


def lower_depthwise(operator: Operator, graph: AotGraph, numerics: Numerics) -> Step:
    return _conv_common(operator, graph, depthwise=True)


def lower_fully_connected(operator: Operator, graph: AotGraph, numerics: Numerics) -> Step:
    _io_int8(operator, graph, 1)
    o = operator.options
    x, w, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.inputs[1]), graph.tensor(operator.outputs[0])
    width = _filter_ok(operator, graph, w.index)
    bias = _bias_ok(operator, graph)
    _need(len(w.shape) == 2, operator, graph, "the filter is not 2-D")
    out_c, depth = w.shape
    _need(y.shape and y.shape[-1] == out_c and x.elements % depth == 0, operator, graph, "shapes disagree")
    per_channel = len(w.scales) > 1
    _need(not (per_channel and width == "s4"), operator, graph, "TFLM takes int4 FULLY_CONNECTED filters per tensor only")
    if per_channel:
        mult, shift = quant.conv_multipliers(x.scale, w.scales, y.scale, out_c)
    else:
        m, s = quant.fc_per_tensor_multiplier(x.scale, w.scale, y.scale, numerics.fc_product)
        mult, shift = [m], [s]
    act = quant.activation_range(o.fusedActivationFunction, y.scale, y.zero_point)
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
    _io_int8(operator, graph, 1)
    o = operator.options
    x, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.outputs[0])
    _need(len(x.shape) == 4 and x.scales == y.scales and x.zero_points == y.zero_points, operator, graph,
          "input and output quantization differ")
    batches, in_h, in_w, ch = x.shape
    _, out_h, out_w, _ = y.shape
    act = quant.activation_range(o.fusedActivationFunction, y.scale, y.zero_point)
    fields = (("batches", batches), ("in_h", in_h), ("in_w", in_w), ("ch", ch), ("out_h", out_h), ("out_w", out_w),
              ("k_h", o.filterHeight), ("k_w", o.filterWidth), ("stride_h", o.strideH), ("stride_w", o.strideW),
              ("pad_h", quant.padding(o.strideH, 1, in_h, o.filterHeight, out_h)),
              ("pad_w", quant.padding(o.strideW, 1, in_w, o.filterWidth, out_w)),
              ("act_min", act[0]), ("act_max", act[1]))
    return Step(operator.index, operator.kind, function, "aot_pool_t", fields, (), (x.index,), y.index,
                note=f"{o.filterHeight}x{o.filterWidth}/{o.strideH}")


def lower_max_pool(operator: Operator, graph: AotGraph, numerics: Numerics) -> Step:
    return _lower_pool(operator, graph, "aot_maxpool_s8")


def lower_average_pool(operator: Operator, graph: AotGraph, numerics: Numerics) -> Step:
    return _lower_pool(operator, graph, "aot_avgpool_s8")


def lower_softmax(operator: Operator, graph: AotGraph, numerics: Numerics) -> Step:
    _io_int8(operator, graph, 1)
    x, y = graph.tensor(operator.inputs[0]), graph.tensor(operator.outputs[0])
    _need(y.zero_point == -128 and np.float32(y.scale) == np.float32(1 / 256), operator, graph,
          "the output is not quantized with zero point -128 and scale 1/256")
    mult, left_shift, diff_min = quant.softmax_params(operator.options.beta, x.scale)
    depth = x.shape[-1]
    fields = (("rows", x.elements // depth), ("depth", depth), ("mult", mult), ("left_shift", left_shift),
              ("diff_min", diff_min))
    return Step(operator.index, operator.kind, "aot_softmax_s8", "aot_softmax_t", fields, (), (x.index,), y.index)


def lower_reshape(operator: Operator, graph: AotGraph, numerics: Numerics) -> Step:
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


def lower_add(operator: Operator, graph: AotGraph, numerics: Numerics) -> Step:
    _io_int8(operator, graph, 2)
    a, b, y = (graph.tensor(operator.inputs[0]), graph.tensor(operator.inputs[1]),
               graph.tensor(operator.outputs[0]))
    _need(len(y.shape) <= 6, operator, graph, "more than 6 dimensions")
    p = quant.add_params(a.scale, b.scale, y.scale)
    act = quant.activation_range(operator.options.fusedActivationFunction, y.scale, y.zero_point)
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
    return Step(operator.index, operator.kind, "aot_add_s8", "aot_add_t", fields, (), (a.index, b.index), y.index,
                note="elementwise" if same else "broadcast")


LOWERINGS = {
    "CONV_2D": lower_conv,
    "DEPTHWISE_CONV_2D": lower_depthwise,
    "FULLY_CONNECTED": lower_fully_connected,
    "MAX_POOL_2D": lower_max_pool,
    "AVERAGE_POOL_2D": lower_average_pool,
    "SOFTMAX": lower_softmax,
    "RESHAPE": lower_reshape,
    "ADD": lower_add,
}


def lower(graph: AotGraph, numerics: Numerics = Numerics()) -> list[Step]:
    steps = []
    for operator in graph.operators:
        lowering = LOWERINGS.get(operator.kind)
        if lowering is None:
            raise refuse(operator, graph, f"no AOT kernel for {operator.kind} (the set: "
                                          f"{', '.join(sorted(LOWERINGS))})")
        steps.append(lowering(operator, graph, numerics))
    return steps
