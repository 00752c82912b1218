"""Split a model at a cut and prove the parts compose to the whole, bit for bit, on TFLM.

The whole model's tensors at the cut are read by running the whole model with the cut tensors
added as outputs (same kernels, same arena planning of the operators before the cut), not by
running part 0: part 0's outputs must equal them, and part 1 fed with them must give the
whole model's outputs, byte for byte, on every golden vector.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import KitError
from ..tflite.model import read_model
from ..tflm.deployable import check_deployable
from ..tflm.runners import run_tflm
from .extract import extract, graph_view, with_extra_outputs
from .graph import Cut, GraphView


@dataclass(frozen=True)
class Split:
    cut: Cut
    head: bytes             # part 0 .tflite
    tail: bytes             # part 1 .tflite
    at_cut: list            # the whole model's cut tensors, (N, ...) per tensor
    head_outputs: list      # part 0's outputs on TFLM
    tail_outputs: list      # part 1's outputs on TFLM, fed with at_cut

    @property
    def link_bytes(self) -> int:
        return sum(int(np.prod(x.shape[1:])) * x.dtype.itemsize for x in self.at_cut)


def check_int8(model_bytes: bytes) -> None:
    """Only fully integer models split bit-exactly with quantization kept at the interface."""
    check_deployable(model_bytes, require_int8=True)
    info = read_model(model_bytes)
    floats = [t.name for t in info.inputs + info.outputs if t.type.startswith("FLOAT")]
    if floats:
        raise KitError(f"the model is not fully int8: its input/output '{floats[0][:60]}' is float",
                       "convert with int8 input and output (quantize: {int8_io: true}) before partitioning")


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a, b))


def split(model_bytes: bytes, view: GraphView, cut: Cut, inputs: list, golden: list) -> Split:
    head = extract(model_bytes, cut.head, view.inputs, cut.tensors)
    tail = extract(model_bytes, cut.tail, cut.tensors, view.outputs)
    widened = with_extra_outputs(model_bytes, view, cut.tensors)
    whole = run_tflm(widened, inputs)
    at_cut = whole[len(view.outputs):]
    if not _same(whole[:len(view.outputs)], golden):
        raise KitError("the whole model with the cut tensors as extra outputs gives different outputs",
                       "report this with the model: the kit's flatbuffer editing changed the computation")
    head_outputs = run_tflm(head, inputs)
    tail_outputs = run_tflm(tail, at_cut)
    return Split(cut, head, tail, at_cut, head_outputs, tail_outputs)


def verify(result: Split, golden: list) -> None:
    """KitError unless part 0 reproduces the cut tensors and part 1 the model's outputs exactly."""
    for what, got, want in (("part 0's outputs vs the whole model's tensors at the cut", result.head_outputs,
                             result.at_cut), ("part 1's outputs vs the whole model's", result.tail_outputs, golden)):
        if not _same(got, want):
            vector = next(v for v in range(len(want[0]))
                          if any(g[v].tobytes() != w[v].tobytes() for g, w in zip(got, want)))
            raise KitError(f"the split at {result.cut.key} is not bit-exact on TFLM: {what} differ on vector {vector}",
                           "report this with the model; choose another --cut meanwhile")


def load(model_bytes: bytes) -> GraphView:
    check_int8(model_bytes)
    subgraphs = read_model(model_bytes).subgraphs
    if subgraphs > 1:  # IF/WHILE/CALL_ONCE bodies would have to follow their operator into a part
        raise KitError(f"the model has {subgraphs} subgraphs (control flow); the partitioner cuts single-graph models",
                       "convert without control flow (unrolled loops, no tf.cond), or run it whole on one device")
    return graph_view(model_bytes)
