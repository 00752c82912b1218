"""Sizes of a linked image, read with binutils' `size` (the one place the kit parses its output).

`image_size`: text/data/bss (Berkeley format), what flash (text + data) and static RAM (data + bss)
are made of; `section_sizes`: every section's size (`size -A`), for a finer split of the flash.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SIZE_TOOL = "arm-none-eabi-size"


@dataclass(frozen=True)
class ImageSize:
    text: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def static_ram(self) -> int:
        return self.data + self.bss


def image_size(elf: Path, size_tool: str = SIZE_TOOL) -> ImageSize | None:
    """text/data/bss of a linked image (Berkeley format); None when the tool is missing or fails."""
    lines = _size_output([size_tool, str(elf)])
    if len(lines) < 2:
        return None
    text, data, bss = (int(x) for x in lines[1].split()[:3])
    return ImageSize(text, data, bss)


def section_sizes(elf: Path, size_tool: str = SIZE_TOOL) -> dict[str, int]:
    """Section name -> bytes (`size -A`); empty when the tool is missing or fails."""
    lines = _size_output([size_tool, "-A", str(elf)])
    return {f[0]: int(f[1]) for f in (line.split() for line in lines) if len(f) >= 3 and f[1].isdigit()}


def _size_output(command: list[str]) -> list[str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return done.stdout.splitlines() if done.returncode == 0 else []
