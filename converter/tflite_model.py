"""Read what the kit needs from a .tflite flatbuffer: operators and input/output tensors."""
from __future__ import annotations

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


def read_model(model_bytes: bytes) -> ModelInfo:
    if len(model_bytes) < 8 or not schema.Model.ModelBufferHasIdentifier(model_bytes, 0):
        raise KitError("the file is not a TFLite flatbuffer (no 'TFL3' identifier)", "give a .tflite file")
    model = schema.Model.GetRootAs(model_bytes, 0)
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
