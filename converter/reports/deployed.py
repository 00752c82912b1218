"""What a compressed model costs on the device next to its uncompressed int8 self.

The flatbuffer is not what the MCU stores: LUT compression adds TFLM's DECODE kernel (on the
Cortex-M4 its code outweighs what a small model saves), and DECODE or int4 unpacking take arena.
So a conversion whose compress stage changed the model records both models' deployed flash (from
the per-target code-size data of converter/tflm/footprint.py, with the type-specialised kernels the
generated resolver registers: flatbuffer + kernels + TFLM core, no TFLM_ROOT or cross compiler
needed) and both models' arenas on the target (converter/tflm/target_arena.py: measured on the
emulated core by the device check, or derived for the Cortex-M4 from the model's plan when it cannot
run: converter/tflm/derived_arena.py), each labelled with its source. The host's arenas (TFLM's
Python runtime, 64-bit, reference kernels: they unpack int4 filters into scratch, CMSIS-NN does
not) are only a labelled extra, or, for a model the derivation does not model, the figure, labelled as
not the device's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from ..errors import KitError
from ..stages.compressors import CompressRecord
from ..tflm.footprint import model_flash
from ..tflm.target_arena import ArenaFigure

TARGET = "cortex-m4"


@dataclass(frozen=True)
class DeployedComparison:
    target: str
    flash_source: str          # "TFLM code-size data for cortex-m4 (specialised kernels)"
    flash_uncompressed: int    # bytes: flatbuffer + kernels + core
    flash: int
    arena_source: str          # ArenaFigure.source of both arenas ("measured on cortex-m4 under QEMU (...)")
    arena_uncompressed: int    # bytes used, before the recipe's margin
    arena: int
    arena_on_device: bool = True
    host: Optional[str] = None                   # the host's machine, when its figures are an extra
    arena_host_uncompressed: Optional[int] = None
    arena_host: Optional[int] = None

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        text = (f"deployed, uncompressed -> compressed ({self.target}): flash "
                f"{self.flash_uncompressed:,} -> {self.flash:,} B ({self.flash - self.flash_uncompressed:+,}; "
                f"{self.flash_source}), arena {self.arena_uncompressed:,} -> {self.arena:,} B "
                f"({self.arena - self.arena_uncompressed:+,}; {self.arena_source})")
        if self.host and self.arena_host is not None and self.arena_host_uncompressed is not None:
            text += (f"; host {self.host}, not the device's: {self.arena_host_uncompressed:,} -> "
                     f"{self.arena_host:,} B")
        return text


def tensors_compressed(records) -> bool:
    """Whether a compress stage stored a tensor differently (LUT, PRUNE, int4), not only dropped metadata
    (stripping alone changes neither kernels nor arena: no comparison, and no second arena measurement)."""
    return any(isinstance(record.details, CompressRecord) and record.details.tensors_changed for record in records)


def compare_deployed(model_bytes: bytes, uncompressed: Optional[bytes], arena: ArenaFigure,
                     arena_uncompressed: ArenaFigure, host: Optional[tuple[ArenaFigure, ArenaFigure]] = None,
                     target: str = TARGET) -> Optional[DeployedComparison]:
    """Both models' deployed flash and arena; None when there is no uncompressed model, or when the
    code-size data has no figure for one of the operators (e.g. a custom operator): then there is no
    honest total. host: (uncompressed, compressed) host figures, shown as an extra when the arenas are the target's."""
    if uncompressed is None:
        return None
    try:
        flash, flash_uncompressed = model_flash(model_bytes, target).total, model_flash(uncompressed, target).total
    except KitError:
        return None
    extra = host if host is not None and arena.on_device else None
    return DeployedComparison(
        target, f"TFLM code-size data for {target}, specialised kernels", flash_uncompressed, flash, arena.source,
        arena_uncompressed.bytes, arena.bytes, arena.on_device, extra[0].core if extra else None,
        extra[0].bytes if extra else None, extra[1].bytes if extra else None)
