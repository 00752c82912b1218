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

import click

from converter.errors import KitError, foreign_text
from converter.flows import rp2040
from converter.flows.device import DEVICE_FILE, device_record, image_size, profile_table
from converter.flows.firmware import RECORD_NAME, load_board
from converter.flows.selftest import SelfTest, compare_with_golden, parse_selftest

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


def _run(cmd: list[str], cwd: Path, timeout: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, text=True, capture_output=True, timeout=timeout)


def build_and_run(project: Path, tflm_root: str | None = None) -> tuple[SelfTest, dict]:
    """Build a host or emulated Cortex-M project, run it, parse its self-test. Returns (result, record)."""
    project = Path(project).resolve()
    record = json.loads((project / RECORD_NAME).read_text())
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


def _board_command(record: dict) -> tuple[str, str, str]:
    """(tool, command, install hint) for a board that is flashed with its own ecosystem."""
    profile = load_board(record["board"])
    fl = profile["flash"]
    # Plain replace, not str.format: commands contain shell ${VAR:-default} braces.
    cmd = fl["command"].replace("{project}", shlex.quote(record["project"]))
    cmd = cmd.replace("{name}", record["name"])
    return fl["tool"], cmd, fl["install"].replace("{name}", record["name"])


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


def _record_device(project: Path, record: dict, summary: dict) -> dict:
    """The project's record with its device numbers, as _run_here keeps it."""
    (project / RECORD_NAME).write_text(json.dumps({**record, "device": asdict(summary["device"])}, indent=2) + "\n")
    return summary


def flash(project: Path, tflm_root: str | None = None) -> dict:
    """Run (host, QEMU) or flash (hardware) a rendered project. Returns a summary dict."""
    project = Path(project).resolve()
    if not (project / RECORD_NAME).is_file():
        raise KitError(f"{project} is not a rendered firmware project",
                       "render one first with `tflm-kit firmware --board BOARD --model-dir DIR --out FW`")
    record = json.loads((project / RECORD_NAME).read_text())
    if runs_on(record["board"]):
        return _run_here(project, tflm_root)
    emulator_missing = ""
    if load_board(record["board"]).get("emulator") == "rp2040js":
        tools, emulator_missing = rp2040.find_tools()
        if tools is not None:  # else: flashed with picotool like any board
            return _record_device(project, record, rp2040.run_here(project, record, tools, tflm_root))
    tool, cmd, install = _board_command(record)
    if shutil.which(tool) is None:
        return {"board": record["board"], "ran": False, "command": cmd,
                "missing_tool": tool, "install": install, "emulator_missing": emulator_missing}
    done = subprocess.run(cmd, shell=True, cwd=project)
    return {"board": record["board"], "ran": True, "command": cmd,
            "pass": done.returncode == 0, "exit_status": done.returncode}


def _print_device(s: dict, project: Path) -> None:
    device = s["device"]
    click.echo(f"{s['board']}: {'PASS' if s['pass'] else 'FAIL'} {s['passed']}/{s['total']} vectors"
               + (" bit-identical to golden.npz" if s["pass"] else ""))
    if device.flash_bytes is not None:
        estimate = f" (budgeted {device.flash_estimate_bytes:,})" if device.flash_estimate_bytes else ""
        click.echo(f"  image: flash {device.flash_bytes:,} bytes (text+data){estimate}, "
                   f"static RAM {device.static_ram_bytes:,} bytes (data+bss, arena included)")
    click.echo(f"  arena used {device.arena_used_bytes} of {device.arena_size_bytes} bytes")
    if device.instructions_per_inference:
        click.echo(f"  {device.instructions_per_inference:,} instructions per inference "
                   "(QEMU -icount, median over the golden vectors)")
    if device.cycles_per_inference:
        click.echo(f"  {device.cycles_per_inference:,} cycles per inference (emulated {device.core} on"
                   f" {s.get('emulator')}, median over the golden vectors: an emulator estimate)")
    for row in profile_table(device):
        click.echo(row)
    click.echo(f"  recorded in {project / DEVICE_FILE}")


@click.command("flash")
@click.argument("project", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--board", help="Expected board; refused if the project was rendered for another one.")
@click.option("--tflm-root", envvar="TFLM_ROOT", help="TFLM checkout with the library built.")
def flash_command(project: Path, board: str | None, tflm_root: str | None) -> None:
    """Build and run (host, cortex-m-qemu, cortex-m7-qemu) or flash a rendered firmware PROJECT."""
    try:
        record_path = Path(project) / RECORD_NAME
        if board and record_path.is_file():
            rendered_for = json.loads(record_path.read_text())["board"]
            if rendered_for != board:
                raise KitError(f"{project} was rendered for {rendered_for}, not {board}",
                               f"render it for {board} with tflm-kit firmware --board {board}")
        s = flash(project, tflm_root)
    except KitError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None
    if not s["ran"]:
        click.echo(f"{s['missing_tool']} is not on PATH. Install it: {s['install']}")
        click.echo(f"Then run:\n  {s['command']}")
        if s.get("emulator_missing"):
            click.echo(f"To run it here on an emulated RP2040 instead, this machine needs: {s['emulator_missing']}")
        raise SystemExit(1)  # nothing was flashed
    if "device" in s:
        _print_device(s, Path(project).resolve())
        for line in s["failures"] + s["golden_differences"]:
            click.echo(f"  {line}")
    if not s["pass"]:
        raise SystemExit(1)
