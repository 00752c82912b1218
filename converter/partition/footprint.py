"""Flash and RAM a part needs, priced through the kit's one kernel-flash model (converter/tflm/footprint.py).

A part's flash is `deployed_flash(part model, part operators)` (TFLM's core plus each operator's
kernel as measured when linked alone, shared symbols once, plus the model) and the application
around TFLM (main, startup, libc, printf), which every part carries whole. The application is
measured once per core: the whole model's profiling build (the same Makefile, library and flags
as the cortex-m-qemu board) minus its own deployed_flash and golden vectors. RAM besides the
tensor arena (.data, .bss, the stack) comes from the same build.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..system.elf_size import section_sizes
from ..tflm.footprint import deployed_flash

# partition's core names -> converter.tflm.footprint's targets (per-kernel sizes measured for those libraries)
KIT_TARGETS = {"cortex-m4": "cortex-m4", "cortex-m7": "cortex-m7+fp"}
METHOD = ("flash = converter.tflm.footprint.deployed_flash (TFLM core + each operator's kernel linked alone, "
          "shared symbols once + model) + the application around it, measured as the whole model's "
          "firmware minus its deployed_flash and golden vectors")


@dataclass(frozen=True)
class FirmwareFootprint:
    text_bytes: int          # .text + .rodata + .data init of the whole model's firmware
    model_bytes: int
    golden_bytes: int
    ram_rest_bytes: int      # RAM besides the tensor arena: .data + .bss of the rest, and the stack
    target: str              # converter.tflm.footprint's target name
    app_bytes: int           # the firmware outside TFLM (main, startup, libc, printf), measured

    @property
    def method(self) -> str:
        return METHOD

    def part_flash(self, model_bytes: int, operators) -> int:
        return deployed_flash(model_bytes, sorted(set(operators)), self.target).total + self.app_bytes


# RAM of the profiling build that a part's firmware does not have in this form: the arena (priced
# per part from its own measurement) and the per-operator profiler's buffers.
_NOT_REST = ("(anonymous namespace)::g_tensor_arena", "main::profiler")


def _symbol_bytes(elf: Path, names) -> int:
    listed = subprocess.run(["arm-none-eabi-nm", "-S", "-C", str(elf)], capture_output=True, text=True).stdout
    total = 0
    for line in listed.splitlines():
        fields = line.split(maxsplit=3)
        if len(fields) == 4 and fields[3] in names:
            total += int(fields[1], 16)
    return total


def measure(project: Path, operators, model_bytes: int, golden_bytes: int, core: str,
            stack_bytes: int = 0x4000) -> FirmwareFootprint:
    """stack_bytes: what the board's linker script reserves (cortex-m-qemu: __stack_size = 0x4000)."""
    sections = section_sizes(project / "fw.elf")
    flash = sum(sections.get(s, 0) for s in (".text", ".ARM.exidx", ".ARM.extab", ".init_array", ".data"))
    ram_rest = sections.get(".data", 0) + sections.get(".bss", 0) + stack_bytes - \
        _symbol_bytes(project / "fw.elf", _NOT_REST)
    target = KIT_TARGETS[core]
    deployed = deployed_flash(model_bytes, sorted(set(operators)), target).total
    app = max(0, flash - golden_bytes - deployed)
    return FirmwareFootprint(flash, model_bytes, golden_bytes, ram_rest, target, app)
