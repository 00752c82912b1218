"""Device numbers of a built and run firmware: device.json beside it, and the table `flash` prints.

Flash (text+data) and static RAM (data+bss, which holds the tensor arena) come from the linker
via `arm-none-eabi-size`; the arena actually used and the instruction counts from the firmware's
own output under QEMU (runtimes/selftest.py).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..system.elf_size import ImageSize
from .selftest import SelfTest

DEVICE_FILE = "device.json"


@dataclass
class DeviceRecord:
    board: str
    core: str
    passed: int
    total: int
    bit_identical: bool
    arena_size_bytes: int | None
    arena_used_bytes: int | None
    flash_bytes: int | None = None          # text + data of the linked image
    static_ram_bytes: int | None = None     # data + bss (includes the tensor arena)
    image: dict | None = None               # text, data, bss
    instructions_per_inference: int | None = None
    cycles_per_inference: int | None = None  # boards run on a cycle-counting emulator (pico on rp2040js)
    profile: list[dict] = field(default_factory=list)       # per operator of one inference
    profile_by_operator: dict[str, int] = field(default_factory=dict)
    flash_estimate_bytes: int | None = None  # what `firmware` budgeted (TFLM + model + golden + platform)
    how: str = ""

    def write(self, project: Path) -> Path:
        path = Path(project) / DEVICE_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


def device_record(record: dict, result: SelfTest, identical: bool, size: ImageSize | None) -> DeviceRecord:
    by_operator: dict[str, int] = {}
    for cost in result.profile:
        by_operator[cost.operator] = by_operator.get(cost.operator, 0) + cost.instructions
    how = "self-test output"
    if size:
        how += "; flash and static RAM: arm-none-eabi-size fw.elf"
    if result.ticks:
        how += "; instructions: SysTick under qemu-system-arm -icount shift=0 (x40), median over the golden vectors"
    return DeviceRecord(
        board=record["board"], core=record.get("core", ""), passed=result.passed, total=result.total,
        bit_identical=identical, arena_size_bytes=result.arena_size, arena_used_bytes=result.arena_used,
        flash_bytes=size.flash if size else None, static_ram_bytes=size.static_ram if size else None,
        image=asdict(size) if size else None, instructions_per_inference=result.instructions_per_inference,
        profile=[asdict(cost) for cost in result.profile],
        profile_by_operator=dict(sorted(by_operator.items(), key=lambda kv: -kv[1])),
        flash_estimate_bytes=record.get("flash_needed_bytes"), how=how)


def profile_table(device: DeviceRecord) -> list[str]:
    """The per-operator profile as aligned text rows: operator, count, instructions, share."""
    if not device.profile:
        return []
    total = sum(device.profile_by_operator.values()) or 1
    counts: dict[str, int] = {}
    for row in device.profile:
        counts[row["operator"]] = counts.get(row["operator"], 0) + 1
    width = max(len(op) for op in counts)
    rows = [f"  {'operator':<{width}}  count  instructions   share"]
    for op, instructions in device.profile_by_operator.items():
        rows.append(f"  {op:<{width}}  {counts[op]:>5}  {instructions:>12,}  {instructions / total:>6.1%}")
    rows.append(f"  {'total':<{width}}  {len(device.profile):>5}  {total:>12,}")
    return rows
