"""The optional features and the pip extra each needs: the one place that says what to install.

`pip install tflm-kit` is the core (convert, validate, golden, firmware, flash). A feature that needs
more names its extra here; the command that needs it calls `require` before any work, so a user
without it gets one line naming the `pip install` to run instead of an ImportError mid-run.
"""
from __future__ import annotations

import importlib.util

from ..errors import KitError

# extra -> the modules it installs (import names), as pyproject.toml's [project.optional-dependencies]
EXTRAS: dict[str, tuple[str, ...]] = {
    "optimize": ("optuna", "ray"),
    "federated": ("flwr", "ray", "dp_accounting"),
    "npu": ("ethosu",),
    "torch": ("torch", "litert_torch"),
}


def missing(extra: str) -> list[str]:
    """The extra's modules that cannot be found (found without importing them)."""
    absent = []
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or half-removed install
            found = False
        if not found:
            absent.append(module)
    return absent


def install_command(extra: str) -> str:
    return f'pip install "tflm-kit[{extra}]"'


def require(extra: str, feature: str) -> None:
    """KitError naming the pip install to run when `feature` (e.g. 'tflm-kit optimize') lacks its extra."""
    absent = missing(extra)
    if absent:
        verb = "is" if len(absent) == 1 else "are"
        raise KitError(f"{feature} needs {', '.join(absent)}, which {verb} not installed", install_command(extra))
