"""Locate where runtimes part ways: the first operator whose output differs from TFLM's.

Both runtimes keep every intermediate tensor (TFLM's kPreserveAllTensors, LiteRT's
experimental_preserve_all_tensors). Before the first differing operator all tensors are
equal, so that operator's kernel is the cause; later differences are consequences.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..tflite.model import Graph
from ..tflm.runners import run_model
from .outputs import differing

# LiteRT runtimes with per-tensor access. XNNPACK (LiteRT's default delegate) fuses
# operators and hides intermediates, so the optimized kernels are inspected without it.
LITERT_KERNELS = {"litert_reference": "BUILTIN_REF", "litert_optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES"}
INSPECTED_RUNTIME = {"litert_reference": "litert_reference", "litert_optimized": "litert_optimized_inspectable"}
_RUNTIME_OF_KERNELS = {"BUILTIN_REF": "litert_reference", "BUILTIN_WITHOUT_DEFAULT_DELEGATES": "litert_optimized_inspectable"}


def tflm_tensors(model_bytes: bytes, inputs: list[np.ndarray]) -> list[dict[int, np.ndarray]]:
    return run_model(model_bytes, inputs, "tflm", keep_tensors=True).tensors


def litert_tensors(model_bytes: bytes, inputs: list[np.ndarray], kernels: str) -> list[dict[int, np.ndarray]]:
    return run_model(model_bytes, inputs, _RUNTIME_OF_KERNELS[kernels], keep_tensors=True).tensors


def first_divergence(graph: Graph, golden: dict[int, np.ndarray], other: dict[int, np.ndarray]):
    """(node, signed differences other - golden) at the first differing node, or None."""
    for node in graph.nodes:
        for t in node.outputs:
            if t not in golden:
                continue
            a, b = golden[t].reshape(1, -1), other[t].reshape(1, -1)
            if differing(a, b).any():
                return node, (b.astype(np.int64) - a.astype(np.int64)).reshape(-1)
    return None


def compare_pair(graph: Graph, golden: list[dict], other: list[dict], kernels: str) -> dict:
    """One LiteRT kernel set against TFLM: per vector the first differing node, per operator type the totals."""
    per_vector: list = []
    per_op: dict = {}
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
        operators[op] = {"nodes": op_vectors[op], "vectors_compared": len(golden), **entry,
                         "histogram": {str(k): v for k, v in sorted(entry["histogram"].items())}}
    return {
        "kernels": kernels,
        "vectors": len(golden),
        "vectors_differing": sum(x is not None for x in per_vector),
        "operators": operators,
        "first_divergences": [x for x in per_vector if x is not None],
    }
