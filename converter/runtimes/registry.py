"""The runtimes a converted model can be deployed with: name -> implementation (one row per runtime)."""
from __future__ import annotations

from ..errors import KitError
from .aot import AotRuntime
from .base import Deployed, Figure, Runtime
from .tflm import TflmRuntime

RUNTIMES: dict[str, Runtime] = {"tflm": TflmRuntime(), "aot": AotRuntime()}
# The core `convert` prices every runtime on (the emulated board the kit measures on: cortex-m-qemu).
DEPLOYED_TARGET = "cortex-m4"


def runtime_names() -> list[str]:
    return list(RUNTIMES)


def get_runtime(name: str) -> Runtime:
    if name not in RUNTIMES:
        raise KitError(f"unknown runtime '{name}'", f"use one of: {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def price_all(model: bytes, arena: Figure, target: str = DEPLOYED_TARGET) -> tuple[list[Deployed], list[str]]:
    """Every runtime's deployed figures for `model` on `target` (`arena`: TFLM's, with its source), side by side,
    and a note for each runtime that cannot price it (an operator outside its set, no code-size data for the target)."""
    figures, notes = [], []
    for name, runtime in RUNTIMES.items():
        try:
            figures.append(runtime.price(model, arena, target))
        except KitError as error:
            notes.append(f"{name}: no deployed figure on {target} ({error.problem})")
    return figures, notes
