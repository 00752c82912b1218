"""Names and numbers of the TFLite schema the kit works with (one table each, shared by every reader)."""
from __future__ import annotations

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

BUILTIN_NAMES = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
TYPE_NAMES = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
# Values of TfLiteType (tensorflow/lite/core/c/c_api_types.h), which firmware compares against.
TFLITE_TYPE_ENUM = {"FLOAT32": 1, "INT32": 2, "UINT8": 3, "INT64": 4, "BOOL": 6, "INT16": 7, "INT8": 9, "FLOAT16": 10}
NUMPY_TYPES = {"FLOAT32": np.float32, "INT32": np.int32, "UINT8": np.uint8, "INT64": np.int64, "BOOL": np.bool_,
               "INT16": np.int16, "INT8": np.int8, "FLOAT16": np.float16}
SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"
DECODE_OP = "TFLM_DECODE"  # TFLM's custom operator that expands compressed tensors


def type_name(code: int) -> str:
    return TYPE_NAMES.get(code, f"TYPE_{code}")


def opcode_name(builtin_code: int, deprecated_code: int, custom_code) -> str:
    """The operator's name: builtin enum name, or the custom code for CUSTOM operators."""
    # Builtin codes above 127 live in builtin_code; the deprecated byte field caps at 127.
    code = max(builtin_code, deprecated_code)
    if code == schema.BuiltinOperator.CUSTOM:
        return bytes(custom_code or b"").decode(errors="replace")
    return BUILTIN_NAMES.get(code, f"BUILTIN_{code}")
