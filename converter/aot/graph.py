"""The model as the AOT generator sees it: typed tensors and operators of the main subgraph, read with
the kit's one flatbuffer reader, and the check that every operator and type is one the AOT kernels
implement bit-exactly (anything else is refused with the way out: the `tflm` runtime)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import KitError
from ..tflite.schema import DECODE_OP
from ..tflite.tflite_model import TfliteModel

WAY_OUT = "set `runtime: tflm` in the recipe (TFLM's interpreter runs every operator the kit converts)"
ELEMENT_BYTES = {"INT8": 1, "INT32": 4, "INT16": 2, "FLOAT32": 4, "UINT8": 1, "INT64": 8, "BOOL": 1}


class NotCompilable(KitError):
    """The model has an operator or type the AOT runtime does not implement."""


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    type: str                       # schema name: INT8, INT4, INT32, ...
    shape: tuple
    scales: tuple = ()              # one per tensor, or one per channel
    zero_points: tuple = ()
    data: bytes | None = None       # constants only
    axis: int = 0                   # the quantized dimension (per-channel quantization)
    decoded: bool = False           # a TFLM_DECODE output: constant values the generated code decodes into the buffer

    @property
    def scale(self) -> float:
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0] if self.zero_points else 0

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        if self.type == "INT4":
            return (self.elements + 1) // 2
        return self.elements * ELEMENT_BYTES.get(self.type, 1)

    @property
    def constant(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class Operator:
    index: int
    kind: str
    inputs: tuple                   # tensor indices; -1 for an omitted optional input
    outputs: tuple
    options: Any = None             # the schema's builtin options object (read only)


@dataclass(frozen=True)
class AotGraph:
    tensors: dict                   # index -> Tensor
    operators: tuple
    inputs: tuple
    outputs: tuple
    extra: dict = field(default_factory=dict)

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]


def _tensor(model: TfliteModel, index: int, tensor) -> Tensor:
    quant = tensor.quantization
    scales = tuple(float(s) for s in quant.scale) if quant is not None and quant.scale is not None else ()
    zeros = tuple(int(z) for z in quant.zeroPoint) if quant is not None and quant.zeroPoint is not None else ()
    axis = int(quant.quantizedDimension or 0) if quant is not None else 0
    return Tensor(index, model.tensor_name(tensor), model.tensor_type(tensor), model.shape(tensor),
                  scales, zeros, model.data(tensor), axis)


def read_graph(model_bytes: bytes) -> AotGraph:
    """The main subgraph, typed. Refuses models with several subgraphs (control flow)."""
    model = TfliteModel.from_bytes(model_bytes)
    if len(model.subgraphs) != 1:
        raise NotCompilable(f"the model has {len(model.subgraphs)} subgraphs (control flow), which the AOT "
                            "runtime does not compile", WAY_OUT, code="aot-unsupported")
    tensors = {i: _tensor(model, i, t) for i, t in enumerate(model.tensors)}
    operators = tuple(Operator(i, model.operator_name(op), tuple(int(t) for t in op.inputs),
                               tuple(int(t) for t in op.outputs), op.builtinOptions)
                      for i, op in enumerate(model.operators))
    for op in operators:   # decode.py writes these into the buffer before their consumer runs
        if op.kind == DECODE_OP:
            tensors.update({t: replace(tensors[t], decoded=True) for t in op.outputs})
    subgraph = model.subgraph
    return AotGraph(tensors, operators, tuple(int(t) for t in subgraph.inputs),
                    tuple(int(t) for t in subgraph.outputs))


def refuse(operator: Operator, graph: AotGraph, why: str) -> NotCompilable:
    """The one-line refusal naming the operator, its types and the way out."""
    types = "/".join(graph.tensor(t).type.lower() for t in operator.inputs if t >= 0)
    return NotCompilable(f"operator {operator.index} {operator.kind} ({types}) is outside the AOT runtime's "
                         f"operator set: {why}", WAY_OUT, code="aot-unsupported")
