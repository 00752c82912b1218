"""`tflm-kit flash`: build a rendered firmware project and run or flash it.

host and the emulated Cortex-M boards are built and run here by runtimes/run.py (self-test
compared bit for bit with golden.npz, device.json written), whichever runtime the project was
rendered with. Other boards go through their ecosystem's tool when it is on PATH; otherwise the
exact command and how to install the tool are printed.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import click

from converter.errors import KitError
from converter.runtimes import rp2040
from converter.runtimes.boards import RECORD_NAME, load_board
from converter.runtimes.device import DEVICE_FILE, profile_table
from converter.runtimes.run import run_here, runs_on

__all__ = ["flash", "flash_command"]


def _board_command(record: dict) -> tuple[str, str, str]:
    """(tool, command, install hint) for a board that is flashed with its own ecosystem."""
    profile = load_board(record["board"])
    fl = profile["flash"]
    # Plain replace, not str.format: commands contain shell ${VAR:-default} braces.
    cmd = fl["command"].replace("{project}", shlex.quote(record["project"]))
    cmd = cmd.replace("{name}", record["name"])
    return fl["tool"], cmd, fl["install"].replace("{name}", record["name"])


def flash(project: Path, tflm_root: str | None = None) -> dict:
    """Run (host, QEMU) or flash (hardware) a rendered project. Returns a summary dict."""
    project = Path(project).resolve()
    if not (project / RECORD_NAME).is_file():
        raise KitError(f"{project} is not a rendered firmware project",
                       "render one first with `tflm-kit firmware --board BOARD --model-dir DIR --out FW`")
    record = json.loads((project / RECORD_NAME).read_text())
    if runs_on(record["board"]):
        return run_here(project, tflm_root).as_dict()
    emulator_missing = ""
    if load_board(record["board"]).get("emulator") == "rp2040js":
        tools, emulator_missing = rp2040.find_tools()
        if tools is not None:  # else: flashed with picotool like any board
            return rp2040.run_here(project, tools, tflm_root)
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
    """Build and run (host and the emulated Cortex-M boards) or flash a rendered firmware PROJECT (tflm or aot)."""
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
