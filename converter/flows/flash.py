"""`tflm-kit flash`: build a rendered firmware project and run or flash it.

host and the emulated Cortex-M boards (cortex-m-qemu: M4 on mps2-an386, cortex-m7-qemu: M7+FPU
on mps2-an500) are built and run here, their self-test output is parsed and compared bit for
bit with golden.npz, and the device numbers (flash, static RAM, arena used, instructions per
inference and per operator) go to device.json beside the firmware and into the project's
record. Other boards go through their ecosystem's tool when it is on PATH; otherwise the exact
command and how to install the tool are printed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

from converter.errors import KitError, foreign_text
from converter.flows.device import DEVICE_FILE, device_record, profile_table
from converter.system.elf_size import image_size
from converter.flows.firmware import RECORD_NAME, list_boards, load_board
from converter.flows.firmware_checks import is_c_name
from converter.flows.selftest import SelfTest, compare_with_golden, parse_selftest
from converter.system.safe_yaml import load_json_file

__all__ = ["flash", "build_and_run", "parse_selftest", "compare_with_golden", "build_error"]

RUN_TIMEOUT_S = 300
CROSS_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib"
_MAKE_ERROR = re.compile(r"^error: (.+?) — fix: (.+)$")      # the templates' own checks
_COMPILER_ERROR = re.compile(r"(^|: )(fatal )?error: |undefined reference to ")


def runs_on(board: str) -> str | None:
    """'host' or 'qemu' for boards built and run here, None for real hardware."""
    return load_board(board).get("runs_on")


def build_error(project: Path, output: str) -> KitError:
    """The build's own diagnosis: the templates' `error: ... — fix: ...` line, else the first compiler error."""
    lines = [line.strip() for line in output.splitlines()]
    for line in lines:
        if m := _MAKE_ERROR.match(line):
            return KitError(m.group(1), m.group(2))
    if any("undefined reference to `RegisterDebugLogCallback'" in line for line in lines):
        return KitError("the TFLM library has no RegisterDebugLogCallback (TFLM's TARGET=cortex_m_qemu library)",
                        "build TFLM with TARGET=cortex_m_generic (see the project's README.md)")
    first = next((line for line in lines if _COMPILER_ERROR.search(line)), None)
    if first is None:
        first = next((line for line in reversed(lines) if line), "(no output)")
    return KitError(f"building {project} failed: {foreign_text(first)}", f"see the full output of `make -C {project}`")


RERENDER = "re-render the project with `tflm-kit firmware --board BOARD --model-dir DIR --out FW`"
_SAFE_FOLDER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # model_subdir: one plain folder name, or "."
_ENV_REF = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")


def read_record(project: Path) -> dict:
    """The project's record, read with bounds and checked before any field reaches a path or a command:
    the board is a known profile, the model name a C identifier, the model folder one plain name."""
    record = load_json_file(project / RECORD_NAME, "firmware record", RERENDER)
    board, name, subdir = record.get("board"), record.get("name"), record.get("model_subdir")
    if not isinstance(board, str) or board not in list_boards():
        raise KitError(f"{project / RECORD_NAME} names no known board", RERENDER, code="record-board")
    if not is_c_name(name):
        raise KitError(f"{project / RECORD_NAME} has a model name that is not a C identifier", RERENDER,
                       code="record-name")
    if not isinstance(subdir, str) or not (subdir == "." or (_SAFE_FOLDER.match(subdir) and subdir != "..")):
        raise KitError(f"{project / RECORD_NAME} has a model folder that is not one plain folder name", RERENDER,
                       code="record-model-dir")
    return record


def _run(cmd: list[str], cwd: Path, timeout: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, text=True, capture_output=True, timeout=timeout)


def build_and_run(project: Path, tflm_root: str | None = None) -> tuple[SelfTest, dict]:
    """Build a host or emulated Cortex-M project, run it, parse its self-test. Returns (result, record)."""
    project = Path(project).resolve()
    record = read_record(project)
    where = runs_on(record["board"])
    if where is None:
        raise KitError(f"board '{record['board']}' cannot run on this machine", "use `tflm-kit flash` on it")
    tflm_root = tflm_root or os.environ.get("TFLM_ROOT")
    if not tflm_root:
        raise KitError("TFLM_ROOT is not set",
                       "export TFLM_ROOT=/path/to/tflite-micro (with the TFLM library built)")
    if where == "qemu":
        for tool, pkg in (("arm-none-eabi-gcc", CROSS_PACKAGES), ("qemu-system-arm", "qemu-system-arm")):
            if not shutil.which(tool):
                raise KitError(f"{tool} not found", f"apt-get install {pkg}")
    made = _run(["make", f"TFLM_ROOT={tflm_root}"], project)
    if made.returncode != 0:
        raise build_error(project, made.stderr + "\n" + made.stdout)
    cmd = ["./fw"] if where == "host" else ["make", "-s", "run"]
    try:
        ran = _run(cmd, project, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise KitError(f"{record['board']} firmware did not finish within {RUN_TIMEOUT_S} s",
                       "check the inference loop is bounded (INFERENCE_LOOP_ITERATIONS)") from None
    result = parse_selftest(ran.stdout + "\n" + ran.stderr)
    record["exit_status"] = ran.returncode
    return result, record


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


def _run_here(project: Path, tflm_root: str | None) -> dict:
    result, record = build_and_run(project, tflm_root)
    golden = project / record["model_subdir"] / "golden.npz"
    diffs = compare_with_golden(result, golden) if golden.is_file() else ["golden.npz missing"]
    passed = result.ok and not diffs and record["exit_status"] == 0
    size = image_size(project / "fw.elf") if runs_on(record["board"]) == "qemu" else None
    device = device_record({**record, "core": load_board(record["board"])["core"]}, result, passed, size)
    device.write(project)
    exit_status = record.pop("exit_status")
    (project / RECORD_NAME).write_text(json.dumps({**record, "device": asdict(device)}, indent=2) + "\n")
    return {"board": record["board"], "ran": True, "pass": passed, "passed": result.passed,
            "total": result.total, "arena_used_bytes": result.arena_used, "failures": result.failures,
            "instructions_per_inference": result.instructions_per_inference, "golden_differences": diffs,
            "exit_status": exit_status, "device": device}


def flash(project: Path, tflm_root: str | None = None) -> dict:
    """Run (host, QEMU) or flash (hardware) a rendered project. Returns a summary dict."""
    project = Path(project).resolve()
    if not (project / RECORD_NAME).is_file():
        raise KitError(f"{project} is not a rendered firmware project",
                       "render one first with `tflm-kit firmware --board BOARD --model-dir DIR --out FW`")
    record = read_record(project)
    if runs_on(record["board"]):
        return _run_here(project, tflm_root)
    tool, cmd, install, steps = _board_command(record, project)
    if shutil.which(tool) is None:
        return {"board": record["board"], "ran": False, "command": cmd,
                "missing_tool": tool, "install": install}
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
