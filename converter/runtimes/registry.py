"""The runtimes a converted model can be deployed with: name -> implementation (one row per runtime)."""
from __future__ import annotations

from ..errors import KitError
from .aot import AotRuntime
from .base import Runtime
from .tflm import TflmRuntime

RUNTIMES: dict[str, Runtime] = {"tflm": TflmRuntime(), "aot": AotRuntime()}


def runtime_names() -> list[str]:
    return list(RUNTIMES)


def get_runtime(name: str) -> Runtime:
    if name not in RUNTIMES:
        raise KitError(f"unknown runtime '{name}'", f"use one of: {', '.join(RUNTIMES)}")
    return RUNTIMES[name]
