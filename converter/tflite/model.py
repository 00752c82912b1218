"""Read what the kit needs from a .tflite flatbuffer: operators and input/output tensors."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from ..errors import KitError

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


SCHEMA_VERSION = 3


def _root(model_bytes: bytes):
    """The flatbuffer root after structural checks, so no runtime sees a file that lies about itself."""
    if len(model_bytes) == 0:
        raise KitError("the model file is empty", "give a .tflite file written by the TFLite converter")
    if len(model_bytes) < 8 or not schema.Model.ModelBufferHasIdentifier(model_bytes, 0):
        raise KitError("the file is not a TFLite flatbuffer (no 'TFL3' identifier)", "give a .tflite file")
    model = schema.Model.GetRootAs(model_bytes, 0)
    version = model.Version()
    if version != SCHEMA_VERSION:
        raise KitError(f"the model has TFLite schema version {version}; TFLM reads version {SCHEMA_VERSION}",
                       "re-convert the model with a current TFLite converter")
    if model.SubgraphsLength() < 1:
        raise KitError("the model has no subgraph", "re-convert the model")
    buffers = model.BuffersLength()
    for b in range(buffers):
        buffer = model.Buffers(b)
        offset, size = buffer.Offset(), buffer.Size()
        if offset and offset + size > len(model_bytes):
            raise KitError(f"buffer {b} points past the end of the file (truncated?)", "re-export the model")
        data_field = buffer._tab.Offset(4)  # the 'data' vector; flatbuffers does not bound-check it
        if data_field:
            start = buffer._tab.Vector(data_field)
            if start + buffer._tab.VectorLen(data_field) > len(model_bytes):
                raise KitError(f"buffer {b} runs past the end of the file: the model is truncated",
                               "re-export or re-download the .tflite file")
    opcodes = model.OperatorCodesLength()
    for s_index in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s_index)
        tensors = subgraph.TensorsLength()
        for t in range(tensors):
            tensor = subgraph.Tensors(t)
            if tensor.Buffer() >= max(buffers, 1):
                raise KitError(f"tensor {t} names buffer {tensor.Buffer()} of {buffers}", "re-export the model")
            tensor.ShapeLength(), tensor.Name()
        for o in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(o)
            if operator.OpcodeIndex() >= opcodes:
                raise KitError(f"operator {o} names opcode {operator.OpcodeIndex()} of {opcodes}", "re-export the model")
            for index in list(operator.InputsAsNumpy() if operator.InputsLength() else []) + \
                    list(operator.OutputsAsNumpy() if operator.OutputsLength() else []):
                if index >= tensors:
                    raise KitError(f"operator {o} uses tensor {index} of {tensors}", "re-export the model")
    return model


def _reading(read):
    """Turn the many ways flatbuffers fails on a cut or corrupt file into one clear error."""
    @functools.wraps(read)
    def wrapper(model_bytes: bytes, *args, **kwargs):
        try:
            return read(bytes(model_bytes), *args, **kwargs)
        except KitError:
            raise
        except Exception as exc:
            raise KitError(f"the model flatbuffer is truncated or corrupt ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:80]})", "re-export or re-download the .tflite file") from None
    return wrapper


@_reading
def read_model(model_bytes: bytes) -> ModelInfo:
    model = _root(model_bytes)
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


@_reading
def read_graph(model_bytes: bytes) -> Graph:
    model = _root(model_bytes)
    main = model.Subgraphs(0)
    tensors = {}
    for t in range(main.TensorsLength()):
        try:
            tensors[t] = _tensor(main, t)
        except KitError:
            pass  # string/resource tensors are not compared
    nodes = []
    for o in range(main.OperatorsLength()):
        operator = main.Operators(o)
        inputs = tuple(int(i) for i in operator.InputsAsNumpy()) if operator.InputsLength() else ()
        outputs = tuple(int(i) for i in operator.OutputsAsNumpy()) if operator.OutputsLength() else ()
        nodes.append(Node(o, operator_name(model, operator.OpcodeIndex()), inputs, outputs))
    return Graph(tuple(nodes), tensors)


# What to use instead of operators TFLM has no kernel for: the fix of the error names them.
ALTERNATIVES = {
    "TOPK_V2": "ARG_MAX (for the top-1 class)",
    "LSTM": "UNIDIRECTIONAL_SEQUENCE_LSTM (a tf_keras LSTM layer converts to it)",
    "BIDIRECTIONAL_SEQUENCE_LSTM": "two UNIDIRECTIONAL_SEQUENCE_LSTM (one on the reversed sequence)",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "UNIDIRECTIONAL_SEQUENCE_LSTM or SVDF",
    "BIDIRECTIONAL_SEQUENCE_RNN": "UNIDIRECTIONAL_SEQUENCE_LSTM or SVDF",
    "RNN": "UNIDIRECTIONAL_SEQUENCE_LSTM or SVDF",
    "GELU": "HARD_SWISH, RELU, or x * LOGISTIC(1.702 x) (MUL and LOGISTIC)",
    "POW": "MUL, SQUARE or SQRT for a constant exponent",
    "CONV_3D": "CONV_2D (fold the extra axis into batch or channels)",
    "CONV_3D_TRANSPOSE": "TRANSPOSE_CONV",
    "SELECT": "SELECT_V2",
    "WHERE": "SELECT_V2",
    "TILE": "BROADCAST_TO or CONCATENATION",
    "ONE_HOT": "EQUAL against a constant range, or GATHER from an identity matrix",
    "RANGE": "a constant tensor (fix the shape when converting)",
    "RANK": "a constant (the rank is fixed when converting)",
    "REDUCE_PROD": "MUL", "REDUCE_ANY": "REDUCE_MAX on a cast, or LOGICAL_OR",
    "RELU_N1_TO_1": "MINIMUM and MAXIMUM, or TANH",
    "RELU_0_TO_1": "RELU and MINIMUM, or LOGISTIC",
    "LOCAL_RESPONSE_NORMALIZATION": "L2_NORMALIZATION, or BatchNormalization (folded into CONV_2D)",
    "NON_MAX_SUPPRESSION_V4": "the TFLite_Detection_PostProcess custom op",
    "NON_MAX_SUPPRESSION_V5": "the TFLite_Detection_PostProcess custom op",
    "EMBEDDING_LOOKUP_SPARSE": "EMBEDDING_LOOKUP",
    "SIGN": "a comparison (GREATER, LESS) and SELECT_V2",
    "MATRIX_DIAG": "MUL with a constant identity", "MATRIX_SET_DIAG": "MUL and ADD with constant masks",
    "SCATTER_ND": "DYNAMIC_UPDATE_SLICE or CONCATENATION",
    "UNSORTED_SEGMENT_SUM": "GATHER and SUM", "SEGMENT_SUM": "GATHER and SUM",
    "REVERSE_SEQUENCE": "REVERSE_V2",
    "FAKE_QUANT": "full-integer quantization (the converter folds quantize-aware training away)",
    "DENSIFY": "a dense model (convert without sparsity encoding)",
    "DELEGATE": "a model converted without a delegate",
}
# TFLM kernels that accept int64 activations (micro/kernels/*.cc that handle kTfLiteInt64).
INT64_OPS = frozenset({"BROADCAST_ARGS", "BROADCAST_TO", "EQUAL", "NOT_EQUAL", "GREATER", "GREATER_EQUAL", "LESS",
                       "LESS_EQUAL", "CONCATENATION", "CONV_2D", "DYNAMIC_UPDATE_SLICE", "FILL", "MAXIMUM",
                       "MINIMUM", "MIRROR_PAD", "PACK", "REVERSE_V2", "SLICE", "ZEROS_LIKE", "TFLM_DECODE"})
# Types no TFLM kernel and no MCU build handles.
UNSUPPORTED_TYPES = frozenset({"STRING", "FLOAT64", "COMPLEX64", "COMPLEX128", "UINT64", "VARIANT"})
_BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})  # float I/O around an int8 model (int8_io: false)


def _unsupported_ops_error(missing: list[str]) -> KitError:
    import difflib

    from ..tflm.ops import RESOLVER_METHODS

    fixes = []
    for op in missing:
        if op.startswith("Flex"):
            fixes.append(f"{op} is a TensorFlow (Flex) op: convert without SELECT_TF_OPS and use TFLite builtin ops")
        elif op in ALTERNATIVES:
            fixes.append(f"replace {op} with {ALTERNATIVES[op]}")
        else:
            close = difflib.get_close_matches(op, RESOLVER_METHODS, n=3, cutoff=0.6)
            fixes.append(f"replace {op} with " + (" or ".join(close) + " if that computes the same" if close else
                                                  "layers built from ops TFLM supports (converter/tflm_ops.py)"))
    return KitError(f"TFLM has no kernel for operator(s) {', '.join(missing)}", "; ".join(fixes))


@_reading
def check_deployable(model_bytes: bytes, require_int8: bool = False) -> None:
    """Refuse, naming the operator or tensor, what TFLM cannot run as an integer model on an MCU.

    require_int8: the model must be fully integer (the pipeline's output). Otherwise a model is held
    to that only when it has int8/int16 tensors at all, so a float model may still be validated
    but a hybrid (int8 weights, float activations) or a partly quantized model may not.
    """
    from ..tflm.ops import CUSTOM_METHODS, RESOLVER_METHODS

    model = _root(model_bytes)
    quantized = require_int8
    float_ops: dict[str, int] = {}
    missing: list[str] = []
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        types, constant = [], []
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            type_name = _TYPE_NAMES.get(tensor.Type(), f"TYPE_{tensor.Type()}")
            name = tensor.Name().decode(errors="replace")
            types.append(type_name)
            constant.append(model.Buffers(tensor.Buffer()).DataLength() > 0 if model.BuffersLength() else False)
            if type_name in UNSUPPORTED_TYPES or type_name.startswith("TYPE_"):
                raise KitError(f"tensor '{name}' has type {type_name}, which TFLM does not support",
                               "keep string/float64/complex processing outside the model; "
                               "the model must work on int8/int16/int32/float32 tensors")
            if type_name in ("INT8", "INT16") and tensor.Quantization() is not None \
                    and tensor.Quantization().ScaleLength():
                quantized = True
            shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else ()
            signature = tensor.ShapeSignatureAsNumpy() if tensor.ShapeSignatureLength() else ()
            # A -1 batch in the signature is what every Keras conversion writes; TFLM runs batch 1.
            if any(int(d) < 0 for d in shape) or any(int(d) < 0 for d in list(signature)[1:]):
                raise KitError(f"tensor '{name}' has dynamic (unknown) dimensions: shape signature "
                               f"{[int(d) for d in (signature if len(signature) else shape)]}",
                               "TFLM needs static shapes: give every non-batch dimension a fixed size "
                               "(e.g. Input((49, 10, 1))) and re-convert")
        for o in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(o)
            op = operator_name(model, operator.OpcodeIndex())
            if op not in RESOLVER_METHODS and op not in CUSTOM_METHODS:
                if op not in missing:
                    missing.append(op)
                continue
            indices = [int(i) for i in (operator.InputsAsNumpy() if operator.InputsLength() else [])] + \
                      [int(i) for i in (operator.OutputsAsNumpy() if operator.OutputsLength() else [])]
            indices = [i for i in indices if i >= 0]  # -1 marks an omitted optional input
            for i in indices:
                if types[i] == "INT64" and not constant[i] and op not in INT64_OPS:
                    tensor_name = subgraph.Tensors(i).Name().decode(errors="replace")
                    raise KitError(f"tensor '{tensor_name}' of operator {op} is INT64, which TFLM's {op} kernel "
                                   "does not support", "produce int32 instead (e.g. tf.argmax(..., "
                                   "output_type=tf.int32), or a tf.cast to int32 before the op)")
            if op in CUSTOM_METHODS or op in _BOUNDARY_OPS:
                continue
            if any(types[i] in ("FLOAT32", "FLOAT16") for i in indices):
                float_ops[op] = float_ops.get(op, 0) + 1
    if missing:
        raise _unsupported_ops_error(missing)
    if quantized and float_ops:
        listed = ", ".join(f"{op} ({n})" for op, n in float_ops.items())
        raise KitError(f"float operators left in an int8 model: {listed}",
                       "quantize fully to int8 (a representative dataset and TFLITE_BUILTINS_INT8 only, "
                       "no dynamic-range/hybrid quantization) or replace the layers that stayed float")
