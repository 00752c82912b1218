"""The one deployability check: what TFLM cannot run as an integer model on an MCU, refused with
the operator or tensor named and an alternative suggested. Its tables (operators TFLM has no
kernel for and what to use instead, kernels that take int64, types no kernel handles) sit beside
the resolver tables of ops.py, since both describe TFLM at the pinned commit."""
from __future__ import annotations

import difflib

from ..errors import KitError
from ..tflite.tflite_model import TfliteModel
from ..tflite.shapes import check_declared_shapes
from ..tflite.verify import reading
from .ops import CUSTOM_METHODS, RESOLVER_METHODS

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
_INTEGER_TYPES = ("INT8", "INT16", "INT4")


def _unsupported_ops_error(missing: list[str]) -> KitError:
    fixes = []
    for op in missing:
        if op.startswith("Flex"):
            fixes.append(f"{op} is a TensorFlow (Flex) op: convert without SELECT_TF_OPS and use TFLite builtin ops")
        elif op in ALTERNATIVES:
            fixes.append(f"replace {op} with {ALTERNATIVES[op]}")
        else:
            close = difflib.get_close_matches(op, RESOLVER_METHODS, n=3, cutoff=0.6)
            fixes.append(f"replace {op} with " + (" or ".join(close) + " if that computes the same" if close else
                                                  "layers built from ops TFLM supports (converter/tflm/ops.py)"))
    return KitError(f"TFLM has no kernel for operator(s) {', '.join(missing)}", "; ".join(fixes))


def _check_tensor(model: TfliteModel, tensor) -> None:
    type_name, name = model.tensor_type(tensor), model.tensor_name(tensor)
    if type_name in UNSUPPORTED_TYPES or type_name.startswith("TYPE_"):
        raise KitError(f"tensor '{name}' has type {type_name}, which TFLM does not support",
                       "keep string/float64/complex processing outside the model; "
                       "the model must work on int8/int16/int32/float32 tensors", code="unsupported-tensor-type")
    shape = [int(d) for d in tensor.shape] if tensor.shape is not None else []
    signature = [int(d) for d in tensor.shapeSignature] if tensor.shapeSignature is not None else []
    # A -1 batch in the signature is what every Keras conversion writes; TFLM runs batch 1.
    if any(d < 0 for d in shape) or any(d < 0 for d in signature[1:]):
        raise KitError(f"tensor '{name}' has dynamic (unknown) dimensions: shape signature "
                       f"{signature if signature else shape}",
                       "TFLM needs static shapes: give every non-batch dimension a fixed size "
                       "(e.g. Input((49, 10, 1))) and re-convert", code="dynamic-shape")


# Multiply-accumulates per inference (runners.estimated_macs, from the declared shapes): the MLPerf Tiny models
# need 0.3-20 million; a billion is minutes per inference on a microcontroller, and a runaway run here.
MAC_LIMIT = 1_000_000_000


def _check_work(model_bytes: bytes) -> None:
    from ..tflite.model import read_graph
    from .runners import estimated_macs

    macs = estimated_macs(read_graph(model_bytes))
    if macs > MAC_LIMIT:
        raise KitError(f"the model declares {macs:,} multiply-accumulates per inference, over the {MAC_LIMIT:,} "
                       "a microcontroller model can need", "re-export the model (an edited or corrupted file "
                       "declares shapes far larger than its own)", code="too-much-work")


def _is_quantized(model: TfliteModel, tensor) -> bool:
    quant = tensor.quantization
    return model.tensor_type(tensor) in _INTEGER_TYPES and quant is not None and quant.scale is not None \
        and len(quant.scale) > 0


@reading
def check_deployable(model_bytes: bytes, require_int8: bool = False) -> None:
    """Refuse, naming the operator or tensor, what TFLM cannot run as an integer model on an MCU.

    require_int8: the model must be fully integer (the pipeline's output). Otherwise a model is held
    to that only when it has int8/int16 tensors at all, so a float model may still be validated
    but a hybrid (int8 weights, float activations) or a partly quantized model may not.
    """
    model = TfliteModel.from_bytes(model_bytes)
    quantized = require_int8
    float_ops: dict[str, int] = {}
    missing: list[str] = []
    for subgraph in model.subgraphs:
        tensors = subgraph.tensors or []
        for tensor in tensors:
            _check_tensor(model, tensor)
            quantized = quantized or _is_quantized(model, tensor)
        types = [model.tensor_type(t) for t in tensors]
        for operator in subgraph.operators or []:
            op = model.operator_name(operator)
            if op not in RESOLVER_METHODS and op not in CUSTOM_METHODS:
                if op not in missing:
                    missing.append(op)
                continue
            indices = [int(i) for i in (operator.inputs if operator.inputs is not None else [])] + \
                      [int(i) for i in (operator.outputs if operator.outputs is not None else [])]
            indices = [i for i in indices if i >= 0]  # -1 marks an omitted optional input
            for i in indices:
                if types[i] == "INT64" and model.data(tensors[i]) is None and op not in INT64_OPS:
                    raise KitError(f"tensor '{model.tensor_name(tensors[i])}' of operator {op} is INT64, which "
                                   f"TFLM's {op} kernel does not support", "produce int32 instead (e.g. "
                                   "tf.argmax(..., output_type=tf.int32), or a tf.cast to int32 before the op)")
            if op in CUSTOM_METHODS or op in _BOUNDARY_OPS:
                continue
            if any(types[i] in ("FLOAT32", "FLOAT16") for i in indices):
                float_ops[op] = float_ops.get(op, 0) + 1
    if missing:
        raise _unsupported_ops_error(missing)
    check_declared_shapes(model)
    _check_work(model_bytes)
    if quantized and float_ops:
        listed = ", ".join(f"{op} ({n})" for op, n in float_ops.items())
        raise KitError(f"float operators left in an int8 model: {listed}",
                       "quantize fully to int8 (a representative dataset and TFLITE_BUILTINS_INT8 only, "
                       "no dynamic-range/hybrid quantization) or replace the layers that stayed float")
