"""Flash a part needs: its model, the kernels of its operators, and the rest of the firmware.

Measured from the whole model's profiling build (the same Makefile, library and flags as the
cortex-m-qemu board): the linker map gives the bytes each object file contributes after
--gc-sections, and the library's symbol table says which object defines Register_<OP>. An
operator's kernel is that object plus its *_common.o; everything else linked (TFLM runtime,
CMSIS-NN routines, libc, startup) is the rest, which every part carries whole: an upper bound,
since a part with fewer operators links fewer CMSIS-NN routines.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_MAP_ENTRY = re.compile(r"^\s*(?:(\.\S+)\s+)?0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+\S*\(([^)]+\.o)\)\s*$")


@dataclass(frozen=True)
class Footprint:
    text_bytes: int          # .text + .rodata + .data init of the whole model's firmware
    model_bytes: int
    golden_bytes: int
    kernel_bytes: dict       # operator -> bytes of its kernel objects
    rest_bytes: int          # runtime, CMSIS-NN, libc, startup, main
    ram_rest_bytes: int      # RAM besides the tensor arena: .data + .bss of the rest, and the stack

    target: str | None = None  # converter.tflm.footprint's target name, when that module is present
    app_bytes: int = 0         # with it: the firmware outside TFLM (main, startup, libc, printf), measured

    @property
    def method(self) -> str:
        if self.target:
            return ("flash = converter.tflm.footprint.deployed_flash (TFLM core + each operator's kernel linked alone, "
                    "shared symbols once + model) + the application around it, measured as the whole model's "
                    "firmware minus its deployed_flash and golden vectors")
        return ("flash = part model + kernel objects of its operators + the rest of the firmware, from the linker "
                "map of the whole model's build for that core (the rest is an upper bound for a part)")

    def part_flash(self, model_bytes: int, operators) -> int:
        kit = _kit_footprint()
        if self.target and kit is not None:
            return kit.deployed_flash(model_bytes, sorted(set(operators)), self.target).total + self.app_bytes
        return model_bytes + sum(self.kernel_bytes.get(op, 0) for op in set(operators)) + self.rest_bytes


# converter.tflm.footprint's names for the cores (per-kernel sizes measured for those TFLM libraries)
_KIT_TARGETS = {"cortex-m4": "cortex-m4", "cortex-m7": "cortex-m7+fp"}


def _kit_footprint():
    """The kit's per-kernel code sizes (converter/tflm/footprint.py), when this build has them."""
    try:
        from ..tflm import footprint
    except ImportError:
        return None
    return footprint


def linked_object_bytes(map_text: str) -> dict[str, int]:
    """Bytes each archive member contributes to flash sections, from a GNU ld map's memory map."""
    sizes: dict[str, int] = {}
    section = None
    memory_map = map_text.split("Linker script and memory map", 1)[-1]
    for line in memory_map.splitlines():
        head = line.split()
        if line.startswith(" .") and head:
            section = head[0]
        m = _MAP_ENTRY.match(line)
        if m and section and section.startswith((".text", ".rodata")):
            sizes[m.group(3)] = sizes.get(m.group(3), 0) + int(m.group(2), 16)
    return sizes


def kernel_objects(library: Path, operators) -> dict[str, set[str]]:
    """Operator -> the library objects of its kernel (the one defining Register_<OP>, and its _common)."""
    listed = subprocess.run(["arm-none-eabi-nm", "-A", "--defined-only", "-C", str(library)],
                            capture_output=True, text=True).stdout
    objects: dict[str, set[str]] = {}
    for op in operators:
        pattern = re.compile(rf":([^:]+\.o):\S+ T tflite::Register_{re.escape(op)}\(\)")
        found = {m.group(1) for m in pattern.finditer(listed)}
        objects[op] = found | {o.replace(".o", "_common.o") for o in found}
    return objects


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


def measure(project: Path, library: Path, operators, model_bytes: int, golden_bytes: int, core: str,
            stack_bytes: int = 0x4000) -> Footprint:
    """stack_bytes: what the board's linker script reserves (cortex-m-qemu: __stack_size = 0x4000)."""
    sizes = subprocess.run(["arm-none-eabi-size", "-A", str(project / "fw.elf")], capture_output=True, text=True).stdout
    sections = {f[0]: int(f[1]) for f in (line.split() for line in sizes.splitlines()) if len(f) >= 3 and f[1].isdigit()}
    flash = sum(sections.get(s, 0) for s in (".text", ".ARM.exidx", ".ARM.extab", ".init_array", ".data"))
    ram_rest = sections.get(".data", 0) + sections.get(".bss", 0) + stack_bytes - \
        _symbol_bytes(project / "fw.elf", _NOT_REST)
    linked = linked_object_bytes((project / "fw.map").read_text(errors="replace"))
    kernels = {op: sum(linked.get(o, 0) for o in objs) for op, objs in kernel_objects(library, operators).items()}
    rest = max(0, flash - model_bytes - golden_bytes - sum(kernels.values()))
    kit, target = _kit_footprint(), _KIT_TARGETS.get(core)
    if kit is not None and target in kit.code_size_targets():
        deployed = kit.deployed_flash(model_bytes, sorted(set(operators)), target).total
        return Footprint(flash, model_bytes, golden_bytes, kernels, rest, ram_rest, target,
                         max(0, flash - golden_bytes - deployed))
    return Footprint(flash, model_bytes, golden_bytes, kernels, rest, ram_rest)
