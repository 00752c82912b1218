"""What a candidate costs on the device: flash, RAM (arena) and instructions per inference.

Each figure says where it comes from, because the cheap figures are proxies:
- flash: the flatbuffer plus the code of the kernels its operators need (DECODE included) plus
  TFLM's core, from the per-target code-size data (converter.tflm.footprint) when present; else
  the flatbuffer alone, marked as an estimate (it misses that DECODE's code can outweigh what LUT
  compression saves). When the firmware is built and run on the emulated core, the linked image's
  text + data replaces it;
- RAM: the arena TFLM's Python runtime needs on this 64-bit host (an estimate), or the arena the
  firmware reports on the emulated 32-bit core;
- latency: instructions per inference on the emulated core, when it ran.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

from ..errors import KitError
from ..runtimes.base import Deployed
from ..runtimes.registry import get_runtime
from ..runtimes.render import render_project
from ..runtimes.run import run_here

OBJECTIVES = ("flash", "ram", "latency")


@dataclass(frozen=True)
class DeployedCost:
    model_bytes: int
    flash_bytes: int
    flash_source: str             # "footprint data" | "linked image" | "flatbuffer only (estimate)"
    arena_bytes: int
    arena_source: str             # "host estimate" | "emulated target"
    kernel_bytes: Optional[int] = None
    core_bytes: Optional[int] = None
    # the host-side figure (footprint data, else the flatbuffer) for every trial, measured on device or not:
    # the one flash figure all trials of a search share, so fronts and plots compare like with like
    flash_estimate_bytes: Optional[int] = None
    arena_host_bytes: Optional[int] = None   # likewise for RAM: TFLM's Python runtime on this host
    instructions: Optional[int] = None
    device_pass: Optional[bool] = None   # the firmware's self-test on the emulated core, when it ran

    def value(self, objective: str) -> Optional[float]:
        return {"flash": self.flash_bytes, "ram": self.arena_bytes, "latency": self.instructions}[objective]

    def as_dict(self) -> dict:
        return asdict(self)


def _footprint(model_bytes: int, operators: list[str], arena: int, board: dict) -> Optional[Deployed]:
    """The TFLM runtime's deployed flash from its per-target code-size data, or None when there is none."""
    runtime = get_runtime("tflm")
    for target in (board.get("code_size"), board.get("core")):
        if not target:
            continue
        try:
            return runtime.price_model(model_bytes, operators, arena, target)
        except KitError:  # unknown target or operator in the data: try the next name, then give up
            continue
    return None


def host_cost(manifest: dict, board: dict) -> DeployedCost:
    """Cost from a conversion's manifest (no firmware built)."""
    model_bytes = int(manifest["model"]["bytes"])
    operators = sorted(manifest["model"]["operators"])
    arena = int(manifest["arena_bytes"])
    found = _footprint(model_bytes, operators, arena, board)
    if found is None:
        return DeployedCost(model_bytes, model_bytes, "flatbuffer only (estimate)", arena, "host estimate",
                            flash_estimate_bytes=model_bytes, arena_host_bytes=arena)
    return DeployedCost(model_bytes, found.flash.bytes, "footprint data", arena, "host estimate",
                        kernel_bytes=found.parts["kernels"], core_bytes=found.parts["core"],
                        flash_estimate_bytes=found.flash.bytes, arena_host_bytes=arena)


def device_available(board: dict) -> Optional[str]:
    """None when the board can be built and run here; else why not."""
    if board.get("runs_on") != "qemu" and board.get("name") != "cortex-m-qemu":
        return f"board {board.get('name')} is not emulated here (cortex-m-qemu is)"
    if not os.environ.get("TFLM_ROOT"):
        return "TFLM_ROOT is not set"
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def linked_image_bytes(project: Path) -> Optional[int]:
    """text + data of the linked image (what the MCU's flash holds)."""
    elves = sorted(project.glob("*.elf"))
    if not elves:
        return None
    sized = subprocess.run(["arm-none-eabi-size", str(elves[0])], capture_output=True, text=True)
    lines = sized.stdout.strip().splitlines()
    if sized.returncode != 0 or len(lines) < 2:
        return None
    text, data = (int(x) for x in lines[1].split()[:2])
    return text + data


def device_cost(cost: DeployedCost, model_dir: Path, board: str) -> DeployedCost:
    """Build the firmware for the emulated board, run its self-test, and take the measured figures."""
    with tempfile.TemporaryDirectory(prefix="tflm-kit-optimize-fw-") as folder:
        project = Path(folder) / "fw"
        render_project(board, model_dir, project)
        ran = run_here(project)
        image = ran.device.flash_bytes or linked_image_bytes(project)
    return replace(
        cost,
        flash_bytes=image if image is not None else cost.flash_bytes,
        flash_source="linked image" if image is not None else cost.flash_source,
        arena_bytes=ran.arena_used_bytes or cost.arena_bytes,
        arena_source="emulated target" if ran.arena_used_bytes else cost.arena_source,
        instructions=ran.instructions_per_inference,
        device_pass=ran.passed_all,
    )
