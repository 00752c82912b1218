"""A command's children go with it when its wait ends early (QEMU under `make run` used to outlive the timeout)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from converter.system.process_group import run_group


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_a_timeout_kills_the_grandchild_too(tmp_path):
    pid_file = tmp_path / "pid"
    script = f"sleep 60 >/dev/null 2>&1 & echo $! > {pid_file}; wait"
    with pytest.raises(subprocess.TimeoutExpired):
        run_group(["sh", "-c", script], timeout=1)
    grandchild = int(pid_file.read_text())
    for _ in range(50):
        if not _alive(grandchild):
            break
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_a_finished_command_reads_as_subprocess_run(tmp_path):
    done = run_group(["sh", "-c", "echo out; echo err >&2; exit 3"], cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
