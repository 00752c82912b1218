"""Run a command whose own children must not outlive it.

`make -s run` starts qemu-system-arm as its child; `subprocess.run(timeout=...)` kills only make, and the
emulator spun on at full CPU after a hung self-test (seen on the device-check probe). Here the command
gets a session (process group) of its own, and whatever ends the wait early -- the timeout, Ctrl-C, a
SIGTERM turned into an exception -- kills the whole group before it is passed on.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def run_group(cmd: list[str], cwd: Path | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, text=True, capture_output=True, timeout=timeout), with the group killed on the way out."""
    with subprocess.Popen(cmd, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except BaseException:
            kill_group(process)
            raise
    return subprocess.CompletedProcess(cmd, process.returncode, out, err)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL every process of `process`'s session, then reap the leader."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.communicate()
