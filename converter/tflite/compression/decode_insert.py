"""Put encoded tensors into a model the way TFLM's DECODE operator reads them.

For each encoded tensor T (the same layout TFLM's compression/decode_insert.py writes):
- T keeps its index and becomes a UINT8 vector holding the encoded data, without quantization;
- an ancillary UINT8 tensor holds the DCM header and the decoder's tables;
- in front of every operator that reads T, a TFLM_DECODE operator takes (T, ancillary) pairs
  and writes a copy of the original T (same shape, type and quantization, no data) that the
  operator reads instead. One DECODE per consumer: a DECODE output lives only until the next
  operator, which keeps the arena cost to one decoded tensor at a time.
"""
from __future__ import annotations

import copy

from ..schema import DECODE_OP, schema
from ..tflite_model import TfliteModel


def insert_decode(model_bytes: bytes, encoded: dict[tuple[int, int], tuple[bytes, bytes]]) -> bytes:
    """The model with every (subgraph, tensor) in `encoded` replaced by its (encoded, ancillary) data."""
    model = TfliteModel.from_bytes(model_bytes)
    decode = model.opcode_index(DECODE_OP)
    for s, subgraph in enumerate(model.subgraphs):
        chosen = {t: data for (sub, t), data in encoded.items() if sub == s}
        if not chosen:
            continue
        ancillary = {t: model.add_tensor((len(extra),), "UINT8", model.add_buffer(extra),
                                         f"{model.tensor_name(subgraph.tensors[t])}_ancillary", subgraph=s)
                     for t, (_, extra) in chosen.items()}
        # walk the operators backwards so each insertion leaves the positions still to visit valid
        for position in reversed(range(len(subgraph.operators or []))):
            consumer = subgraph.operators[position]
            reads = [t for t in dict.fromkeys(int(i) for i in consumer.inputs) if t in chosen]
            if not reads:
                continue
            outputs = [_decoded_copy(model, s, t) for t in reads]
            operator = schema.OperatorT()
            operator.opcodeIndex = decode
            operator.inputs = [i for t in reads for i in (t, ancillary[t])]
            operator.outputs = outputs
            subgraph.operators.insert(position, operator)
            rewired = dict(zip(reads, outputs))
            consumer.inputs = [rewired.get(int(i), int(i)) for i in consumer.inputs]
        for t, (data, _) in chosen.items():
            tensor = subgraph.tensors[t]
            tensor.shape, tensor.type = [len(data)], schema.TensorType.UINT8
            tensor.quantization, tensor.shapeSignature = None, None
            tensor.buffer = model.add_buffer(data)
    model.compact()  # the replaced tensors' original buffers
    return model.to_bytes(aligned=True)


def _decoded_copy(model: TfliteModel, subgraph: int, tensor: int) -> int:
    original = model.subgraphs[subgraph].tensors[tensor]
    decoded = copy.deepcopy(original)
    decoded.buffer = 0
    decoded.name = (model.tensor_name(original) + "_decoded").encode()
    model.subgraphs[subgraph].tensors.append(decoded)
    return len(model.subgraphs[subgraph].tensors) - 1
