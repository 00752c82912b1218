"""Write a subset of a model's operators as a .tflite of its own.

Behind two functions (graph_view, extract), on the kit's TfliteModel (converter/tflite/): the
schema's object API, not TFLM's model_editor, which rewrites operator codes and breaks files from
older converters (the MLPerf KWS reference).

Interface tensors are copied with their quantization, so part 0's outputs and part 1's inputs
have the whole model's scale and zero point and the bytes mean the same on both sides.
"""
from __future__ import annotations

import copy

from ..tflite.tflite_model import TfliteModel
from ..tflite.verify import reading
from .graph import GraphView, Op


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


@reading
def graph_view(model_bytes: bytes) -> GraphView:
    model = TfliteModel.from_bytes(model_bytes)
    main = model.subgraph
    constant = set()
    names = {}
    for t, tensor in enumerate(model.tensors):
        names[t] = model.tensor_name(tensor) or f"#{t}"
        if model.data(tensor) is not None:
            constant.add(t)
    ops = []
    for o, operator in enumerate(model.operators):
        inputs = [int(i) for i in operator.inputs] if operator.inputs is not None else []
        outputs = [int(i) for i in operator.outputs] if operator.outputs is not None else []
        ops.append(Op(o, model.operator_name(operator),
                      tuple(i for i in inputs if i >= 0 and i not in constant), tuple(outputs)))
    return GraphView(tuple(ops), tuple(int(i) for i in main.inputs), tuple(int(i) for i in main.outputs), names)


def _pack(model) -> bytes:
    """A schema ModelT packed as TfliteModel packs it (channels.py builds its models with the object API)."""
    return TfliteModel(model).to_bytes()


def extract(model_bytes: bytes, operators: tuple, inputs: tuple, outputs: tuple) -> bytes:
    """A model running `operators` (indices into the main subgraph, in execution order) that
    reads `inputs` and writes `outputs` (tensor indices of the original model)."""
    schema = _schema()
    whole = TfliteModel.from_bytes(model_bytes).root
    main = whole.subgraphs[0]
    chosen = [main.operators[i] for i in operators]
    tensor_map: dict[int, int] = {}
    used = [i for op in chosen for i in list(op.inputs) + list(op.outputs) + list(op.intermediates or [])]
    for t in list(inputs) + used + list(outputs):
        if t >= 0 and t not in tensor_map:
            tensor_map[t] = len(tensor_map)
    buffers = [schema.BufferT()]  # buffer 0 is the empty sentinel every tensor without data names
    buffer_map = {0: 0}
    tensors = []
    for old in tensor_map:
        tensor = copy.copy(main.tensors[old])
        if tensor.buffer not in buffer_map:
            data = whole.buffers[tensor.buffer]
            buffer_map[tensor.buffer] = len(buffers)
            buffers.append(data if data.data is not None and len(data.data) else schema.BufferT())
        tensor.buffer = buffer_map[tensor.buffer]
        tensors.append(tensor)
    opcode_map: dict[int, int] = {}
    operator_codes: list = []
    new_ops = []
    for op in chosen:
        op = copy.copy(op)
        if op.opcodeIndex not in opcode_map:
            opcode_map[op.opcodeIndex] = len(operator_codes)
            operator_codes.append(whole.operatorCodes[op.opcodeIndex])
        op.opcodeIndex = opcode_map[op.opcodeIndex]
        op.inputs = [tensor_map[i] if i >= 0 else -1 for i in op.inputs]
        op.outputs = [tensor_map[i] for i in op.outputs]
        if op.intermediates is not None:
            op.intermediates = [tensor_map[i] for i in op.intermediates]
        new_ops.append(op)
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators = tensors, new_ops
    subgraph.inputs = [tensor_map[t] for t in inputs]
    subgraph.outputs = [tensor_map[t] for t in outputs]
    subgraph.name = main.name
    part = schema.ModelT()
    part.version, part.description = whole.version, whole.description
    part.operatorCodes, part.subgraphs, part.buffers = operator_codes, [subgraph], buffers
    # Signature defs and metadata (offline memory plans, runtime versions) describe the whole graph.
    part.signatureDefs, part.metadata = [], []
    return _pack(part)


def with_extra_outputs(model_bytes: bytes, view: GraphView, extra: tuple) -> bytes:
    """The whole model, also writing `extra` as outputs: the whole model's tensors at a cut."""
    return extract(model_bytes, tuple(op.index for op in view.ops), view.inputs, view.outputs + tuple(extra))
