"""One run at a time per output folder: an exclusive lock on `.<name>.lock` beside it.

Two runs into the same --out would both stage and then swap, the second silently replacing
the first. The lock is taken when the output path is checked, before any work, and held until
the output is in place (or the process ends: the kernel drops a flock with its file).
"""
from __future__ import annotations

import atexit
import fcntl
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import KitError


@dataclass
class _Held:
    lock_file: Path
    descriptor: int
    created: list[Path]  # folders made to hold the lock file, removed again if still empty


_HELD: dict[Path, _Held] = {}


def _make_parents(folder: Path) -> list[Path]:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
    return missing  # innermost first


def acquire(out: Path) -> None:
    """Lock `out` for this process; KitError when another run holds it. Re-entrant within a process."""
    out = out.resolve()
    if out in _HELD:
        return
    lock_file = out.parent / f".{out.name}.lock"
    created = _make_parents(out.parent)
    while True:
        descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise KitError(f"another tflm-kit run is writing {out} (it holds {lock_file})",
                           "wait for it to finish, or choose another --out") from None
        # The holder before us may have removed the file after we opened it: lock the file that is there now.
        try:
            same = os.stat(lock_file).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            same = False
        if same:
            _HELD[out] = _Held(lock_file, descriptor, created)
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
    for folder in held.created:
        try:
            folder.rmdir()  # only if the run left it empty
        except OSError:
            break


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
