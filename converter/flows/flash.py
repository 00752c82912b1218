"""`tflm-kit flash`: build a rendered firmware project and run or flash it.

host and cortex-m-qemu are built and run here, and their self-test output is parsed and
compared bit for bit with golden.npz. Other boards go through their ecosystem's tool when
it is on PATH; otherwise the exact command and how to install the tool are printed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from converter.errors import KitError
from converter.flows.firmware import RECORD_NAME, load_board

RUNNABLE = ("host", "cortex-m-qemu")
RUN_TIMEOUT_S = 300

_OUT = re.compile(r"^OUT (\d+) (\d+) (\d+) ([0-9a-f]*)$")
_SUMMARY = re.compile(r"^(PASS|FAIL) (\d+)/(\d+)")
_ARENA = re.compile(r"^ARENA used (\d+) of (\d+) bytes$")
_TICKS = re.compile(r"^TICKS (\d+) (\d+)$")
# cortex-m-qemu runs with -icount shift=0 (1 instruction per virtual ns) and MPS2's SysTick
# counts at 25 MHz: one tick is 40 instructions.
INSTRUCTIONS_PER_QEMU_TICK = 40


@dataclass
class SelfTest:
    passed: int = 0
    total: int = 0
    ok: bool = False
    arena_used: int | None = None
    arena_size: int | None = None
    outputs: dict[tuple[int, int], bytes] = field(default_factory=dict)  # (vector, output) -> bytes
    ticks: dict[int, int] = field(default_factory=dict)  # vector -> SysTick ticks of its Invoke()
    failures: list[str] = field(default_factory=list)
    log: str = ""


def parse_selftest(text: str) -> SelfTest:
    """Parse what the firmware's main.cc prints; tolerant of \\r\\n and interleaved logs."""
    result, chunks = SelfTest(log=text), {}
    for line in (raw.strip() for raw in text.splitlines()):
        if m := _OUT.match(line):
            v, j, offset = (int(g) for g in m.groups()[:3])
            chunks.setdefault((v, j), {})[offset] = bytes.fromhex(m.group(4))
        elif line.startswith("FAIL vector") or line.startswith("ERROR"):
            result.failures.append(line)
        elif m := _SUMMARY.match(line):
            result.ok = m.group(1) == "PASS"
            result.passed, result.total = int(m.group(2)), int(m.group(3))
        elif m := _ARENA.match(line):
            result.arena_used, result.arena_size = int(m.group(1)), int(m.group(2))
        elif m := _TICKS.match(line):
            result.ticks[int(m.group(1))] = int(m.group(2))
    for key, parts in chunks.items():
        result.outputs[key] = b"".join(parts[o] for o in sorted(parts))
    return result


def compare_with_golden(result: SelfTest, golden_npz: Path) -> list[str]:
    """Differences between printed outputs and golden.npz's output_<j>; empty when bit-identical."""
    problems = []
    with np.load(golden_npz) as golden:
        outputs = sorted((k for k in golden.files if k.startswith("output_")),
                         key=lambda k: int(k.split("_")[1]))
        for key in outputs:
            j, expected = int(key.split("_")[1]), golden[key]
            for v in range(expected.shape[0]):
                want = np.ascontiguousarray(expected[v]).tobytes()
                got = result.outputs.get((v, j))
                if got is None:
                    problems.append(f"vector {v} output {j}: not printed by the firmware")
                elif got != want:
                    k = next(i for i in range(min(len(got), len(want)) + 1)
                             if i == min(len(got), len(want)) or got[i] != want[i])
                    problems.append(f"vector {v} output {j}: first differing byte {k}")
    return problems


def _run(cmd: list[str], cwd: Path, timeout: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, text=True, capture_output=True, timeout=timeout)


def build_and_run(project: Path, tflm_root: str | None = None) -> tuple[SelfTest, dict]:
    """Build a host or cortex-m-qemu project, run it, parse its self-test. Returns (result, record)."""
    project = Path(project).resolve()
    record = json.loads((project / RECORD_NAME).read_text())
    board = record["board"]
    if board not in RUNNABLE:
        raise KitError(f"board '{board}' cannot run on this machine", "use `tflm-kit flash` on it")
    tflm_root = tflm_root or os.environ.get("TFLM_ROOT")
    if not tflm_root:
        raise KitError("TFLM_ROOT is not set",
                       "export TFLM_ROOT=/path/to/tflite-micro (with the TFLM library built)")
    if board == "cortex-m-qemu":
        for tool, pkg in (("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi "
                           "libstdc++-arm-none-eabi-newlib"), ("qemu-system-arm", "qemu-system-arm")):
            if not shutil.which(tool):
                raise KitError(f"{tool} not found", f"apt-get install {pkg}")
    made = _run(["make", f"TFLM_ROOT={tflm_root}"], project)
    if made.returncode != 0:
        tail = (made.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise KitError(f"building {project} failed: {tail}", f"see `make -C {project}` output")
    cmd = ["./fw"] if board == "host" else ["make", "-s", "run"]
    try:
        ran = _run(cmd, project, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise KitError(f"{board} firmware did not finish within {RUN_TIMEOUT_S} s",
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


def flash(project: Path, tflm_root: str | None = None) -> dict:
    """Run (host, QEMU) or flash (hardware) a rendered project. Returns a summary dict."""
    project = Path(project).resolve()
    if not (project / RECORD_NAME).is_file():
        raise KitError(f"{project} is not a rendered firmware project",
                       "render one first with `tflm-kit firmware --board BOARD --model-dir DIR --out FW`")
    record = json.loads((project / RECORD_NAME).read_text())
    if record["board"] in RUNNABLE:
        result, record = build_and_run(project, tflm_root)
        golden = project / record["model_subdir"] / "golden.npz"
        diffs = compare_with_golden(result, golden) if golden.is_file() else ["golden.npz missing"]
        return {"board": record["board"], "ran": True, "pass": result.ok and not diffs
                and record["exit_status"] == 0, "passed": result.passed, "total": result.total,
                "arena_used_bytes": result.arena_used, "failures": result.failures,
                "instructions_per_inference": (int(np.median(list(result.ticks.values()))) * INSTRUCTIONS_PER_QEMU_TICK
                                               if result.ticks else None),
                "golden_differences": diffs, "exit_status": record["exit_status"]}
    tool, cmd, install = _board_command(record)
    if shutil.which(tool) is None:
        return {"board": record["board"], "ran": False, "command": cmd,
                "missing_tool": tool, "install": install}
    done = subprocess.run(cmd, shell=True, cwd=project)
    return {"board": record["board"], "ran": True, "command": cmd,
            "pass": done.returncode == 0, "exit_status": done.returncode}


@click.command("flash")
@click.argument("project", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--board", help="Expected board; refused if the project was rendered for another one.")
@click.option("--tflm-root", envvar="TFLM_ROOT", help="TFLM checkout with the library built.")
def flash_command(project: Path, board: str | None, tflm_root: str | None) -> None:
    """Build and run (host, cortex-m-qemu) or flash a rendered firmware PROJECT."""
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
        raise SystemExit(1)  # nothing was flashed
    if "passed" in s:
        click.echo(f"{s['board']}: {'PASS' if s['pass'] else 'FAIL'} {s['passed']}/{s['total']}"
                   f" vectors, arena used {s['arena_used_bytes']} bytes")
        if s.get("instructions_per_inference"):
            click.echo(f"  about {s['instructions_per_inference']:,} instructions per inference "
                       "(QEMU -icount, median over the golden vectors)")
        for line in s["failures"] + s["golden_differences"]:
            click.echo(f"  {line}")
    if not s["pass"]:
        raise SystemExit(1)
