"""Build a rendered host or emulated Cortex-M project, run its self-test and record the device numbers.

host and the emulated Cortex-M boards (cortex-m-qemu: M4 on mps2-an386, cortex-m7-qemu: M7+FPU on
mps2-an500, cortex-m0plus-qemu: Armv6-M code on mps2-an385) are built and run here, whatever the
runtime: the self-test output is parsed and compared bit for bit with golden.npz, and the device
numbers (flash, static RAM, arena used, instructions per inference and per operator) go to
device.json beside the firmware and into the project's record. `flows/flash.py` (the command) and
`optimize`/`partition` (which measure candidates) both come here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import KitError, foreign_text
from ..system.process_group import run_group
from ..system.safe_yaml import load_json_file
from .boards import RECORD_NAME, list_boards, load_board
from .facts import is_c_name
from ..system.elf_size import image_size
from .device import DeviceRecord, device_record
from .registry import get_runtime
from .selftest import SelfTest, compare_with_golden, parse_selftest

RUN_TIMEOUT_S = 300
CROSS_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib"
_MAKE_ERROR = re.compile(r"^error: (.+?) — fix: (.+)$")      # the templates' own checks
_COMPILER_ERROR = re.compile(r"(^|: )(fatal )?error: |undefined reference to ")
# How to set each setting a runtime's build reads, for the error when it is missing.
SETTING_FIXES = {"TFLM_ROOT": "export TFLM_ROOT=/path/to/tflite-micro (with the TFLM library built)",
                 "CMSIS_NN_ROOT": "export CMSIS_NN_ROOT=/path/to/CMSIS-NN (git clone "
                                  "https://github.com/ARM-software/CMSIS-NN)"}


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
    """`make run` starts QEMU as its child: on a timeout both go (system/process_group.py)."""
    return run_group(cmd, cwd, timeout)


def build_settings(record: dict, tflm_root: str | None = None) -> list[str]:
    """`NAME=value` for every setting the project's runtime needs; KitError naming the first one missing."""
    board = load_board(record["board"])
    values = {"TFLM_ROOT": tflm_root or os.environ.get("TFLM_ROOT")}
    settings = []
    for name in get_runtime(record.get("runtime", "tflm")).needs(board).settings:
        value = values.get(name) or os.environ.get(name)
        if not value:
            raise KitError(f"{name} is not set", SETTING_FIXES.get(name, f"export {name}=..."))
        settings.append(f"{name}={value}")
    return settings


def build_and_run(project: Path, tflm_root: str | None = None) -> tuple[SelfTest, dict]:
    """Build a host or emulated Cortex-M project, run it, parse its self-test. Returns (result, record)."""
    project = Path(project).resolve()
    record = read_record(project)
    where = runs_on(record["board"])
    if where is None:
        raise KitError(f"board '{record['board']}' cannot run on this machine", "use `tflm-kit flash` on it")
    settings = build_settings(record, tflm_root)
    if where == "qemu":
        for tool, pkg in (("arm-none-eabi-gcc", CROSS_PACKAGES), ("qemu-system-arm", "qemu-system-arm")):
            if not shutil.which(tool):
                raise KitError(f"{tool} not found", f"apt-get install {pkg}")
    made = _run(["make", *settings], project)
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


@dataclass
class RunSummary:
    """What one build-and-run of a rendered project gave."""
    board: str
    passed_all: bool
    passed: int
    total: int
    arena_used_bytes: int | None
    instructions_per_inference: int | None
    exit_status: int
    device: DeviceRecord
    failures: list[str] = field(default_factory=list)
    golden_differences: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The summary `flash()` has always returned (keys `ran` and `pass` included)."""
        return {"board": self.board, "ran": True, "pass": self.passed_all, "passed": self.passed,
                "total": self.total, "arena_used_bytes": self.arena_used_bytes, "failures": self.failures,
                "instructions_per_inference": self.instructions_per_inference,
                "golden_differences": self.golden_differences, "exit_status": self.exit_status,
                "device": self.device}


def run_here(project: Path, tflm_root: str | None = None) -> RunSummary:
    """Build and run a host/QEMU project, compare with golden.npz, write device.json and the record."""
    project = Path(project).resolve()
    result, record = build_and_run(project, tflm_root)
    golden = project / record["model_subdir"] / "golden.npz"
    diffs = compare_with_golden(result, golden) if golden.is_file() else ["golden.npz missing"]
    passed = result.ok and not diffs and record["exit_status"] == 0
    size = image_size(project / "fw.elf") if runs_on(record["board"]) == "qemu" else None
    device = device_record({**record, "core": load_board(record["board"])["core"]}, result, passed, size)
    device.write(project)
    exit_status = record.pop("exit_status")
    (project / RECORD_NAME).write_text(json.dumps({**record, "device": asdict(device)}, indent=2) + "\n")
    return RunSummary(record["board"], passed, result.passed, result.total, result.arena_used,
                      result.instructions_per_inference, exit_status, device, result.failures, diffs)
