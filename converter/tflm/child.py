"""The one door to child processes: run a kit function on an untrusted model where a crash or a
hang cannot take the kit's own process with it.

Parent and child talk through files in a private temporary folder (request.json and
arrays.npz in; result.json and result.npz, or error.json, out) and typed events on the child's
stdout (one JSON object per line; native code that prints on stdout is moved to stderr first).
A KitError in the child comes back as the same problem and fix; a crash as ChildCrashed with
the signal and the last event; a hang past the time limit as ChildTimedOut.

The child starts with `python -P -c <bootstrap>`: -P keeps the working directory (and the
script directory) off sys.path, and the bootstrap puts the directory holding this very
`converter` package first, so a `converter/` folder wherever the user runs the kit is never
imported, whether the kit runs from a git checkout with PYTHONPATH, an editable install or a wheel.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import CheckFailed, KitError
from ..inputs.npz import save_npz

TIMEOUT_VARIABLE = "TFLM_KIT_CHILD_TIMEOUT"
FOLDER_PREFIX = "tflm-kit-child-"
KIT_ROOT = str(Path(__file__).resolve().parents[2])  # the directory that holds the `converter` package
# Everything relative (or empty: the working directory) leaves sys.path before `converter` is imported.
BOOTSTRAP = ("import os, sys; sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p and os.path.isabs(p)]; "
             "from converter.tflm.child import child_main; child_main(sys.argv[2])")


@dataclass(frozen=True)
class ChildEvent:
    kind: str                  # "progress" (a line for the user) or a task's own kind, e.g. "probe"
    message: str = ""
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ChildResult:
    value: dict
    arrays: dict[str, np.ndarray]


class ChildCrashed(KitError):
    """The child died by a signal (a runtime segfault or abort on a malformed model)."""

    def __init__(self, problem: str, fix: str, signal_name: str, last_event: ChildEvent | None):
        super().__init__(problem, fix)
        self.signal_name, self.last_event = signal_name, last_event


class ChildTimedOut(KitError):
    """The child ran past its time limit and was killed."""


class ChildFailed(RuntimeError):
    """An unexpected exception in the child (a kit bug, not bad input): carries the child's traceback."""


Emit = Callable[..., None]  # emit(kind, message="", **data) from inside a task
Task = Callable[[dict, dict, Emit], "tuple[dict, dict[str, np.ndarray]]"]


def child_timeout(default_seconds: float) -> float:
    """The caller's limit (scaled to its model and work) unless the user set TFLM_KIT_CHILD_TIMEOUT."""
    override = os.environ.get(TIMEOUT_VARIABLE)
    if not override:
        return default_seconds
    try:
        seconds = float(override)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise KitError(f"{TIMEOUT_VARIABLE}={override!r} is not a positive number of seconds",
                       f"set {TIMEOUT_VARIABLE} to e.g. 600, or unset it for a limit scaled to the model")
    return seconds


def _sweep_stale_folders() -> None:
    """Remove folders left by kit processes that were SIGKILLed (the one exit no cleanup survives)."""
    root = Path(tempfile.gettempdir())
    for folder in root.glob(f"{FOLDER_PREFIX}*-*"):
        try:
            pid = int(folder.name[len(FOLDER_PREFIX):].split("-")[0])
            if folder.is_symlink() or folder.lstat().st_uid != os.getuid() or pid == os.getpid():
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, OSError):
            continue


def _read_events(stream, events: list, on_event: Callable[[ChildEvent], None]) -> None:
    for line in stream:
        try:
            raw = json.loads(line)
            event = ChildEvent(str(raw["kind"]), str(raw.get("message", "")), dict(raw.get("data", {})))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # not an event (the protocol moves native prints away; be lenient anyway)
        events.append(event)
        on_event(event)


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _outcome(folder: Path, returncode: int, what: str, events: list[ChildEvent]) -> ChildResult:
    if returncode == 0 and (folder / "result.json").is_file():
        return ChildResult(json.loads((folder / "result.json").read_text()), _load_arrays(folder / "result.npz"))
    if returncode < 0:
        name = signal.Signals(-returncode).name
        last = events[-1] if events else None
        raise ChildCrashed(f"{what} crashed ({name})" + (f" while {last.message}" if last and last.message else ""),
                           "re-export the model; the kit's own process was not affected", name, last)
    error_path = folder / "error.json"
    if error_path.is_file():
        error = json.loads(error_path.read_text())
        if error["kind"] == "KitError":
            raise KitError(error["problem"], error["fix"], code=error.get("code"))  # the child's kind
        if error["kind"] == "CheckFailed":
            raise CheckFailed(error["message"])
        raise ChildFailed(f"{what} failed in its child process:\n{error['traceback']}")
    printed = (folder / "stderr.txt").read_text(errors="replace")
    raise ChildFailed(f"{what} failed in its child process (exit {returncode}):\n{printed[-4000:]}")


def run_in_child(task: Task, arguments: dict, arrays: dict[str, np.ndarray] | None = None, *, what: str,
                 timeout: float, log: Callable[[str], None] | None = None,
                 on_event: Callable[[ChildEvent], None] | None = None) -> ChildResult:
    """Run `task(arguments, arrays, emit)` in a fresh interpreter and return what it returned.

    task: a module-level function of the kit; arguments: JSON-able; what: how errors name the work
    ("validating model.tflite"); timeout: seconds before the child is killed (scale it to the model:
    TFLM_KIT_CHILD_TIMEOUT overrides it); log: receives the task's progress messages.
    """
    if not task.__module__.startswith("converter."):
        raise ValueError(f"child tasks are kit functions, not {task.__module__}.{task.__qualname__}")
    timeout = child_timeout(timeout)
    _sweep_stale_folders()

    def deliver(event: ChildEvent) -> None:
        if event.kind == "progress" and log is not None:
            log(event.message)
        if on_event is not None:
            on_event(event)

    folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
    child = None
    try:
        (folder / "request.json").write_text(json.dumps({"task": f"{task.__module__}:{task.__qualname__}",
                                                         "arguments": arguments}))
        save_npz(folder / "arrays.npz", arrays or {})
        events: list[ChildEvent] = []
        with open(folder / "stderr.txt", "w") as errors:
            child = subprocess.Popen([sys.executable, "-P", "-c", BOOTSTRAP, KIT_ROOT, str(folder)], cwd=folder,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, text=True)
            reader = threading.Thread(target=_read_events, args=(child.stdout, events, deliver), daemon=True)
            reader.start()
            try:
                returncode = child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                raise ChildTimedOut(f"{what} took over {timeout:g} s (hang?)",
                                    "check the model (a loop or a huge tensor makes it unusable on an MCU), or "
                                    f"allow more time with {TIMEOUT_VARIABLE}=<seconds>") from None
            finally:
                reader.join(5)
                child.stdout.close()
        return _outcome(folder, returncode, what, events)
    finally:
        if child is not None and child.poll() is None:  # interrupted (Ctrl-C, SIGTERM): no orphan left running
            child.kill()
            child.wait()
        shutil.rmtree(folder, ignore_errors=True)


def child_main(folder: str) -> None:
    """Child side: run the requested task; write its result, or its error, as files."""
    folder = Path(folder)
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # native code printing on stdout would corrupt the event stream

    def emit(kind: str = "progress", message: str = "", **data) -> None:
        events.write(json.dumps({"kind": kind, "message": message, "data": data}) + "\n")

    def write_error(error: dict, exit_code: int) -> None:
        (folder / "error.json").write_text(json.dumps(error))
        events.close()
        sys.exit(exit_code)

    try:
        import importlib

        request = json.loads((folder / "request.json").read_text())
        module_name, _, name = request["task"].partition(":")
        if not module_name.startswith("converter."):
            raise ValueError(f"refusing to run {request['task']}: not a kit function")
        task = getattr(importlib.import_module(module_name), name)
        value, arrays = task(request["arguments"], _load_arrays(folder / "arrays.npz"), emit)
        save_npz(folder / "result.npz", arrays)
        (folder / "result.json").write_text(json.dumps(value))  # written last: its presence means success
    except KitError as error:
        write_error({"kind": "KitError", "problem": error.problem, "fix": error.fix, "code": error.kind}, 2)
    except CheckFailed as failed:
        write_error({"kind": "CheckFailed", "message": str(failed)}, 3)
    except BaseException:  # noqa: B902 - a kit bug: the parent shows the traceback
        write_error({"kind": "unexpected", "traceback": traceback.format_exc()}, 1)
    events.close()
