"""One run at a time per output folder: an exclusive lock, held from the output check to the swap.

Two runs into the same --out would both stage and then swap, the second silently replacing
the first. The lock is taken when the output path is checked, before any work, and held until
the output is in place (or the process ends: the kernel drops a flock with its file).

The lock file lives in the user's own lock folder (LOCK_DIR), named after the output's path,
never beside the output: a run killed with SIGKILL cannot remove its file, and the user's folder
must not keep that litter. The file holds the owner's pid; a file whose owner is gone is stale,
does not block (its flock died with the process) and is removed by the next run that looks.
A SIGKILLed run's staging folder (`.<name>.partial-*`) is removed by the next run into the same
output, which holds the lock, so no live run can be staging there.
"""
from __future__ import annotations

import atexit
import fcntl
import functools
import glob
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import KitError

STAGING_MARK = ".partial-"  # outdir.staged_output names its staging folder `.<name>.partial-<random>`


def lock_dir() -> Path:
    """$XDG_RUNTIME_DIR/tflm-kit-locks (per user, cleared at logout) or <tmp>/tflm-kit-locks-<uid>."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "tflm-kit-locks" if runtime and Path(runtime).is_dir() \
        else Path(tempfile.gettempdir()) / f"tflm-kit-locks-{os.getuid()}"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    return base


def lock_path(out: Path) -> Path:
    return lock_dir() / f"{hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:32]}.lock"


@dataclass
class _Held:
    lock_file: Path
    descriptor: int


_HELD: dict[Path, _Held] = {}


def _owner(lock_file: Path) -> str:
    try:
        return lock_file.read_text().split("\n", 1)[0].strip() or "?"
    except OSError:
        return "?"


def sweep_stale(folder: Path | None = None) -> None:
    """Remove lock files in the lock folder no live process holds (each is tried with a non-blocking flock)."""
    for lock_file in (folder or lock_dir()).glob("*.lock"):
        try:
            descriptor = os.open(lock_file, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock_file.unlink(missing_ok=True)  # while locked, as release does
        except BlockingIOError:
            pass  # a live run holds it
        finally:
            os.close(descriptor)


def _remove_dead_staging(out: Path) -> None:
    """Staging folders of an earlier run into `out` that was killed: only the lock holder stages here."""
    if not out.parent.is_dir():
        return
    ours = re.compile(rf"\.{re.escape(out.name)}{re.escape(STAGING_MARK)}[a-z0-9_]{{8}}")  # mkdtemp's 8 characters
    for folder in out.parent.glob(f".{glob.escape(out.name)}{STAGING_MARK}*"):
        if ours.fullmatch(folder.name) and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)


def acquire(out: Path) -> None:
    """Lock `out` for this process; KitError when another run holds it. Re-entrant within a process."""
    out = out.resolve()
    if out in _HELD:
        return
    sweep_stale()
    lock_file = lock_path(out)
    while True:
        descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise KitError(f"another tflm-kit run is writing {out} (pid {_owner(lock_file)})",
                           "wait for it to finish, or choose another --out") from None
        # The holder before us may have removed the file after we opened it: lock the file that is there now.
        try:
            same = os.stat(lock_file).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n{out}\n".encode())
            _HELD[out] = _Held(lock_file, descriptor)
            _remove_dead_staging(out)
            return
        os.close(descriptor)


def release(out: Path) -> None:
    held = _HELD.pop(out.resolve(), None)
    if held is None:
        return
    try:
        held.lock_file.unlink(missing_ok=True)  # while still locked, so no one locks a file being removed
    finally:
        os.close(held.descriptor)


def release_all() -> None:
    for out in list(_HELD):
        release(out)


def released_after(function):
    """Decorate a flow that checks --out first and stages it last: every lock the call takes is released
    when it returns or fails (the CLI does this for its commands; this is for callers of the Python API)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        held_before = set(_HELD)
        try:
            return function(*args, **kwargs)
        finally:
            for out in set(_HELD) - held_before:
                release(out)
    return wrapper


atexit.register(release_all)
