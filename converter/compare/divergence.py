"""Locate where runtimes part ways: the first operator whose output differs from TFLM's.

Both runtimes keep every intermediate tensor (TFLM's kPreserveAllTensors, LiteRT's
experimental_preserve_all_tensors). Before the first differing operator all tensors are
equal, so that operator's kernel is the cause; later differences are consequences.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..system.native_output import captured_fds
from ..tflite.model import Graph

# LiteRT runtimes with per-tensor access. XNNPACK (LiteRT's default delegate) fuses
# operators and hides intermediates, so the optimized kernels are inspected without it.
LITERT_KERNELS = {"litert_reference": "BUILTIN_REF", "litert_optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES"}


def tflm_tensors(model_bytes: bytes, graph: Graph, inputs: list[np.ndarray]) -> list[dict[int, np.ndarray]]:
    from tflite_micro.python.tflite_micro import runtime

    wanted = [t for node in graph.nodes for t in node.outputs if t in graph.tensors]
    results = []
    with captured_fds(2):
        interpreter = runtime.Interpreter.from_bytes(
            model_bytes, arena_size=max(4 << 20, 20 * len(model_bytes)),
            intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
        for v in range(len(inputs[0])):
            for i, x in enumerate(inputs):
                interpreter.set_input(x[v:v + 1], i)
            interpreter.invoke()
            results.append({t: np.array(interpreter.GetTensor(t, 0)["tensor_data"]) for t in wanted})
    return results


def litert_tensors(model_bytes: bytes, graph: Graph, inputs: list[np.ndarray], kernels: str) -> list[dict[int, np.ndarray]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    wanted = [t for node in graph.nodes for t in node.outputs if t in graph.tensors]
    with captured_fds(2):
        interpreter = Interpreter(model_content=model_bytes, num_threads=1, experimental_preserve_all_tensors=True,
                                  experimental_op_resolver_type=getattr(OpResolverType, kernels))
        interpreter.allocate_tensors()
    input_indices = [d["index"] for d in interpreter.get_input_details()]
    results = []
    for v in range(len(inputs[0])):
        for index, x in zip(input_indices, inputs):
            interpreter.set_tensor(index, x[v:v + 1])
        interpreter.invoke()
        results.append({t: np.array(interpreter.get_tensor(t)) for t in wanted})
    return results


def first_divergence(graph: Graph, golden: dict[int, np.ndarray], other: dict[int, np.ndarray]):
    """(node, signed differences other - golden) at the first differing node, or None."""
    for node in graph.nodes:
        for t in node.outputs:
            if t not in golden:
                continue
            a, b = golden[t].reshape(-1), other[t].reshape(-1)
            if a.tobytes() != b.tobytes():
                return node, b.astype(np.int64) - a.astype(np.int64)
    return None


def compare_runtimes(model_bytes: bytes, graph: Graph, inputs: list[np.ndarray]) -> dict:
    """Per LiteRT kernel set: per vector the first differing node, and per operator type the totals."""
    golden = tflm_tensors(model_bytes, graph, inputs)
    report = {}
    for pair_name, kernels in LITERT_KERNELS.items():
        other = litert_tensors(model_bytes, graph, inputs, kernels)
        per_vector, per_op = [], {}
        op_vectors = Counter(node.op for node in graph.nodes)
        for v, (g, o) in enumerate(zip(golden, other)):
            found = first_divergence(graph, g, o)
            if found is None:
                per_vector.append(None)
                continue
            node, difference = found
            per_vector.append({"vector": v, "node": node.index, "op": node.op,
                               "elements": int(np.count_nonzero(difference)), "max_lsb": int(np.abs(difference).max())})
            entry = per_op.setdefault(node.op, {"vectors_first_differing": 0, "elements_differing": 0,
                                                "max_lsb": 0, "histogram": Counter()})
            entry["vectors_first_differing"] += 1
            entry["elements_differing"] += int(np.count_nonzero(difference))
            entry["max_lsb"] = max(entry["max_lsb"], int(np.abs(difference).max()))
            entry["histogram"].update(int(d) for d in difference[difference != 0])
        operators = {}
        for op in op_vectors:
            entry = per_op.get(op, {"vectors_first_differing": 0, "elements_differing": 0, "max_lsb": 0,
                                    "histogram": Counter()})
            operators[op] = {"nodes": op_vectors[op], "vectors_compared": len(inputs[0]), **entry,
                             "histogram": {str(k): v for k, v in sorted(entry["histogram"].items())}}
        report[pair_name] = {
            "kernels": kernels,
            "vectors": len(inputs[0]),
            "vectors_differing": sum(x is not None for x in per_vector),
            "operators": operators,
            "first_divergences": [x for x in per_vector if x is not None],
        }
    return report
