"""Measure a model once per core, then price any part of it from the measurements.

QEMU is too slow to run both parts of every cut on every core (two builds and runs per cut), so
the whole model is built and run once per core with a per-operator profiler, and a part's
instructions are the sum over its operators ("summed per-operator counts"). The pair check
(pair.py) then runs the chosen cut's real parts and reports their measured counts beside the sums.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cost import PartCost, PartMemory
from .footprint import FirmwareFootprint
from .footprint import measure as measure_footprint
from .profiles import Device
from .qemu import profile_operators

# The runtime whose firmware's flash and RAM are also measured from the profiling build (footprint.py prices TFLM's
# kernels); another runtime's come from its own price plus the board profile's allowance (pricing.runtime_memory).
FOOTPRINT_RUNTIME = "tflm"


@dataclass(frozen=True)
class CoreMeasurement:
    core: str
    operators: tuple            # OperatorCost per operator index of the whole model
    invoke_instructions: int    # the whole Invoke(), measured (the sum of operators plus interpreter overhead)
    footprint: FirmwareFootprint | None     # None: the runtime's flash and RAM are priced, not measured here
    runtime: str = FOOTPRINT_RUNTIME        # the runtime whose firmware was profiled

    @property
    def overhead_instructions(self) -> int:
        """Interpreter work outside operators (per Invoke), added to every part."""
        return max(0, self.invoke_instructions - sum(op.instructions for op in self.operators))

    def instructions(self, operators) -> int:
        return sum(self.operators[i].instructions for i in operators) + self.overhead_instructions


def measure_core(whole_dir: Path, core: str, workdir: Path, tflm_root: str | None, operator_names,
                 runtime: str = FOOTPRINT_RUNTIME, kinds: list[str] | None = None) -> CoreMeasurement:
    """The whole model's firmware with `runtime`, profiled per operator on `core` (kinds: each operator's kind by
    index); with TFLM also its flash and RAM besides the model (footprint.py)."""
    costs, total = profile_operators(whole_dir, core, workdir, tflm_root, runtime, kinds)
    if runtime != FOOTPRINT_RUNTIME:
        return CoreMeasurement(core, tuple(costs), total, None, runtime)
    project = workdir / f"profile-{core}"
    with np.load(whole_dir / "golden.npz") as golden:
        golden_bytes = sum(golden[k].nbytes for k in golden.files)
    model_bytes = (whole_dir / "model.tflite").stat().st_size
    footprint = measure_footprint(project, sorted(set(operator_names)), model_bytes, golden_bytes, core)
    return CoreMeasurement(core, tuple(costs), total, footprint)


def measured_memory(measured: CoreMeasurement, model_bytes: int, operator_names, arena_size: int) -> PartMemory:
    """TFLM's figures for a part, from the whole model's firmware measured on the core (footprint.py): the model,
    its kernels and TFLM's core from the per-kernel data, the rest of the firmware measured; RAM: the arena + the
    firmware's other RAM and stack."""
    footprint = measured.footprint
    assert footprint is not None, "measured_memory needs the TFLM profile build's footprint"
    return PartMemory(FOOTPRINT_RUNTIME, footprint.part_flash(model_bytes, operator_names),
                      arena_size + footprint.ram_rest_bytes,
                      f"{footprint.target}: TFLM arena measured + 10% + the firmware's other RAM, measured")


def mcu_part_cost(device: Device, measured: CoreMeasurement, operators, memory: PartMemory,
                  model_bytes: int, receive_bytes: int = 0) -> PartCost:
    instructions = measured.instructions(operators)
    return PartCost(
        device=device.name, operators=len(operators), model_bytes=model_bytes,
        flash_bytes=memory.flash_bytes, ram_bytes=memory.ram_bytes + receive_bytes,
        instructions=instructions, cycles=instructions, ms=instructions / (device.mhz * 1e3),
        flash_budget=device.flash_bytes, ram_budget=device.ram_bytes, runtime=memory.runtime,
        memory_source=memory.source)
