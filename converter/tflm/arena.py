"""Measure the smallest tensor arena with which TFLM allocates and invokes a model.

The bisection runs in a child process: with some too-small arenas TFLM does not fail
cleanly but crashes (seen here: a segfault in the interpreter constructor for a
FULLY_CONNECTED autoencoder at 4,096 bytes). A crash counts as "does not fit" and the
search resumes in a new child from where it stopped.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import KitError
from ..tflite.model import ModelInfo
from .child import ChildCrashed, ChildEvent, run_in_child
from .isolation import model_array
from .runners import RuntimeFailed, run_model, time_limit

ALIGNMENT = 16
START = 1024
LIMIT = 64 << 20
PROBES_PER_CHILD = 40  # a bisection from START to LIMIT takes about 2 x 16 probes


def _fits(model_bytes: bytes, arena_size: int, sample: list[np.ndarray]) -> bool:
    try:
        run_model(model_bytes, sample, "tflm", arena_size=arena_size)
        return True
    except RuntimeFailed:
        return False


def next_size(low: int, high: int | None) -> int | None:
    """The next arena to try, or None when low (fails) and high (fits) are adjacent multiples of 16."""
    if high is None:
        return max(START, low * 2)
    middle = (low + high) // 2 // ALIGNMENT * ALIGNMENT
    return None if middle <= low else middle


def probe_task(arguments: dict, arrays: dict, emit) -> tuple[dict, dict]:
    """Child side: announce each probe before and after, so a crash names its size."""
    model_bytes = arrays["model"].tobytes()
    sample = [arrays[f"input_{i}"] for i in range(arguments["inputs"])]
    low, high = arguments["low"], arguments["high"]
    while (size := next_size(low, high)) is not None and size <= LIMIT:
        emit("probe", size=size)
        if _fits(model_bytes, size, sample):
            high = size
        else:
            low = size
        emit("verdict", size=size, fits=high == size)
    return {"low": low, "high": high}, {}


# What the kit adds to the measured arena for kTensorArenaSize: convert's default (a recipe's arena_margin),
# and what a partition's parts get.
ARENA_MARGIN = 0.10


def arena_with_margin(measured: int, margin: float = ARENA_MARGIN) -> int:
    """The measured arena plus `margin`, rounded up to TFLM's 16-byte alignment."""
    return int(math.ceil(measured * (1 + margin) / 16) * 16)


def first_sample(inputs: list[np.ndarray], info: ModelInfo) -> list[np.ndarray]:
    """The first vector of each input (inputs[i] has shape (N, ...)), shaped as the input tensor: what
    measure_arena runs (TFLM allocates before it reads an input, so one vector is enough)."""
    return [x[:1].reshape(t.shape) for x, t in zip(inputs, info.inputs)]


def measure_arena(model_bytes: bytes, sample: list[np.ndarray]) -> int:
    """sample: one vector per model input, shaped as the input tensor."""
    low, high = 0, None
    arrays = {"model": model_array(model_bytes)} | {f"input_{i}": x for i, x in enumerate(sample)}
    for _ in range(64):  # each round ends in a clean exit or one crash
        tried: list[int] = []

        def follow(event: ChildEvent, tried: list = tried) -> None:
            nonlocal low, high
            if event.kind == "probe":
                tried.append(event.data["size"])
            elif event.kind == "verdict":
                low, high = (low, event.data["size"]) if event.data["fits"] else (event.data["size"], high)
                tried.clear()

        try:
            run_in_child(probe_task, {"low": low, "high": high, "inputs": len(sample)}, arrays,
                         what="measuring the tensor arena", timeout=time_limit(model_bytes, PROBES_PER_CHILD),
                         on_event=follow)
            break
        except ChildCrashed as crash:
            if not tried:
                raise KitError(f"the TFLM arena probe crashed ({crash.signal_name}) before trying an arena",
                               "check the model runs on TFLM") from None
            low = tried[-1]  # crashed: TFLM cannot use this size either
    if high is None:
        raise KitError(f"TFLM could not run the model even with a {LIMIT:,} byte arena",
                       "check that every operator is supported by TFLM and the file is intact")
    return high
