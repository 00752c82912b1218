"""Measure the smallest tensor arena with which TFLM allocates and invokes a model.

The bisection runs in a child process: with some too-small arenas TFLM does not fail
cleanly but crashes (seen here: a segfault in the interpreter constructor for a
FULLY_CONNECTED autoencoder at 4,096 bytes). A crash counts as "does not fit" and the
search resumes in a new child from where it stopped.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..errors import KitError

ALIGNMENT = 16
START = 1024
LIMIT = 64 << 20


def _fits(model_bytes: bytes, arena_size: int, sample: list[np.ndarray]) -> bool:
    from tflite_micro.python.tflite_micro import runtime

    try:
        interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size)
        for index, x in enumerate(sample):
            interpreter.set_input(x, index)
        interpreter.invoke()
        return True
    except RuntimeError:
        return False


def next_size(low: int, high: int | None) -> int | None:
    """The next arena to try, or None when low (fails) and high (fits) are adjacent multiples of 16."""
    if high is None:
        return max(START, low * 2)
    middle = (low + high) // 2 // ALIGNMENT * ALIGNMENT
    return None if middle <= low else middle


def _bisect_in_this_process(model_path: Path, sample_path: Path, low: int, high: int | None) -> None:
    """Child side: report each probe on stdout before and after, so a crash names its size."""
    model_bytes = model_path.read_bytes()
    with np.load(sample_path) as archive:
        sample = [archive[f"input_{i}"] for i in range(len(archive.files))]
    while (size := next_size(low, high)) is not None and size <= LIMIT:
        print(f"try {size}", flush=True)
        if _fits(model_bytes, size, sample):
            high = size
        else:
            low = size
        print(f"{'fits' if high == size else 'fails'} {size}", flush=True)


def measure_arena(model_bytes: bytes, sample: list[np.ndarray]) -> int:
    low, high = 0, None
    with tempfile.TemporaryDirectory(prefix="tflm-kit-arena-") as folder:
        model_path, sample_path = Path(folder) / "model.tflite", Path(folder) / "sample.npz"
        model_path.write_bytes(model_bytes)
        np.savez(sample_path, **{f"input_{i}": x for i, x in enumerate(sample)})
        for _ in range(64):  # each round ends in a clean exit or one crash
            child = subprocess.run(
                [sys.executable, "-m", "converter.tflm.arena", str(model_path), str(sample_path), str(low), str(high or 0)],
                capture_output=True, text=True)
            tried = None
            for line in child.stdout.splitlines():
                verdict, size = line.split()
                size = int(size)
                if verdict == "try":
                    tried = size
                elif verdict == "fits":
                    high, tried = size, None
                else:
                    low, tried = size, None
            if child.returncode == 0:
                break
            if tried is None:
                raise KitError(f"the TFLM arena probe failed before trying an arena (exit {child.returncode}): "
                               f"{' '.join(child.stderr.split())[-200:]}", "check the model runs on TFLM")
            low = tried  # crashed: TFLM cannot use this size either
    if high is None:
        raise KitError(f"TFLM could not run the model even with a {LIMIT:,} byte arena",
                       "check that every operator is supported by TFLM and the file is intact")
    return high


if __name__ == "__main__":
    _bisect_in_this_process(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) or None)
