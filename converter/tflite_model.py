"""Read what the kit needs from a .tflite flatbuffer: operators and input/output tensors."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from .errors import KitError

_BUILTIN_NAMES = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_TYPE_NAMES = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
# Values of TfLiteType (tensorflow/lite/core/c/c_api_types.h), which firmware compares against.
TFLITE_TYPE_ENUM = {"FLOAT32": 1, "INT32": 2, "UINT8": 3, "INT64": 4, "BOOL": 6, "INT16": 7, "INT8": 9, "FLOAT16": 10}
NUMPY_TYPES = {"FLOAT32": np.float32, "INT32": np.int32, "UINT8": np.uint8, "INT64": np.int64, "BOOL": np.bool_,
               "INT16": np.int16, "INT8": np.int8, "FLOAT16": np.float16}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type: str            # schema name, e.g. "INT8"
    shape: tuple
    scale: float | None
    zero_point: int | None

    @property
    def dtype(self):
        return np.dtype(NUMPY_TYPES[self.type])

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.elements * self.dtype.itemsize

    def as_dict(self) -> dict:
        return {"name": self.name, "type": self.type.lower(), "shape": list(self.shape),
                "scale": self.scale, "zero_point": self.zero_point}


@dataclass(frozen=True)
class ModelInfo:
    operators: tuple        # operator names in first-use order, each once (builtin or custom)
    operator_counts: dict   # name -> number of nodes using it
    inputs: tuple
    outputs: tuple
    subgraphs: int


def _tensor(subgraph, index: int) -> TensorInfo:
    tensor = subgraph.Tensors(index)
    quant = tensor.Quantization()
    scale = zero_point = None
    if quant is not None and quant.ScaleLength() == 1:
        scale, zero_point = float(quant.Scale(0)), int(quant.ZeroPoint(0))
    type_name = _TYPE_NAMES.get(tensor.Type(), f"TYPE_{tensor.Type()}")
    if type_name not in NUMPY_TYPES:
        raise KitError(f"model input/output '{tensor.Name().decode()}' has type {type_name}, which the kit cannot feed",
                       "convert the model with numeric input/output tensors")
    return TensorInfo(tensor.Name().decode(errors="replace"), type_name,
                      tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else (), scale, zero_point)


def operator_name(model, opcode_index: int) -> str:
    opcode = model.OperatorCodes(opcode_index)
    # Builtin codes above 127 live in BuiltinCode(); the deprecated byte field caps at 127.
    code = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
    if code == schema.BuiltinOperator.CUSTOM:
        return opcode.CustomCode().decode(errors="replace")
    return _BUILTIN_NAMES.get(code, f"BUILTIN_{code}")


SCHEMA_VERSION = 3


def _root(model_bytes: bytes):
    """The flatbuffer root after structural checks, so no runtime sees a file that lies about itself."""
    if len(model_bytes) == 0:
        raise KitError("the model file is empty", "give a .tflite file written by the TFLite converter")
    if len(model_bytes) < 8 or not schema.Model.ModelBufferHasIdentifier(model_bytes, 0):
        raise KitError("the file is not a TFLite flatbuffer (no 'TFL3' identifier)", "give a .tflite file")
    model = schema.Model.GetRootAs(model_bytes, 0)
    version = model.Version()
    if version != SCHEMA_VERSION:
        raise KitError(f"the model has TFLite schema version {version}; TFLM reads version {SCHEMA_VERSION}",
                       "re-convert the model with a current TFLite converter")
    if model.SubgraphsLength() < 1:
        raise KitError("the model has no subgraph", "re-convert the model")
    buffers = model.BuffersLength()
    for b in range(buffers):
        buffer = model.Buffers(b)
        offset, size = buffer.Offset(), buffer.Size()
        if offset and offset + size > len(model_bytes):
            raise KitError(f"buffer {b} points past the end of the file (truncated?)", "re-export the model")
        data_field = buffer._tab.Offset(4)  # the 'data' vector; flatbuffers does not bound-check it
        if data_field:
            start = buffer._tab.Vector(data_field)
            if start + buffer._tab.VectorLen(data_field) > len(model_bytes):
                raise KitError(f"buffer {b} runs past the end of the file: the model is truncated",
                               "re-export or re-download the .tflite file")
    opcodes = model.OperatorCodesLength()
    for s_index in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s_index)
        tensors = subgraph.TensorsLength()
        for t in range(tensors):
            tensor = subgraph.Tensors(t)
            if tensor.Buffer() >= max(buffers, 1):
                raise KitError(f"tensor {t} names buffer {tensor.Buffer()} of {buffers}", "re-export the model")
            tensor.ShapeLength(), tensor.Name()
        for o in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(o)
            if operator.OpcodeIndex() >= opcodes:
                raise KitError(f"operator {o} names opcode {operator.OpcodeIndex()} of {opcodes}", "re-export the model")
            for index in list(operator.InputsAsNumpy() if operator.InputsLength() else []) + \
                    list(operator.OutputsAsNumpy() if operator.OutputsLength() else []):
                if index >= tensors:
                    raise KitError(f"operator {o} uses tensor {index} of {tensors}", "re-export the model")
    return model


def _reading(read):
    """Turn the many ways flatbuffers fails on a cut or corrupt file into one clear error."""
    @functools.wraps(read)
    def wrapper(model_bytes: bytes):
        try:
            return read(bytes(model_bytes))
        except KitError:
            raise
        except Exception as exc:
            raise KitError(f"the model flatbuffer is truncated or corrupt ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:80]})", "re-export or re-download the .tflite file") from None
    return wrapper


@_reading
def read_model(model_bytes: bytes) -> ModelInfo:
    model = _root(model_bytes)
    counts: dict[str, int] = {}
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            name = operator_name(model, subgraph.Operators(o).OpcodeIndex())
            counts[name] = counts.get(name, 0) + 1
    main = model.Subgraphs(0)
    return ModelInfo(
        operators=tuple(counts),
        operator_counts=counts,
        inputs=tuple(_tensor(main, main.Inputs(i)) for i in range(main.InputsLength())),
        outputs=tuple(_tensor(main, main.Outputs(i)) for i in range(main.OutputsLength())),
        subgraphs=model.SubgraphsLength(),
    )


@dataclass(frozen=True)
class Node:
    """One operator of the main subgraph, in execution order."""
    index: int
    op: str
    inputs: tuple
    outputs: tuple


@dataclass(frozen=True)
class Graph:
    nodes: tuple
    tensors: dict   # tensor index -> TensorInfo (numeric tensors only)


@_reading
def read_graph(model_bytes: bytes) -> Graph:
    model = _root(model_bytes)
    main = model.Subgraphs(0)
    tensors = {}
    for t in range(main.TensorsLength()):
        try:
            tensors[t] = _tensor(main, t)
        except KitError:
            pass  # string/resource tensors are not compared
    nodes = []
    for o in range(main.OperatorsLength()):
        operator = main.Operators(o)
        inputs = tuple(int(i) for i in operator.InputsAsNumpy()) if operator.InputsLength() else ()
        outputs = tuple(int(i) for i in operator.OutputsAsNumpy()) if operator.OutputsLength() else ()
        nodes.append(Node(o, operator_name(model, operator.OpcodeIndex()), inputs, outputs))
    return Graph(tuple(nodes), tensors)
