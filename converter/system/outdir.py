"""Atomic output: artifacts are built in a hidden sibling folder and moved into place at the end.

A failed or interrupted run leaves the previous output untouched and no partial files.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

from ..errors import KitError


def check_output_path(out: Path, force: bool, inputs: tuple[Path, ...] = ()) -> None:
    if out.exists() and not out.is_dir():
        raise KitError(f"output path {out} is a file", "give a directory path with --out")
    for source in inputs:
        source = source.resolve()
        if out.resolve() == source or out.resolve() in source.parents:
            raise KitError(f"output directory {out} contains the input {source} and would overwrite it",
                           "choose an output directory outside the model's folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise KitError(f"output directory {out} already holds files",
                       "pass --force to replace it, or choose an empty or new directory")
    parent = out.resolve().parent
    while not parent.exists():
        parent = parent.parent
    # Probe with a real folder: os.access says yes to root even on a read-only file system.
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tflm-kit-probe-", dir=parent))
    except OSError as exc:
        raise KitError(f"cannot write under {parent} ({exc.strerror})",
                       "choose an output directory you can write to") from None


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT/SIGTERM for the two renames of a swap: between them `out` is briefly absent,
    and an interrupt there would leave neither the old output nor the new one in place."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def staged_output(out: Path):
    """Yield a temporary folder; on success it replaces `out`, on any failure it is removed."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    retired = None
    try:
        yield staging
        with _signals_held():
            if out.exists():
                retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
                os.replace(out, retired / out.name)
            os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if retired is not None and out.exists():
            shutil.rmtree(retired, ignore_errors=True)
