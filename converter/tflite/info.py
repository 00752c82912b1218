"""What the kit needs to know about a model, as typed records: its operators, inputs and outputs
(ModelInfo, TensorInfo) and its main subgraph as a graph of nodes (Graph, Node)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import KitError
from .schema import NUMPY_TYPES
from .tflite_model import TfliteModel
from .verify import reading


def sample_shape_of(shape) -> tuple:
    """One sample's shape: the tensor's less its leading batch dimension of 1. A tensor whose first
    dimension is not 1 has no batch dimension (TFLM's own test models feed rank-1 ADD/SUB operands of
    shape (8,)): the whole tensor is one sample, and samples are read along a new leading axis."""
    return tuple(shape[1:]) if len(shape) and shape[0] == 1 else tuple(shape)


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

    @property
    def sample_shape(self) -> tuple:
        return sample_shape_of(self.shape)

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


def tensor_info(model: TfliteModel, index: int, subgraph: int = 0) -> TensorInfo:
    tensor = model.subgraphs[subgraph].tensors[index]
    quant = tensor.quantization
    scale = zero_point = None
    if quant is not None and quant.scale is not None and len(quant.scale) == 1:
        zeros = quant.zeroPoint
        scale, zero_point = float(quant.scale[0]), int(zeros[0]) if zeros is not None and len(zeros) else 0
    type_name, name = model.tensor_type(tensor), model.tensor_name(tensor)
    if type_name not in NUMPY_TYPES:
        raise KitError(f"model input/output '{name}' has type {type_name}, which the kit cannot feed",
                       "convert the model with numeric input/output tensors")
    return TensorInfo(name, type_name, model.shape(tensor), scale, zero_point)


def _indices(values) -> tuple:
    return tuple(int(i) for i in values) if values is not None else ()


def model_info(model: TfliteModel) -> ModelInfo:
    counts: dict[str, int] = {}
    for subgraph in model.subgraphs:
        for operator in subgraph.operators or []:
            name = model.operator_name(operator)
            counts[name] = counts.get(name, 0) + 1
    main = model.subgraph
    return ModelInfo(
        operators=tuple(counts),
        operator_counts=counts,
        inputs=tuple(tensor_info(model, i) for i in _indices(main.inputs)),
        outputs=tuple(tensor_info(model, i) for i in _indices(main.outputs)),
        subgraphs=len(model.subgraphs),
    )


def model_graph(model: TfliteModel) -> Graph:
    tensors = {}
    for t in range(len(model.tensors)):
        try:
            tensors[t] = tensor_info(model, t)
        except KitError:
            pass  # string/resource tensors are not compared
    nodes = tuple(Node(o, model.operator_name(op), _indices(op.inputs), _indices(op.outputs))
                  for o, op in enumerate(model.operators))
    return Graph(nodes, tensors)


@reading
def read_model(model_bytes: bytes) -> ModelInfo:
    return model_info(TfliteModel.from_bytes(model_bytes))


@reading
def read_graph(model_bytes: bytes) -> Graph:
    return model_graph(TfliteModel.from_bytes(model_bytes))
