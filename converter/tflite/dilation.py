"""Fold SPACE_TO_BATCH_ND -> CONV_2D/DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND into one dilated convolution.

Why: the TFLite converter lowers a dilated convolution (tf_keras Conv1D/Conv2D/DepthwiseConv2D with
dilation_rate > 1) to that chain and writes a static batch of 1 for tensors that hold
prod(block) batches. LiteRT resizes them when it allocates; TFLM trusts the flatbuffer, so it
computes part of the data and BATCH_TO_SPACE_ND reads past its input: the outputs then hold
whatever memory lies there, differently on every device. CONV_2D and DEPTHWISE_CONV_2D take
dilation factors themselves (in TFLM, CMSIS-NN and LiteRT alike), so the chain is one operator.

The identity: with x padded by `paddings` (the zero point, as the convolution pads) and the
convolution VALID with stride 1, SPACE_TO_BATCH_ND / conv / BATCH_TO_SPACE_ND computes
y[n] = sum_m w[m] x_padded[n + crop_before + m*d], so the crops and paddings only shift and cut
the output of a dilated VALID convolution. That is exactly a dilated VALID convolution when
padding_before - crop_before == 0 and the output keeps L - d(k-1) positions, and a dilated SAME
one when the shift is d(k-1)//2 (TFLite's SAME: half the padding before, floor) and the output
keeps L positions. Anything else (strides, an inner SAME, non-constant block or paddings,
tensors read elsewhere, quantization changing across the chain) is left alone, and the runtime
consistency check (converter/tflm/consistency.py) refuses what is left.

The 1-D form has EXPAND_DIMS after SPACE_TO_BATCH_ND and RESHAPE before BATCH_TO_SPACE_ND; both
stay, with their shapes (and RESHAPE's shape operand) set to the unbatched sizes.
The result is a standard convolution with its dilation options set: nothing special for TFLM,
CMSIS-NN or an interpreter-free runtime to read.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .schema import schema
from .tflite_model import TfliteModel
from .verify import reading

_CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")


@dataclass(frozen=True)
class DilatedConvolution:
    """One folded chain."""
    op: str                       # CONV_2D or DEPTHWISE_CONV_2D
    tensor: str                   # the convolution's (now the chain's) output tensor
    dilation: tuple[int, int]     # (height, width) factors written
    padding: str                  # SAME or VALID
    removed: tuple[str, ...]      # the operators folded away

    def as_dict(self) -> dict:
        return {"op": self.op, "tensor": self.tensor, "dilation_h_w": list(self.dilation),
                "padding": self.padding, "removed": list(self.removed)}


@dataclass(frozen=True)
class Folded:
    model_bytes: bytes
    folds: tuple[DilatedConvolution, ...]
    operators_before: dict
    operators_after: dict

    def as_dict(self) -> dict:
        return {"rewrite": "dilated_convolution", "folds": [f.as_dict() for f in self.folds],
                "operators_before": self.operators_before, "operators_after": self.operators_after}


@dataclass
class _Chain:
    s2b: int
    expand: int | None
    conv: int
    reshape: int | None
    b2s: int


def _op(model: TfliteModel, index: int) -> str:
    return model.operator_name(model.operators[index])


def _ins(operator) -> list[int]:
    return [int(t) for t in (operator.inputs if operator.inputs is not None else [])]


def _outs(operator) -> list[int]:
    return [int(t) for t in (operator.outputs if operator.outputs is not None else [])]


def _only_reader(model: TfliteModel, tensor: int) -> int | None:
    """The one operator reading `tensor` at input 0, when it is read once and is no graph output."""
    readers = model.consumers(tensor)
    outputs = set(int(t) for t in (model.subgraph.outputs if model.subgraph.outputs is not None else []))
    if len(readers) != 1 or readers[0][1] != 0 or tensor in outputs:
        return None
    return readers[0][0]


def _find_chain(model: TfliteModel, s2b: int) -> _Chain | None:
    current, expand, reshape = _outs(model.operators[s2b])[0], None, None
    step = _only_reader(model, current)
    if step is not None and _op(model, step) == "EXPAND_DIMS":
        expand, step = step, _only_reader(model, _outs(model.operators[step])[0])
    if step is None or _op(model, step) not in _CONVOLUTIONS:
        return None
    conv = step
    step = _only_reader(model, _outs(model.operators[conv])[0])
    if step is not None and _op(model, step) == "RESHAPE" and expand is not None:
        reshape, step = step, _only_reader(model, _outs(model.operators[step])[0])
    if step is None or _op(model, step) != "BATCH_TO_SPACE_ND" or (expand is None) != (reshape is None):
        return None
    return _Chain(s2b, expand, conv, reshape, step)


def _same_quantization(model: TfliteModel, tensors: list[int]) -> bool:
    def key(t):
        q = model.tensors[t].quantization
        if q is None or q.scale is None:
            return (model.tensors[t].type, None, None)
        return (model.tensors[t].type, tuple(np.asarray(q.scale, np.float32)),
                tuple(int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [])))
    return len({key(t) for t in tensors}) == 1


def _spatial_axes(model: TfliteModel, chain: _Chain) -> list[int] | None:
    """For each SPACE_TO_BATCH_ND block axis, the convolution's spatial axis (1: height, 2: width)."""
    rank = len(model.shape(model.tensors[_ins(model.operators[chain.s2b])[0]]))
    if chain.expand is None:
        return [1, 2] if rank == 4 else None
    axis = model.constant(model.tensors[_ins(model.operators[chain.expand])[1]])
    if rank != 3 or axis is None or axis.size != 1:
        return None
    inserted = int(axis.reshape(-1)[0]) % 4
    return {1: [2], 2: [1]}.get(inserted)  # (N, 1, L, C): L is the width; (N, L, 1, C): the height


@dataclass(frozen=True)
class _Operands:
    """The chain's constants, checked: one block size, (before, after) paddings and crops per blocked axis."""
    axes: list[int]               # the convolution's spatial axis of each block entry (1: height, 2: width)
    block: np.ndarray
    paddings: np.ndarray
    crops: np.ndarray


@dataclass(frozen=True)
class _Plan:
    dilation: tuple[int, int]
    padding: str                  # SAME or VALID
    conv_in: list[int]
    conv_out: list[int]


def _operands(model: TfliteModel, chain: _Chain) -> _Operands | None:
    """The constant operands when the chain has the shape the identity needs (constant block, paddings and
    crops; the same block both ways; a VALID, stride-1, undilated inner convolution; unchanged quantization)."""
    s2b, conv, b2s = (model.operators[i] for i in (chain.s2b, chain.conv, chain.b2s))
    reshape = None if chain.reshape is None else model.operators[chain.reshape]
    if len(_ins(b2s)) != 3 or len(_ins(conv)) < 2 or (reshape is not None and len(_ins(reshape)) > 1 and
                                                      model.tensor_type(model.tensors[_ins(reshape)[1]]) != "INT32"):
        return None
    block, paddings = (model.constant(model.tensors[t]) for t in _ins(s2b)[1:3])
    block_out, crops = (model.constant(model.tensors[t]) for t in _ins(b2s)[1:3])
    options, axes = conv.builtinOptions, _spatial_axes(model, chain)
    if block is None or paddings is None or block_out is None or crops is None or options is None or axes is None:
        return None
    if block.shape != (len(axes),) or not np.array_equal(block, block_out) or bool((block < 1).any()) or \
            paddings.shape != (len(axes), 2) or crops.shape != (len(axes), 2) or bool((paddings < 0).any()) or \
            bool((crops < 0).any()):
        return None
    if (options.strideH, options.strideW, options.dilationHFactor, options.dilationWFactor) != (1, 1, 1, 1) or \
            options.padding != schema.Padding.VALID:
        return None
    if not _same_quantization(model, [_ins(s2b)[0], _outs(s2b)[0], _ins(conv)[0]]) or \
            not _same_quantization(model, [_outs(conv)[0], _ins(b2s)[0], _outs(b2s)[0]]):
        return None
    return _Operands(axes, block, paddings, crops)


def _unbatched(shape, chain: _Chain, axes: list[int]) -> list[int]:
    """A chain tensor's shape as the convolution sees it once nothing is moved into the batch."""
    if chain.expand is None:
        return list(shape)
    return [1, 1, shape[1], shape[2]] if axes == [2] else [1, shape[1], 1, shape[2]]


def _plan(model: TfliteModel, chain: _Chain) -> _Plan | None:
    """The one dilated convolution the chain computes, when provably equal (module docstring), else None."""
    operands = _operands(model, chain)
    source = model.shape(model.tensors[_ins(model.operators[chain.s2b])[0]])
    if operands is None or not source or source[0] != 1:
        return None
    conv_in = _unbatched(source, chain, operands.axes)
    filter_shape = model.shape(model.tensors[_ins(model.operators[chain.conv])[1]])
    final = model.shape(model.tensors[_outs(model.operators[chain.b2s])[0]])
    dilation, kinds = [1, 1], set()
    for position, axis in enumerate(operands.axes):
        d, (pb, pa), (cb, ca) = int(operands.block[position]), operands.paddings[position], operands.crops[position]
        length, k = conv_in[axis], filter_shape[axis]
        produced = length + pb + pa - d * (k - 1) - cb - ca
        if (length + pb + pa) % d or produced != final[1 + position]:
            return None
        shift = pb - cb
        if d * (k - 1) == 0 and shift == 0 and produced == length:
            pass  # a 1-wide kernel reads no neighbours: VALID and SAME agree on this axis
        elif shift == 0 and produced == length - d * (k - 1):
            kinds.add("VALID")
        elif shift == d * (k - 1) // 2 and produced == length:
            kinds.add("SAME")
        else:
            return None
        dilation[axis - 1] = d
    # the unblocked axis of a 1-D chain must not need padding, and one padding must serve both axes
    if any(filter_shape[axis] != 1 for axis in {1, 2} - set(operands.axes)) or len(kinds) > 1:
        return None
    return _Plan((dilation[0], dilation[1]), kinds.pop() if kinds else "VALID", conv_in,
                 _unbatched(final, chain, operands.axes))


def _set_shape(tensor, shape) -> None:
    tensor.shape = np.array(shape, np.int32)
    if tensor.shapeSignature is not None:
        signature = np.array(shape, np.int32)
        if len(tensor.shapeSignature) == len(shape) and int(tensor.shapeSignature[0]) < 0:
            signature[0] = -1
        tensor.shapeSignature = signature


def _fold(model: TfliteModel, chain: _Chain, plan: _Plan) -> DilatedConvolution:
    dilation, padding, conv_in, conv_out = plan.dilation, plan.padding, plan.conv_in, plan.conv_out
    s2b, conv, b2s = (model.operators[i] for i in (chain.s2b, chain.conv, chain.b2s))
    source, final = _ins(s2b)[0], _outs(b2s)[0]
    if chain.expand is None or chain.reshape is None:
        conv.inputs[0] = source
        conv.outputs[0] = final
    else:
        expand, reshape = model.operators[chain.expand], model.operators[chain.reshape]
        expand.inputs[0] = source
        _set_shape(model.tensors[_outs(expand)[0]], conv_in)
        _set_shape(model.tensors[_outs(conv)[0]], conv_out)
        reshape.outputs[0] = final
        final_shape = list(model.shape(model.tensors[final]))
        if len(_ins(reshape)) > 1:  # the shape operand: a fresh buffer, as others may share the old one
            reshape_tensor = model.tensors[_ins(reshape)[1]]
            reshape_tensor.buffer = model.add_buffer(np.array(final_shape, np.int32))
            reshape_tensor.shape = np.array([len(final_shape)], np.int32)
        if reshape.builtinOptions is not None and getattr(reshape.builtinOptions, "newShape", None) is not None:
            reshape.builtinOptions.newShape = final_shape
    options = conv.builtinOptions
    options.dilationHFactor, options.dilationWFactor = dilation
    options.padding = getattr(schema.Padding, padding)
    removed = ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND")
    return DilatedConvolution(model.operator_name(conv), model.tensor_name(model.tensors[final]), dilation, padding,
                              removed)


def _drop_unused(model: TfliteModel) -> None:
    """Tensors no operator, graph input or output names, and operator codes no operator uses, removed
    and renumbered; then buffers (compact)."""
    subgraph = model.subgraph
    used = set()
    for op in subgraph.operators:
        used |= {t for t in _ins(op) + _outs(op) if t >= 0}
    used |= {int(t) for t in subgraph.inputs} | {int(t) for t in subgraph.outputs}
    keep = sorted(used)
    renumber = {old: new for new, old in enumerate(keep)}
    subgraph.tensors = [subgraph.tensors[t] for t in keep]
    for op in subgraph.operators:
        op.inputs = [renumber[t] if t >= 0 else t for t in _ins(op)]
        op.outputs = [renumber[t] for t in _outs(op)]
    subgraph.inputs = [renumber[int(t)] for t in subgraph.inputs]
    subgraph.outputs = [renumber[int(t)] for t in subgraph.outputs]
    for signature in model.root.signatureDefs or []:  # LiteRT's signature runners name tensors by index
        if signature.subgraphIndex == 0:
            for entry in (signature.inputs or []) + (signature.outputs or []):
                entry.tensorIndex = renumber[int(entry.tensorIndex)]
    codes = sorted({op.opcodeIndex for s in model.subgraphs for op in s.operators or []})
    recode = {old: new for new, old in enumerate(codes)}
    model.root.operatorCodes = [model.root.operatorCodes[c] for c in codes]
    for s in model.subgraphs:
        for op in s.operators or []:
            op.opcodeIndex = recode[op.opcodeIndex]
    model.compact()


def _counts(model: TfliteModel) -> dict:
    counts: dict[str, int] = {}
    for op in model.operators:
        counts[model.operator_name(op)] = counts.get(model.operator_name(op), 0) + 1
    return counts


@reading
def fold_dilated_convolutions(model_bytes: bytes) -> Folded:
    """The model with every provable SPACE_TO_BATCH_ND -> convolution -> BATCH_TO_SPACE_ND chain of its
    main subgraph folded into one dilated convolution (Folded.folds empty and the bytes unchanged when
    there is none). Only subgraph 0 is edited: TFLM runs it, and the converter writes the chain there."""
    model = TfliteModel.from_bytes(model_bytes)
    if len(model.subgraphs) != 1:
        return Folded(model_bytes, (), _counts(model), _counts(model))
    before = _counts(model)
    model = model.copy()
    folds, dropped = [], set()
    for index, operator in enumerate(model.operators):
        if model.operator_name(operator) != "SPACE_TO_BATCH_ND" or len(_ins(operator)) != 3:
            continue
        chain = _find_chain(model, index)
        plan = None if chain is None else _plan(model, chain)
        if chain is None or plan is None:
            continue
        folds.append(_fold(model, chain, plan))
        dropped |= {chain.s2b, chain.b2s}
    if not folds:
        return Folded(model_bytes, (), before, before)
    model.subgraph.operators = [op for i, op in enumerate(model.operators) if i not in dropped]
    _drop_unused(model)
    return Folded(model.to_bytes(aligned=True), tuple(folds), before, _counts(model))
