"""Refuse a model whose TFLM outputs are not a function of its inputs, whatever the operator.

Two symptoms of one class (found with a dilated Conv1D: the converter's SPACE_TO_BATCH_ND writes a
static batch of 1 where it produces 2, TFLM trusts the flatbuffer, and BATCH_TO_SPACE_ND then reads
past its input, so other memory lands in the outputs; the host happened to agree with itself while
a Cortex-M4 failed every vector):

- shapes: a tensor whose shape after LiteRT's allocation (LiteRT resizes every tensor from its
  operator's inputs) differs from the flatbuffer's, which TFLM uses as is. The first such tensor's
  producer is the operator named.
- memory: TFLM's outputs change when the same inputs run with the tensors placed otherwise in the
  arena (another arena size, or every tensor in its own place: kPreserveAllTensors). The Python
  runtime allocates its arena itself, so placement is what can be varied; both placements of the
  preserving runs keep intermediates, which names the first operator whose output moved.

Every flow that runs a model through TFLM for the user (convert and so optimize trials, validate,
golden record) calls `check_consistent` in its deployability phase, before anything is written.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import KitError
from ..system.native_output import captured_fds
from ..tflite.model import Graph, read_graph
from .runners import default_arena, run_model

# Arena sizes added to the default for the re-placed runs: large and not a multiple of a page, so
# the buffer lands elsewhere and TFLM's tail (persistent) allocations move.
_OTHER_ARENA = (1 << 20) + 48


@dataclass(frozen=True)
class ShapeMismatch:
    node: int
    op: str
    index: int
    tensor: str
    flatbuffer: tuple
    litert: tuple

    def __str__(self) -> str:
        return f"'{self.tensor}' {self.flatbuffer} (LiteRT: {self.litert})"


@dataclass(frozen=True)
class MemoryDependence:
    placements: tuple[str, str]   # the two placements whose outputs differ
    node: int | None              # first operator whose output moved, when the preserving runs show it
    op: str | None
    tensors: tuple[str, ...]      # its input and output tensors


def litert_shapes(model_bytes: bytes) -> dict[int, tuple] | None:
    """Tensor index -> shape after LiteRT (reference kernels) allocates the model; None when LiteRT
    refuses it (its own refusal is reported where it runs the model)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with captured_fds(2):
        try:
            interpreter = Interpreter(model_content=model_bytes, num_threads=1,
                                      experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                                      experimental_preserve_all_tensors=True)
            interpreter.allocate_tensors()
            details = interpreter.get_tensor_details()
        except (RuntimeError, ValueError):
            return None
    return {int(d["index"]): tuple(int(s) for s in d["shape"]) for d in details}


def _significant(shape) -> tuple:
    """The dimensions that change the layout: (1, 10) and (10,) hold the same values the same way."""
    return tuple(int(d) for d in shape if int(d) != 1)


def shape_mismatches(model_bytes: bytes, graph: Graph | None = None) -> list[ShapeMismatch]:
    """Every operator output whose LiteRT shape differs from the flatbuffer's, in execution order."""
    graph = graph or read_graph(model_bytes)
    shapes = litert_shapes(model_bytes)
    if shapes is None:
        return []
    found = []
    for node in graph.nodes:
        for t in node.outputs:
            if t in graph.tensors and t in shapes and _significant(graph.tensors[t].shape) != _significant(shapes[t]):
                found.append(ShapeMismatch(node.index, node.op, t, graph.tensors[t].name,
                                           tuple(graph.tensors[t].shape), shapes[t]))
    return found


def _tensor_names(graph: Graph, node) -> tuple[str, ...]:
    return tuple(graph.tensors[t].name for t in (*node.inputs, *node.outputs) if t in graph.tensors)


def _first_moved(graph: Graph, a: list[dict], b: list[dict]):
    for node in graph.nodes:
        for t in node.outputs:
            if any(t in x and t in y and not np.array_equal(x[t], y[t]) for x, y in zip(a, b)):
                return node
    return None


def memory_dependence(model_bytes: bytes, inputs: list[np.ndarray]) -> MemoryDependence | None:
    """TFLM on the same inputs under four placements; the first pair whose outputs differ, or None."""
    graph = read_graph(model_bytes)
    other = default_arena(model_bytes, graph) + _OTHER_ARENA
    runs = {
        "the default arena": run_model(model_bytes, inputs, "tflm"),
        f"a {other:,}-byte arena": run_model(model_bytes, inputs, "tflm", arena_size=other),
        "every tensor in its own place": run_model(model_bytes, inputs, "tflm", keep_tensors=True),
        f"every tensor in its own place in a {other:,}-byte arena":
            run_model(model_bytes, inputs, "tflm", keep_tensors=True, arena_size=other),
    }
    names = list(runs)
    first = runs[names[0]]
    for name in names[1:]:
        if any(not np.array_equal(x, y) for x, y in zip(first.outputs, runs[name].outputs)):
            node = _first_moved(graph, runs[names[2]].tensors or [], runs[names[3]].tensors or [])
            return MemoryDependence((names[0], name), None if node is None else node.index,
                                    None if node is None else node.op,
                                    () if node is None else _tensor_names(graph, node))
    return None


def check_consistent(model_bytes: bytes, inputs: list[np.ndarray], litert_bytes: bytes | None = None) -> None:
    """Refuse (KitError, exit 2) a model whose TFLM outputs depend on more than its inputs.

    litert_bytes: the model LiteRT can load (before TFLM_DECODE compression) when it differs."""
    graph = read_graph(litert_bytes or model_bytes)
    mismatches = shape_mismatches(litert_bytes or model_bytes, graph)
    if mismatches:
        first, reader = mismatches[0], _reader(graph, mismatches)
        span = f"{first.op} (operator {first.node})" + \
            (f" to {reader.op} (operator {reader.index})" if reader is not None else "")
        raise KitError(
            f"TFLM and LiteRT disagree on tensor shapes from {span}: flatbuffer shape (which TFLM uses) of "
            f"{', '.join(str(m) for m in mismatches)}; TFLM would compute on part of the data and "
            f"{reader.op + ' reads' if reader is not None else 'later operators read'} memory outside its input",
            _shape_fix(first.op if reader is None else f"{first.op}/{reader.op}"), code="runtime-shape-mismatch")
    moved = memory_dependence(model_bytes, inputs)
    if moved is not None:
        where = "" if moved.op is None else \
            f", first at {moved.op} (operator {moved.node}; tensors {', '.join(repr(t) for t in moved.tensors)})"
        raise KitError(
            f"TFLM's outputs depend on memory outside the computation: the same inputs give other outputs with "
            f"{moved.placements[0]} than with {moved.placements[1]}{where}",
            "the model reads memory it never wrote (a wrong static shape, or an operator TFLM sizes wrongly): "
            "re-convert it without that operator; a device would give other outputs again",
            code="memory-dependent-output")


def _reader(graph: Graph, mismatches: list[ShapeMismatch]):
    """The first operator that reads a mis-shaped tensor and writes only well-shaped ones: where the
    wrong sizes turn into reads of other memory."""
    wrong = {m.index for m in mismatches}
    return next((node for node in graph.nodes if wrong & set(node.inputs) and not wrong & set(node.outputs)), None)


def _shape_fix(ops: str) -> str:
    if "SPACE_TO_BATCH_ND" in ops or "BATCH_TO_SPACE_ND" in ops:
        return ("a dilated convolution lowered to SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND: `tflm-kit convert` folds the "
                "chain into one dilated CONV_2D/DEPTHWISE_CONV_2D when it is provably equal (convert this model "
                "with it); otherwise use dilation_rate=1 or stride the layer instead")
    return (f"re-convert the model so that {ops} writes the shape it produces (fixed input shapes, batch 1), "
            "or replace the layer")
