"""Structural verification of a .tflite flatbuffer before any reader or runtime trusts it.

Flatbuffers does not bound-check: a cut or hand-edited file makes readers return garbage or
runtimes crash. `verified_root` checks what the kit relies on (identifier, schema version,
buffers inside the file, tensor/opcode/buffer indices in range); `reading` turns any other
failure of a reader into one clear KitError.
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import KitError, foreign_text
from .schema import NUMPY_TYPES, SCHEMA_VERSION, schema

# bytes per element of the fixed-size types, by schema type code
ITEMSIZES = {getattr(schema.TensorType, name): np.dtype(t).itemsize for name, t in NUMPY_TYPES.items()}


def verified_root(model_bytes: bytes):  # noqa: C901 (one check per flatbuffer field; to split)
    """The generated reader's root after structural checks, so no runtime sees a file that lies about itself."""
    if len(model_bytes) == 0:
        raise KitError("the model file is empty", "give a .tflite file written by the TFLite converter",
                       code="empty-file")
    if len(model_bytes) < 8 or not schema.Model.ModelBufferHasIdentifier(model_bytes, 0):
        raise KitError("the file is not a TFLite flatbuffer (no 'TFL3' identifier)", "give a .tflite file",
                       code="not-tflite")
    model = schema.Model.GetRootAs(model_bytes, 0)
    version = model.Version()
    if version != SCHEMA_VERSION:
        raise KitError(f"the model has TFLite schema version {version}; TFLM reads version {SCHEMA_VERSION}",
                       "re-convert the model with a current TFLite converter", code="schema-version")
    if model.SubgraphsLength() < 1:
        raise KitError("the model has no subgraph", "re-convert the model", code="no-subgraph")
    buffers = model.BuffersLength()
    data_sizes = [_check_buffer(model.Buffers(b), b, len(model_bytes)) for b in range(buffers)]
    opcodes = model.OperatorCodesLength()
    for s_index in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s_index)
        tensors = subgraph.TensorsLength()
        for t in range(tensors):
            tensor = subgraph.Tensors(t)
            if tensor.Buffer() >= max(buffers, 1):
                raise KitError(f"tensor {t} names buffer {tensor.Buffer()} of {buffers}", "re-export the model",
                               code="tensor-buffer-index")
            tensor.ShapeLength(), tensor.Name()
            if buffers:
                _check_data_size(tensor, t, data_sizes[tensor.Buffer()])
        for o in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(o)
            if operator.OpcodeIndex() >= opcodes:
                raise KitError(f"operator {o} names opcode {operator.OpcodeIndex()} of {opcodes}",
                               "re-export the model", code="operator-opcode-index")
            for index in list(operator.InputsAsNumpy() if operator.InputsLength() else []) + \
                    list(operator.OutputsAsNumpy() if operator.OutputsLength() else []):
                if index >= tensors:
                    raise KitError(f"operator {o} uses tensor {index} of {tensors}", "re-export the model",
                                   code="operator-tensor-index")
    return model


def _check_buffer(buffer, index: int, file_size: int) -> int:
    """Checks a buffer lies inside the file; returns the length of its data vector."""
    offset, size = buffer.Offset(), buffer.Size()
    if offset and offset + size > file_size:
        raise KitError(f"buffer {index} points past the end of the file (truncated?)", "re-export the model",
                       code="buffer-offset-past-end")
    # The 'data' vector (field 4): the generated accessors do not bound-check it, so read the
    # table directly -- the only place the kit touches the reader's private table.
    data_field = buffer._tab.Offset(4)
    if data_field:
        start = buffer._tab.Vector(data_field)
        if start + buffer._tab.VectorLen(data_field) > file_size:
            raise KitError(f"buffer {index} runs past the end of the file: the model is truncated",
                           "re-export or re-download the .tflite file", code="buffer-data-past-end")
        return buffer._tab.VectorLen(data_field)
    return 0


def _check_data_size(tensor, index: int, data_bytes: int) -> None:
    """A constant tensor's data must be exactly what its shape and type need: runtimes index the data
    by the shape without checking (a corrupted shape made TFLM read past the weights)."""
    itemsize = ITEMSIZES.get(tensor.Type())
    if not data_bytes or itemsize is None or tensor.Sparsity() is not None:
        return  # activations, strings, packed or sparse encodings: no fixed size per element
    elements = 1
    for d in (tensor.ShapeAsNumpy() if tensor.ShapeLength() else []):
        elements *= max(int(d), 0)
    if elements * itemsize != data_bytes:
        raise KitError(f"tensor {index} has shape {[int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []} "
                       f"({elements:,} elements) but {data_bytes:,} bytes of data", "re-export the model")


def reading(read):
    """Turn the many ways flatbuffers fails on a cut or corrupt file into one clear error."""
    @functools.wraps(read)
    def wrapper(model_bytes: bytes, *args, **kwargs):
        try:
            return read(bytes(model_bytes), *args, **kwargs)
        except KitError:
            raise
        except Exception as exc:
            raise KitError(f"the model flatbuffer is truncated or corrupt ({foreign_text(exc, with_type=True)})",
                           "re-export or re-download the .tflite file", code="corrupt-flatbuffer") from None
    return wrapper
