"""What a compressed model costs on the device next to its uncompressed int8 self.

The flatbuffer is not what the MCU stores: LUT compression adds TFLM's DECODE kernel (on the
Cortex-M4 its code outweighs what a small model saves), and DECODE or int4 unpacking take arena.
So a conversion whose compress stage changed the model records both models' deployed flash (from
the per-target code-size data of converter/tflm/footprint.py: flatbuffer + kernels + TFLM core,
no TFLM_ROOT or cross compiler needed) and both arenas (TFLM's Python runtime on this host: an
estimate for a 32-bit MCU), and `convert` prints them side by side.
"""
from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from ..errors import KitError
from ..tflite.model import read_model
from ..tflm.arena import measure_arena
from ..tflm.footprint import deployed_flash

TARGET = "cortex-m4"


@dataclass(frozen=True)
class DeployedComparison:
    target: str
    flash_source: str          # "footprint data"
    flash_uncompressed: int    # bytes: flatbuffer + kernels + core
    flash: int
    arena_source: str          # "host <machine>": TFLM's Python runtime, 64-bit pointers
    arena_uncompressed: int    # bytes measured, before the recipe's margin
    arena: int

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (f"deployed, uncompressed -> compressed ({self.target}, {self.flash_source}): flash "
                f"{self.flash_uncompressed:,} -> {self.flash:,} B ({self.flash - self.flash_uncompressed:+,}), "
                f"arena {self.arena_uncompressed:,} -> {self.arena:,} B ({self.arena - self.arena_uncompressed:+,}, "
                f"{self.arena_source})")


def tensors_compressed(records) -> bool:
    """Whether a compress stage stored a tensor differently (LUT, PRUNE, int4), not only dropped metadata
    (stripping alone changes neither kernels nor arena: no comparison, and no second arena measurement)."""
    return any(record.kind == "compress" and (record.details.get("tensors")
                                              or (record.details.get("int4") or {}).get("tensors"))
               for record in records)


def compare_deployed(model_bytes: bytes, uncompressed: Optional[bytes], arena_measured: int,
                     sample: list[np.ndarray], target: str = TARGET) -> Optional[DeployedComparison]:
    """Both models' deployed flash and arena; None when there is no uncompressed model, or when the
    code-size data has no figure for one of the operators (e.g. a custom operator): then there is no
    honest total."""
    if uncompressed is None:
        return None
    try:
        flash = deployed_flash(len(model_bytes), read_model(model_bytes).operators, target).total
        flash_uncompressed = deployed_flash(len(uncompressed), read_model(uncompressed).operators, target).total
    except KitError:
        return None
    return DeployedComparison(target, "footprint data", flash_uncompressed, flash, f"host {platform.machine()}",
                              measure_arena(uncompressed, sample), arena_measured)
