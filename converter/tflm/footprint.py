"""Flash a deployed model takes on a Cortex-M target: model + its operators' kernels + TFLM's core.

Public API (used by `firmware`'s budget check, the optimizer and the partitioner):

    deployed_flash(model_bytes_len, operators, target="cortex-m4") -> Footprint
        model_bytes_len: len() of the .tflite flatbuffer linked into flash;
        operators: operator names as the model's OperatorCodes name them (schema BuiltinOperator
            names such as "CONV_2D", or custom codes such as "TFLM_DECODE"); repeats are ignored;
        target: one of code_size_targets() ("cortex-m4", "cortex-m7+fp").
        Returns Footprint(target, model, kernels={op: bytes}, shared, core, total) where
        total = model + sum(kernels) - shared + core. KitError for an unknown target or operator.
    code_size_targets() -> list[str]

The numbers are measured, not assumed: tools/regen_code_size.py links a minimal interpreter
program against the prebuilt libtensorflow-microlite.a of each target (-Os, --gc-sections)
with no operator (`core`) and with each operator alone (`kernels[op]` = what the image grows
by), and records the symbols kernels have in common (`shared`, counted once here). The estimate
leaves out the application (main, startup, board support, printf) and the golden vectors.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from ..errors import KitError

DATA_DIR = Path(__file__).resolve().parent / "data"
REGEN = "python tools/regen_code_size.py --tflm-root ../shared/tflm"


@dataclass(frozen=True)
class Footprint:
    """Bytes of flash (text+data) per part; `total` is what the image needs for TFLM and the model."""
    target: str
    model: int
    kernels: dict[str, int] = field(default_factory=dict)  # operator -> bytes when linked alone
    shared: int = 0   # bytes two or more of these kernels have in common, subtracted once
    core: int = 0     # interpreter, allocator, flatbuffer reader and the libc they pull in
    total: int = 0

    @property
    def runtime(self) -> int:
        """TFLM's code alone: core + kernels, without the model."""
        return self.total - self.model


def code_size_targets() -> list[str]:
    return sorted(p.stem.removeprefix("code_size_") for p in DATA_DIR.glob("code_size_*.json"))


@lru_cache(maxsize=None)
def code_size_table(target: str) -> dict:
    """The generated table for one target (see tools/regen_code_size.py for its fields)."""
    path = DATA_DIR / f"code_size_{target}.json"
    if not path.is_file():
        raise KitError(f"no TFLM code-size measurements for target '{target}'",
                       f"use one of: {', '.join(code_size_targets())}")
    return json.loads(path.read_text())


def deployed_flash(model_bytes_len: int, operators: Iterable[str], target: str = "cortex-m4") -> Footprint:
    table = code_size_table(target)
    ops = list(dict.fromkeys(operators))
    unknown = [op for op in ops if op not in table["kernels"]]
    if unknown:
        raise KitError(f"no code-size measurement of operator(s) {', '.join(unknown)} for {target}",
                       f"regenerate converter/tflm/data with `{REGEN}` (needs arm-none-eabi-gcc)")
    kernels = {op: table["kernels"][op]["bytes"] for op in ops}
    seen: dict[str, int] = {}
    shared = 0
    for op in ops:
        for name, size in table["kernels"][op]["shared"].items():
            if name in seen:
                shared += size
            seen[name] = size
    total = model_bytes_len + sum(kernels.values()) - shared + table["core_bytes"]
    return Footprint(target=target, model=model_bytes_len, kernels=kernels, shared=shared,
                     core=table["core_bytes"], total=total)
