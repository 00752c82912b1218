"""What a candidate costs on the device: flash, RAM (arena) and instructions per inference.

Each figure says where it comes from, because the cheap figures are proxies:
- flash: the flatbuffer plus the code of the kernels its operators need (DECODE included) plus
  TFLM's core, from the per-target code-size data (converter.tflm.footprint) when present; else
  the flatbuffer alone, marked as an estimate (it misses that DECODE's code can outweigh what LUT
  compression saves). When the firmware is built and run on the emulated core, the linked image's
  text + data replaces it;
- RAM: the conversion's arena (derived for the Cortex-M4 from the model, or TFLM's Python runtime's on this
  64-bit host for a model the derivation does not model: an estimate), or the arena the firmware reports on
  the emulated 32-bit core;
- latency: instructions per inference on the emulated core, when it ran.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

from ..aot.graph import NotCompilable
from ..errors import KitError
from ..runtimes.base import Deployed, Figure
from ..runtimes.registry import get_runtime
from ..runtimes.render import render_project
from ..runtimes.run import run_here
from ..system.elf_size import image_size

# What a search minimises (`tflm-kit optimize --objective`); a partition's are partition/cost.CUT_OBJECTIVES.
SEARCH_OBJECTIVES = ("flash", "ram", "latency")


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


def _priced(runtime: str, model: bytes, arena: Figure, board: dict) -> Optional[Deployed]:
    """The runtime's deployed figures from its per-target code-size data, or None when there are none. A model
    the runtime cannot run at all (an operator outside the AOT set) is an error: priced by its flatbuffer alone
    it would look smaller than every candidate the runtime can deploy."""
    chosen = get_runtime(runtime)
    for target in (board.get("code_size"), board.get("core")):
        if not target:
            continue
        try:
            return chosen.price(model, arena, target)
        except NotCompilable:
            raise
        except KitError:  # unknown target or operator in the data: try the next name, then give up
            continue
    return None


def host_cost(manifest: dict, board: dict, model: bytes, runtime: str = "tflm") -> DeployedCost:
    """Cost from a conversion's manifest and model (no firmware built), as `runtime` deploys it."""
    model_bytes = int(manifest["model"]["bytes"])
    arena = int(manifest["arena_bytes"])
    # the conversion's figure says where it comes from (derived for the Cortex-M4 without a device check)
    source = ((manifest.get("arena") or {}).get("target") or {}).get("source") or "host estimate"
    found = _priced(runtime, model, Figure(arena, source), board)
    if found is None:
        return DeployedCost(model_bytes, model_bytes, "flatbuffer only (estimate)", arena, source,
                            flash_estimate_bytes=model_bytes, arena_host_bytes=arena)
    return DeployedCost(model_bytes, found.flash.bytes, "footprint data", found.ram.bytes, found.ram.source,
                        kernel_bytes=found.parts["kernels"], core_bytes=found.parts["core"],
                        flash_estimate_bytes=found.flash.bytes, arena_host_bytes=found.ram.bytes)


def device_available(board: dict, runtime: str = "tflm") -> Optional[str]:
    """None when the board can be built and run here with `runtime`; else why not."""
    if board.get("runs_on") != "qemu" and board.get("name") != "cortex-m-qemu":
        return f"board {board.get('name')} is not emulated here (cortex-m-qemu is)"
    for setting in get_runtime(runtime).needs(board).settings:
        if not os.environ.get(setting):
            return f"{setting} is not set"
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def linked_image_bytes(project: Path) -> Optional[int]:
    """text + data of the linked image (what the MCU's flash holds)."""
    elves = sorted(project.glob("*.elf"))
    if not elves:
        return None
    size = image_size(elves[0])
    return None if size is None else size.flash


def device_cost(cost: DeployedCost, model_dir: Path, board: str, runtime: str = "tflm") -> DeployedCost:
    """Build the firmware for the emulated board with `runtime`, run its self-test, and take the measured figures."""
    with tempfile.TemporaryDirectory(prefix="tflm-kit-optimize-fw-") as folder:
        project = Path(folder) / "fw"
        render_project(board, model_dir, project, runtime=runtime, measure=False)
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
