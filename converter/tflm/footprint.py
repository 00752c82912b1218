"""Flash a deployed model takes on a Cortex-M target: model + its operators' kernels + TFLM's core.

Public API (used by `firmware`'s budget check, the optimizer and the partitioner):

    deployed_flash(model_bytes_len, operators, target="cortex-m4", variants=None) -> Footprint
        model_bytes_len: len() of the .tflite flatbuffer linked into flash;
        operators: operator names as the model's OperatorCodes name them (schema BuiltinOperator
            names such as "CONV_2D", or custom codes such as "TFLM_DECODE"); repeats are ignored;
        target: one of code_size_targets() ("cortex-m0plus", "cortex-m4", "cortex-m7+fp");
        variants: operator -> type suffix of the specialised registration the generated resolver
            uses (tflm/kernels.registered_variants: {"CONV_2D": "INT8"}), priced from the
            "<OP>/<TYPE>" entries; an operator without one is priced as TFLM's generic kernel.
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


def _entry(op: str, variants: dict[str, str], table: dict) -> str:
    """The table key an operator is priced by: its specialised registration's when measured, else its own."""
    key = f"{op}/{variants[op]}" if variants.get(op) else op
    return key if key in table["kernels"] else op


def model_flash(model_bytes: bytes, target: str = "cortex-m4", port: str = "tflite-micro") -> Footprint:
    """deployed_flash of a flatbuffer with the kernels the generated resolver registers for `port`."""
    from ..tflite.info import read_model
    from .kernels import registered_variants
    from .ports import load_port

    return deployed_flash(len(model_bytes), read_model(model_bytes).operators, target,
                          registered_variants(model_bytes, load_port(port).registrations))


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


def deployed_flash(model_bytes_len: int, operators: Iterable[str], target: str = "cortex-m4",
                   variants: dict[str, str] | None = None) -> Footprint:
    table = code_size_table(target)
    ops = [_entry(op, variants or {}, table) for op in dict.fromkeys(operators)]
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
