"""`tflm-kit flash`: build a rendered firmware project and run or flash it.

host and the emulated Cortex-M boards (cortex-m-qemu: M4 on mps2-an386, cortex-m7-qemu: M7+FPU
on mps2-an500) are built and run here, their self-test output is parsed and compared bit for
bit with golden.npz, and the device numbers (flash, static RAM, arena used, instructions per
inference and per operator) go to device.json beside the firmware and into the project's
record. Other boards go through their ecosystem's tool when it is on PATH; otherwise the exact
command and how to install the tool are printed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from converter.errors import KitError
from converter.runtimes import rp2040
from converter.runtimes.boards import RECORD_NAME, list_boards, load_board
from converter.runtimes.device import DEVICE_FILE, profile_table
from converter.runtimes.run import read_record, run_here, runs_on

__all__ = ["flash", "device_lines", "check_rendered_for"]

_ENV_REF = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")

def _expand_env(argument: str) -> str:
    """$VAR and ${VAR:-default} of a board's command template, expanded here, not by a shell."""
    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        return os.environ.get(name) or (m.group(2) or "")
    return _ENV_REF.sub(value, argument)


def _board_steps(template: str, project: Path, name: str) -> list[list[str]]:
    """The board profile's command (kit-written: steps joined by &&) as argument lists. The template is split
    before the project path and model name go in, so no field of a record is ever read by a shell."""
    steps: list[list[str]] = [[]]
    for token in shlex.split(template):
        if token == "&&":
            steps.append([])
            continue
        steps[-1].append(_expand_env(token).replace("{project}", str(project)).replace("{name}", name))
    return [step for step in steps if step]


def _board_command(record: dict, project: Path) -> tuple[str, str, str, list[list[str]]]:
    """(tool, command shown, install hint, argument lists) for a board flashed with its own ecosystem.
    `project` is the folder the user named (a copied project builds itself, not the folder it was rendered to)."""
    fl = load_board(record["board"])["flash"]
    # Plain replace, not str.format: commands contain shell ${VAR:-default} braces.
    shown = fl["command"].replace("{project}", shlex.quote(str(project))).replace("{name}", record["name"])
    steps = _board_steps(fl["command"], project, record["name"])
    return fl["tool"], shown, fl["install"].replace("{name}", record["name"]), steps


def _run_steps(steps: list[list[str]], project: Path, install: str) -> int:
    """Run the steps in order, as `&&` would: the first failing one's exit status, else 0."""
    for step in steps:
        try:
            status = subprocess.run(step, cwd=project).returncode
        except FileNotFoundError:
            raise KitError(f"{step[0]} is not on PATH (a step of flashing this board)", f"install: {install}") from None
        if status != 0:
            return status
    return 0


def flash(project: Path, tflm_root: str | None = None) -> dict:
    """Run (host, QEMU) or flash (hardware) a rendered project. Returns a summary dict."""
    project = Path(project).resolve()
    if not (project / RECORD_NAME).is_file():
        raise KitError(f"{project} is not a rendered firmware project",
                       "render one first with `tflm-kit firmware --board BOARD --model-dir DIR --out FW`")
    record = read_record(project)
    if runs_on(record["board"]):
        return run_here(project, tflm_root).as_dict()
    emulator_missing = ""
    if load_board(record["board"]).get("emulator") == "rp2040js":
        tools, emulator_missing = rp2040.find_tools()
        if tools is not None:  # else: flashed with picotool like any board
            return rp2040.run_here(project, tools, tflm_root)
    tool, cmd, install, steps = _board_command(record, project)
    if shutil.which(tool) is None:
        return {"board": record["board"], "ran": False, "command": cmd,
                "missing_tool": tool, "install": install, "emulator_missing": emulator_missing}
    status = _run_steps(steps, project, install)
    return {"board": record["board"], "ran": True, "command": cmd, "pass": status == 0, "exit_status": status}


def device_lines(s: dict, project: Path) -> list[str]:
    """What `tflm-kit flash` prints after a run on an emulated core: the verdict, the image and the arena."""
    device = s["device"]
    lines = [f"{s['board']}: {'PASS' if s['pass'] else 'FAIL'} {s['passed']}/{s['total']} vectors"
             + (" bit-identical to golden.npz" if s["pass"] else "")]
    if device.flash_bytes is not None:
        estimate = f" (budgeted {device.flash_estimate_bytes:,})" if device.flash_estimate_bytes else ""
        lines.append(f"  image: flash {device.flash_bytes:,} bytes (text+data){estimate}, "
                     f"static RAM {device.static_ram_bytes:,} bytes (data+bss, arena included)")
    lines.append(f"  arena used {device.arena_used_bytes} of {device.arena_size_bytes} bytes")
    if device.instructions_per_inference:
        lines.append(f"  {device.instructions_per_inference:,} instructions per inference "
                     "(QEMU -icount, median over the golden vectors)")
    if device.cycles_per_inference:
        lines.append(f"  {device.cycles_per_inference:,} cycles per inference (emulated {device.core} on"
                     f" {s.get('emulator')}, median over the golden vectors: an emulator estimate)")
    lines += profile_table(device)
    lines.append(f"  recorded in {project / DEVICE_FILE}")
    return lines


def check_rendered_for(project: Path, board: str | None) -> None:
    """`flash --board B`: refuse an unknown board, or a project rendered for another board."""
    if board is not None and board not in list_boards():
        raise KitError("--board names no known board profile", f"use one of: {', '.join(list_boards())}")
    if board and (Path(project) / RECORD_NAME).is_file():
        rendered_for = read_record(Path(project).resolve())["board"]
        if rendered_for != board:
            raise KitError(f"{project} was rendered for {rendered_for}, not {board}",
                           f"render it for {board} with tflm-kit firmware --board {board}")
