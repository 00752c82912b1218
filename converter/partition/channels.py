"""Channel partitioning: one convolution's output channels computed as two halves, then concatenated.

With per-channel quantized filters, output channel c depends only on filter c, bias c and
scale c, and the output tensor has one scale and zero point, so each half computes exactly its
channels and CONCATENATION (same quantization in and out) copies them. The rewrite is checked
on TFLM against the whole model, byte for byte. It is priced but not emitted as firmware: the
half on the second device needs the conv's input sent over the link and its half sent back.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .extract import _pack, _schema

CHANNEL_OPS = ("CONV_2D",)


@dataclass(frozen=True)
class ChannelCandidate:
    operator: int
    channels: int
    input_bytes: int      # what device 0 sends for the other half to be computed
    output_bytes: int     # the whole output; the other half comes back


def _per_channel(tensor) -> bool:
    q = tensor.quantization
    return q is not None and q.scale is not None and len(q.scale) > 1


def _nbytes(tensor) -> int:
    return int(np.prod(tensor.shape))  # int8 activations


def candidates(model_bytes: bytes, op_names: dict) -> list[ChannelCandidate]:
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytes(model_bytes), 0)
    main = model.subgraphs[0]
    found = []
    for index, op in enumerate(main.operators):
        if op_names[index] not in CHANNEL_OPS or len(op.inputs) < 3 or op.inputs[2] < 0:
            continue
        source, weights, output = (main.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        channels = int(weights.shape[0])
        if channels >= 2 and channels % 2 == 0 and _per_channel(weights):
            found.append(ChannelCandidate(index, channels, _nbytes(source), _nbytes(output)))
    return found


def _slice_tensor(model, main, index: int, start: int, stop: int, name: str) -> int:
    """A new constant tensor holding rows start:stop (axis 0) of tensor `index`, with its per-channel quantization."""
    schema = _schema()
    tensor = copy.deepcopy(main.tensors[index])
    data = np.frombuffer(bytes(model.buffers[tensor.buffer].data), dtype=np.uint8)
    rows = data.reshape(int(tensor.shape[0]), -1)[start:stop]
    buffer = schema.BufferT()
    buffer.data = rows.tobytes()
    model.buffers.append(buffer)
    tensor.buffer = len(model.buffers) - 1
    tensor.shape = [stop - start] + list(tensor.shape[1:])
    tensor.name = name.encode()
    q = tensor.quantization
    q.scale = list(q.scale[start:stop])
    q.zeroPoint = list(q.zeroPoint[start:stop]) if q.zeroPoint is not None and len(q.zeroPoint) > 1 else q.zeroPoint
    main.tensors.append(tensor)
    return len(main.tensors) - 1


def split_channels(model_bytes: bytes, operator: int, first: int) -> bytes:
    """The model with conv `operator` computed as channels [0, first) and [first, C), then concatenated."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytes(model_bytes), 0)
    main = model.subgraphs[0]
    op = main.operators[operator]
    source, weights, bias = op.inputs[:3]
    output = main.tensors[op.outputs[0]]
    channels = int(main.tensors[weights].shape[0])
    halves = []
    for k, (start, stop) in enumerate(((0, first), (first, channels))):
        half = copy.deepcopy(op)
        half.inputs = [source, _slice_tensor(model, main, weights, start, stop, f"channel_split/{k}/filter"),
                       _slice_tensor(model, main, bias, start, stop, f"channel_split/{k}/bias")]
        out = copy.deepcopy(output)
        out.shape = list(output.shape[:-1]) + [stop - start]
        out.name = f"channel_split/{k}/output".encode()
        if out.shapeSignature is not None:
            out.shapeSignature = list(output.shapeSignature[:-1]) + [stop - start]
        out.buffer = 0
        main.tensors.append(out)
        half.outputs = [len(main.tensors) - 1]
        halves.append(half)
    concat = schema.OperatorT()
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    if schema.BuiltinOperator.CONCATENATION not in codes:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CONCATENATION
        code.version = 1
        model.operatorCodes.append(code)
        codes.append(schema.BuiltinOperator.CONCATENATION)
    concat.opcodeIndex = codes.index(schema.BuiltinOperator.CONCATENATION)
    concat.builtinOptionsType = schema.BuiltinOptions.ConcatenationOptions
    concat.builtinOptions = schema.ConcatenationOptionsT()
    concat.builtinOptions.axis = len(output.shape) - 1
    concat.inputs = [h.outputs[0] for h in halves]
    concat.outputs = list(op.outputs)
    main.operators[operator:operator + 1] = halves + [concat]
    return _pack(model)


@dataclass(frozen=True)
class ChannelPlan:
    """One convolution's channels split evenly over the two devices, within the whole model run on device 0."""
    operator: int
    channels: int
    bit_exact: bool          # the rewritten model's TFLM outputs equal the whole model's on every golden vector
    op_ms_alone: float       # the conv on device 0 (measured instructions)
    op_ms_split: float       # max(half on device 0, input over the link + half on device 1 + half back)
    latency_ms: float        # whole model on device 0 with this conv split
    wins: bool               # faster than the chosen layer cut

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def price(model_bytes: bytes, op_names: dict, inputs: list, golden: list, measured: dict, devices, link,
          whole_ms: float, best_ms: float) -> list[ChannelPlan]:
    """Each candidate split at half its channels. A half's instructions are the conv's measured count
    times its share of the channels (an estimate: the kernels' work is linear in output channels)."""
    from ..tflm.runners import run_tflm

    plans: list[ChannelPlan] = []
    if any(d.is_npu for d in devices):
        return plans
    for c in candidates(model_bytes, op_names):
        rewritten = split_channels(model_bytes, c.operator, c.channels // 2)
        outputs = run_tflm(rewritten, inputs)
        exact = all(a.tobytes() == b.tobytes() for a, b in zip(outputs, golden))
        alone = [measured[d.core].operators[c.operator].instructions / (d.mhz * 1e3) for d in devices]
        there = link.seconds(c.input_bytes) * 1e3 + alone[1] / 2 + link.seconds(c.output_bytes // 2) * 1e3
        split_ms = max(alone[0] / 2, there)
        latency = whole_ms - alone[0] + split_ms
        plans.append(ChannelPlan(c.operator, c.channels, exact, alone[0], split_ms, latency,
                                 exact and latency < best_ms))
    return plans
