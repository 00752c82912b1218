"""Which TFLM kernel registration each operator of a model gets: type-specialised where TFLM has one.

`AddConv2D()` registers TFLM's generic CONV_2D, whose Eval keeps every type path (float, int8,
int16, int4 filters) and so links them all. TFLM declares type-specialised registrations
(`Register_CONV_2D_INT8()`, `..._INT4()`, `..._INT16()`, likewise for DEPTHWISE_CONV_2D,
FULLY_CONNECTED, ADD, MUL, the pools and SOFTMAX) that link one path; on a build without an
optimized kernel for one (the host's reference build) its header maps it back to the generic one,
so the same generated code compiles everywhere. A MicroMutableOpResolver holds one registration
per operator, so an operator whose nodes need different types keeps the generic registration.

The variant is read from the model: the activation type of input 0 (and the filter type of input 1
for the convolutions and FULLY_CONNECTED, and the output type for SOFTMAX). A TFLM copy ("port")
that does not declare a registration falls back to the generic one (data/port_ops.json lists what
each port declares: tools/regen_port_ops.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..tflite.tflite_model import TfliteModel
from .ops import CUSTOM_METHODS, RESOLVER_METHODS

# operator -> the kernel header that declares its registrations
KERNEL_HEADERS = {
    "CONV_2D": "conv.h", "DEPTHWISE_CONV_2D": "depthwise_conv.h", "FULLY_CONNECTED": "fully_connected.h",
    "ADD": "add.h", "MUL": "mul.h", "AVERAGE_POOL_2D": "pooling.h", "MAX_POOL_2D": "pooling.h",
    "SOFTMAX": "softmax.h",
}
_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
# (activation type, filter type) -> suffix, for the operators with a filter
_WEIGHTED_VARIANTS = {("INT8", "INT8"): "INT8", ("INT8", "INT4"): "INT4", ("INT16", "INT8"): "INT16"}
# (input type, output type) -> suffix
_SOFTMAX_VARIANTS = {("INT8", "INT8"): "INT8", ("INT8", "INT16"): "INT8_INT16", ("INT16", "INT16"): "INT16"}
_ELEMENTWISE_VARIANTS = {"INT8": "INT8", "INT16": "INT16"}


@dataclass(frozen=True)
class KernelChoice:
    """One resolver call of the generated model_ops.h."""
    op: str                     # schema name (or custom code)
    method: str                 # MicroMutableOpResolver method, e.g. AddConv2D
    count: int                  # nodes using it
    registration: str | None    # e.g. Register_CONV_2D_INT8, or None for the method's default
    why: str                    # for the comment beside the call

    @property
    def header(self) -> str | None:
        return f"tensorflow/lite/micro/kernels/{KERNEL_HEADERS[self.op]}" if self.registration else None


def _node_variant(model: TfliteModel, op: str, operator) -> str | None:
    tensors = model.tensors
    ins = [int(i) for i in (operator.inputs if operator.inputs is not None else [])]
    outs = [int(i) for i in (operator.outputs if operator.outputs is not None else [])]
    if not ins or ins[0] < 0:
        return None
    first = model.tensor_type(tensors[ins[0]])
    if op in _WEIGHTED:
        if len(ins) < 2 or ins[1] < 0:
            return None
        return _WEIGHTED_VARIANTS.get((first, model.tensor_type(tensors[ins[1]])))
    if op == "SOFTMAX":
        return _SOFTMAX_VARIANTS.get((first, model.tensor_type(tensors[outs[0]]))) if outs else None
    return _ELEMENTWISE_VARIANTS.get(first)


def kernel_variants(model: TfliteModel) -> dict[str, str | None]:
    """Operator -> the one type suffix all its nodes (main subgraph and others) share, or None."""
    seen: dict[str, set] = {}
    for subgraph in model.subgraphs:
        for operator in subgraph.operators or []:
            op = model.operator_name(operator)
            if op in KERNEL_HEADERS:
                seen.setdefault(op, set()).add(_node_variant(model, op, operator))
    return {op: next(iter(variants)) if len(variants) == 1 else None for op, variants in seen.items()}


def registered_variants(model_bytes: bytes, declared: frozenset[str] | None = None) -> dict[str, str]:
    """Operator -> type suffix, for the operators the generated resolver registers a specialised kernel
    for (all nodes share one type, and the port declares the registration); the price key is
    "<OP>/<TYPE>" in converter/tflm/data/code_size_*.json."""
    found = kernel_variants(TfliteModel.from_bytes(model_bytes))
    return {op: v for op, v in found.items()
            if v and (declared is None or f"Register_{op}_{v}" in declared)}


def choose_kernels(model_bytes: bytes, operators: Iterable[str], counts: dict[str, int],
                   declared: frozenset[str] | None) -> list[KernelChoice]:
    """The resolver calls for `operators` (first-use order). declared: the registrations the target TFLM
    copy declares (Port.registrations); None = every one TFLM 90b983c2 declares."""
    variants = kernel_variants(TfliteModel.from_bytes(model_bytes))
    choices = []
    for op in operators:
        method = RESOLVER_METHODS.get(op) or CUSTOM_METHODS[op]
        variant = variants.get(op)
        registration = f"Register_{op}_{variant}" if variant else None
        if registration and declared is not None and registration not in declared:
            why = f"generic: this TFLM copy has no {registration}()"
            registration = None
        elif registration:
            why = f"{variant.lower().replace('_', '/')} only"
        elif op in variants:
            why = "generic: its nodes mix types, or a type without a specialised kernel"
        else:
            why = "generic (TFLM has no type-specialised registration)"
        choices.append(KernelChoice(op, method, counts.get(op, 1), registration, why))
    return choices
