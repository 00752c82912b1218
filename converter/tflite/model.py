"""Compatibility names for callers written before the split of this module.

The reader and editor is tflite_model.TfliteModel; the typed summaries (read_model, read_graph,
ModelInfo, TensorInfo, Graph, Node) are in info.py, structural checks in verify.py, schema tables
in schema.py, metadata stripping in strip.py. The deployability check is TFLM policy and lives in
converter/tflm/deployable.py; `check_deployable` stays importable from here (loaded on first use,
so this module imports nothing above the tflite layer at import time) until every caller imports
it from there.
"""
from __future__ import annotations

from .info import Graph, ModelInfo, Node, TensorInfo, read_graph, read_model  # noqa: F401
from .schema import NUMPY_TYPES, SCHEMA_VERSION, TFLITE_TYPE_ENUM  # noqa: F401
from .tflite_model import TfliteModel  # noqa: F401


def __getattr__(name: str):
    if name == "check_deployable":
        from ..tflm.deployable import check_deployable

        return check_deployable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
