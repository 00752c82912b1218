"""Atomic output: artifacts are built in a hidden sibling folder and moved into place at the end.

A failed or interrupted run leaves the previous output untouched and no partial files; --force
replaces only a previous kit output (kit_outputs); one run at a time per folder (out_lock).
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import tempfile
from pathlib import Path

from ..errors import KitError
from . import kit_outputs, out_lock


# The errors a full disk or quota gives while writing: the user's to fix, not the kit's bug.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def disk_full_error(exc: OSError, where: Path | str | None) -> KitError:
    place = f" {where}" if where else ""
    return KitError(f"no space left while writing{place} ({exc.strerror}); nothing was written",
                    "free disk space (or quota) there, or choose another --out on a disk with room")


def _check_not_input(out: Path, inputs: tuple[Path, ...]) -> None:
    for source in inputs:
        source = Path(source).resolve()
        if out.resolve() == source or out.resolve() in source.parents:
            raise KitError(f"output directory {out} contains the input {source} and would overwrite it",
                           "choose an output directory that holds none of the run's inputs (model, data, "
                           "builders, the recipe)")


def _check_replaceable(out: Path, force: bool, resumes: str | None = None) -> None:
    """--force replaces a previous kit output, recognised by its record, and nothing else. A command that
    continues its own earlier output in place (`resumes`: optimize's search) needs no --force for it."""
    if not out.is_dir() or not any(out.iterdir()):
        return
    if resumes is not None:
        found = kit_outputs.recognise(out)
        if found is not None and found.kind == resumes:
            return
        raise KitError(f"output directory {out} already holds files that are not a {resumes} (it has no "
                       f"{resumes} record)", f"choose an empty or new directory (an earlier {resumes}'s "
                       "directory is continued)")
    if not force:
        raise KitError(f"output directory {out} already holds files",
                       "pass --force to replace it, or choose an empty or new directory")
    foreign = kit_outputs.foreign_files(out)
    if foreign is None:
        raise KitError(f"{out} is not a tflm-kit firmware project, conversion, golden or validation output "
                       "(it has no record of a kit run), refusing to replace it",
                       "choose another --out directory; --force only replaces what the kit wrote")
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise KitError(f"{out} holds files the kit did not write ({shown}), refusing to replace it",
                       "move those files out of it, or choose another --out directory")


def check_output_path(out: Path, force: bool, inputs: tuple[Path, ...] = (), resumes: str | None = None) -> None:
    """Refuse an --out that would lose anything, then lock it for this run (out_lock). Every command that
    writes a folder (convert, optimize, firmware, partition, golden record, validate --out) calls this first,
    before reading or writing anything else there: `inputs` are every file and folder the run reads."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise KitError(f"output path {out} is a file", "give a directory path with --out")
    _check_not_input(out, inputs)
    _check_replaceable(out, force, resumes)
    parent = out.resolve().parent
    while not parent.exists():
        parent = parent.parent
    # Probe with a real folder: os.access says yes to root even on a read-only file system.
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tflm-kit-probe-", dir=parent))
    except OSError as exc:
        raise KitError(f"cannot write under {parent} ({exc.strerror})",
                       "choose an output directory you can write to") from None
    out_lock.acquire(out)


def _user_mode() -> int:
    """Folder permissions the user's umask gives (mkdtemp makes 0700, which other users cannot read)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return 0o777 & ~mask


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
    """Yield a temporary folder; on success it replaces `out`, on any failure it is removed.
    A full disk becomes a KitError; the lock check_output_path took is released either way."""
    out = out.resolve()
    staging = retired = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}{out_lock.STAGING_MARK}", dir=out.parent))
        os.chmod(staging, _user_mode())
        yield staging
        if out.is_dir() and any(out.iterdir()):  # again: files may have appeared while the run worked
            _check_replaceable(out, force=True)
        with _signals_held():
            if out.exists():
                retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
                os.replace(out, retired / out.name)
            os.replace(staging, out)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise disk_full_error(exc, out) from None
        if exc.errno in NOT_WRITABLE:  # e.g. the folder was made read-only while the run worked
            raise KitError(f"cannot write {out} ({exc.strerror}); nothing was written",
                           "choose an output directory you can write to") from None
        raise
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if retired is not None and out.exists():
            shutil.rmtree(retired, ignore_errors=True)
        out_lock.release(out)
