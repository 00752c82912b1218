"""Declared shapes checked before any runtime runs the model: size bounds and the shape each operator makes.

TFLM trusts the shapes a flatbuffer declares; LiteRT recomputes them from the inputs. A file whose
declared shapes do not follow from the operators (one dimension set to 65,536 in a mutated model)
makes LiteRT compute on tensors thousands of times larger than declared, and a runtime that trusts a
huge declared shape runs for minutes: `validate` looked hung. Both are refused here, in plain Python,
before anything native runs (tflm/deployable.check_deployable calls this; the work bound is there).

Checked operators: the families of microcontroller models (convolutions, pools, fully connected,
reshape, element-wise and same-shape ops). SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND are left to the
divergence check (the dilated-convolution rewrite reads them).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import KitError
from .schema import schema
from .tflite_model import TfliteModel
from .verify import ITEMSIZES

# One tensor's declared bytes: far above any microcontroller's RAM or flash (the largest board profile has 4 MB).
TENSOR_BYTES_LIMIT = 64 * 2**20
SAME_SHAPE_OPS = frozenset({"SOFTMAX", "LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1", "QUANTIZE",
                            "DEQUANTIZE", "HARD_SWISH", "LEAKY_RELU", "ELU", "ABS", "NEG", "PRELU_SAME",
                            "LOG_SOFTMAX"})
BROADCAST_OPS = frozenset({"ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"})
CONV_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})
POOL_OPS = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D"})


def _spatial(size: int, kernel: int, stride: int, dilation: int, padding: int) -> int:
    """Output length along one axis, as TFLite's ComputeOutSize computes it."""
    if stride <= 0 or dilation <= 0 or kernel <= 0:
        return -1
    if padding == schema.Padding.SAME:
        return (size + stride - 1) // stride
    effective = (kernel - 1) * dilation + 1
    return (size - effective + stride) // stride


def _expected(op: str, operator, shapes: list[tuple]) -> tuple | int | None:
    """The output shape (or, for reshape and fully connected, the element count) the op makes from its
    inputs; None when this op is not checked or an optional input is absent."""
    ins, options = shapes, operator.builtinOptions
    if op in SAME_SHAPE_OPS and ins:
        return ins[0]
    if op in BROADCAST_OPS and len(ins) == 2:
        try:
            return tuple(np.broadcast_shapes(ins[0], ins[1]))
        except ValueError:
            return ()  # operands that do not broadcast: no output shape fits
    if op == "RESHAPE" and ins:
        return math.prod(ins[0])
    if op == "FULLY_CONNECTED" and len(ins) >= 2 and len(ins[1]) == 2:
        units, depth = ins[1]
        total = math.prod(ins[0])
        return total // depth * units if depth and total % depth == 0 else -1
    if op in CONV_OPS and len(ins) >= 2 and len(ins[0]) == 4 and len(ins[1]) == 4 and options is not None:
        n, h, w, depth = ins[0]
        channels = ins[1][0] if op == "CONV_2D" else ins[1][3]
        groups = depth // ins[1][3] if op == "CONV_2D" and ins[1][3] > 0 and depth % ins[1][3] == 0 else 0
        if (groups == 0 or channels % groups) if op == "CONV_2D" else (depth <= 0 or channels % depth):
            return ()  # input channels that no filter layout fits (grouped: output channels per group)
        return (n, _spatial(h, ins[1][1], options.strideH, options.dilationHFactor, options.padding),
                _spatial(w, ins[1][2], options.strideW, options.dilationWFactor, options.padding), channels)
    if op in POOL_OPS and ins and len(ins[0]) == 4 and options is not None:
        n, h, w, c = ins[0]
        return (n, _spatial(h, options.filterHeight, options.strideH, 1, options.padding),
                _spatial(w, options.filterWidth, options.strideW, 1, options.padding), c)
    return None


def _shown(shape) -> str:
    dims = [int(d) for d in shape]
    return str(dims) if len(dims) <= 8 else f"{str(dims[:8])[:-1]}, ... ({len(dims)} dimensions)]"


def _check_sizes(model: TfliteModel, tensors) -> None:
    for index, tensor in enumerate(tensors):
        shape = model.shape(tensor)
        size = math.prod(max(int(d), 0) for d in shape) * ITEMSIZES.get(tensor.type, 1)
        if size > TENSOR_BYTES_LIMIT:
            raise KitError(f"tensor {index} '{model.tensor_name(tensor)}' declares shape {_shown(shape)}: {size:,} bytes, "
                           f"over the {TENSOR_BYTES_LIMIT:,} any microcontroller can hold", "re-export the model "
                           "(a corrupted or edited file declares sizes its data does not have)", code="tensor-too-big")


def check_declared_shapes(model: TfliteModel) -> None:
    """KitError when a tensor is too large for any device, or an operator's declared output shape is not
    the one its inputs make (naming the operator, the tensors and both shapes)."""
    for subgraph in model.subgraphs:
        tensors = subgraph.tensors or []
        _check_sizes(model, tensors)
        for number, operator in enumerate(subgraph.operators or []):
            op = model.operator_name(operator)
            inputs = [int(i) for i in (operator.inputs if operator.inputs is not None else [])]
            outputs = [int(i) for i in (operator.outputs if operator.outputs is not None else [])]
            if not outputs or outputs[0] < 0 or any(i < 0 for i in inputs[:2]):
                continue
            expected = _expected(op, operator, [tuple(int(d) for d in model.shape(tensors[i])) for i in inputs[:2]])
            declared = tuple(int(d) for d in model.shape(tensors[outputs[0]]))
            if expected is None or expected == (math.prod(declared) if isinstance(expected, int) else declared):
                continue
            shown = ", ".join(f"'{model.tensor_name(tensors[i])}' {_shown(model.shape(tensors[i]))}" for i in inputs[:2])
            made = "no output at all (they do not fit together)" if expected in (-1, ()) else \
                f"{expected:,} elements" if isinstance(expected, int) else _shown(expected)
            raise KitError(f"operator {number} ({op}) declares output '{model.tensor_name(tensors[outputs[0]])}' "
                           f"{_shown(declared)}, but its inputs ({shown}) make {made}",
                           "re-export the model: its declared shapes do not follow from its operators "
                           "(runtimes would disagree, or compute on far larger tensors)", code="shape-mismatch")
