"""Which operators a TFLM copy can register, read from its micro_mutable_op_resolver.h.

Every operator TFLM can run has one `TfLiteStatus Add<Name>(...)` method on
`tflite::MicroMutableOpResolver`; a port (Arduino_TensorFlowLite, pico-tflmicro, ...) that
lacks a method cannot run models that use the operator. Only methods callable without
arguments count (AddCustom and AddBuiltin need a registration and are not operators).
"""
from __future__ import annotations

import re
from pathlib import Path

_METHOD = re.compile(r"TfLiteStatus\s+(Add\w+)\s*\(([^)]*)\)", re.S)
_GENERIC = {"AddCustom", "AddBuiltin"}


def resolver_methods(header_text: str) -> list[str]:
    """The argument-free Add<Name> methods in the header text, sorted, without duplicates."""
    found = set()
    for name, params in _METHOD.findall(header_text):
        params = params.strip()
        if name in _GENERIC or (params and "=" not in params):
            continue
        found.add(name)
    return sorted(found)


def find_resolver_header(root: Path) -> Path:
    """The header inside a TFLM tree or port, whatever its layout (src/tensorflow/... or tensorflow/...)."""
    for candidate in (root / "tensorflow/lite/micro/micro_mutable_op_resolver.h",
                      root / "src/tensorflow/lite/micro/micro_mutable_op_resolver.h"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no tensorflow/lite/micro/micro_mutable_op_resolver.h under {root}")


def operators_of(methods: list[str]) -> list[str]:
    """Operator names (schema BuiltinOperator names, or custom codes) the methods register."""
    from .ops import CUSTOM_METHODS, RESOLVER_METHODS

    by_method = {m: op for op, m in {**RESOLVER_METHODS, **CUSTOM_METHODS}.items()}
    return sorted(by_method[m] for m in methods if m in by_method)
