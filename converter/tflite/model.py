"""The flatbuffer package's front door: the names the other layers use, whichever file of tflite/ holds them.

Kept on purpose (issue 22 item 4): 45 modules of the kit, the tests and the other branches' new code
import the reader through here, so tflite/'s files can be split or merged without touching them. Code
inside tflite/ imports the defining file. The reader and editor is tflite_model.TfliteModel; the typed
summaries (read_model, read_graph, ModelInfo, TensorInfo, Graph, Node) are in info.py, structural checks
in verify.py, schema tables in schema.py, metadata stripping in strip.py. The deployability check is
TFLM policy: converter/tflm/deployable.py.
"""
from __future__ import annotations

from .info import Graph, ModelInfo, Node, TensorInfo, read_graph, read_model  # noqa: F401
from .schema import NUMPY_TYPES, SCHEMA_VERSION, TFLITE_TYPE_ENUM  # noqa: F401
from .tflite_model import TfliteModel  # noqa: F401
