"""Try an untrusted .tflite in a child process before anything else runs it.

A malformed model can abort or segfault inside TFLM or LiteRT. Loading, allocating and
invoking it once in a child (converter.tflm.child) turns such a crash into a clear error.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import KitError
from .child import ChildCrashed, run_in_child
from .runners import run_model, time_limit

# Every runtime validate uses: XNNPACK (optimized kernels) refuses quantization parameters the
# reference kernels accept, with an error the kit would otherwise meet mid-report.
SMOKE_RUNTIMES = ("tflm", "litert_reference", "litert_optimized")


def crash_error(error: ChildCrashed) -> KitError:
    """A runtime crash in words: which runtime the child was running when it died."""
    runtime = (error.last_event.data.get("runtime_name") if error.last_event else None) or "loading"
    return KitError(f"{runtime} crashed ({error.signal_name}) on this model: it is malformed or uses an op in a way "
                    "the runtime cannot handle", "re-export the model; the kit's process was not affected")


def announce_runtime(emit, runtime: str) -> None:
    """The event a crash is later attributed to."""
    from .runners import RUNTIME_NAMES

    name = RUNTIME_NAMES.get(runtime, runtime)  # an unknown one is refused by run_model next
    emit("progress", f"running {name}", runtime=runtime, runtime_name=name)


def smoke_task(_arguments: dict, arrays: dict, emit) -> tuple[dict, dict]:
    """Child side: one invoke with zero inputs on each runtime the kit uses."""
    from ..tflite.model import read_model

    model_bytes = arrays["model"].tobytes()
    zeros = [np.zeros((1, *t.shape[1:]), t.dtype) for t in read_model(model_bytes).inputs]
    for runtime in SMOKE_RUNTIMES:
        announce_runtime(emit, runtime)
        run_model(model_bytes, zeros, runtime)
    return {}, {}


def model_array(model_bytes: bytes) -> np.ndarray:
    """Model bytes as an array for the child's arrays.npz."""
    return np.frombuffer(model_bytes, np.uint8)


def check_runs_safely(model_bytes: bytes, timeout: float | None = None) -> None:
    """One run per runtime in a child; a crash, a hang or a refusal becomes a KitError."""
    limit = timeout if timeout is not None else time_limit(model_bytes, len(SMOKE_RUNTIMES))
    try:
        run_in_child(smoke_task, {}, {"model": model_array(model_bytes)}, what="running the model once",
                     timeout=limit)
    except ChildCrashed as crash:
        raise crash_error(crash) from None


def open_untrusted(model_path: Path, log=lambda _message: None) -> tuple:
    """Read a .tflite from anywhere: structure, deployability and one run in a child, before this
    process lets a runtime near it. Returns (model bytes, ModelInfo)."""
    model_bytes, info = read_checked(model_path)
    log("trying the model once in a separate process")
    check_runs_safely(model_bytes)
    return model_bytes, info


def read_checked(model_path: Path) -> tuple:
    """(model bytes, ModelInfo) after the checks that need no runtime: structure, deployability, kernels.
    Reading the flatbuffer is plain Python; nothing native runs here."""
    from ..tflite.model import read_model
    from .deployable import check_deployable

    model_path = Path(model_path)
    if not model_path.is_file():
        raise KitError(f"model {model_path} does not exist", "give the path of a .tflite file")
    model_bytes = model_path.read_bytes()
    info = read_model(model_bytes)
    # operators TFLM has no kernel for (with alternatives), types, dynamic shapes, float ops
    check_deployable(model_bytes)
    return model_bytes, info


def outputs_task(arguments: dict, arrays: dict, emit) -> tuple[dict, dict]:
    """Child side: every vector through one runtime; the outputs come back as output_<j>."""
    model_bytes = arrays["model"].tobytes()
    inputs = [arrays[f"input_{i}"] for i in range(arguments["inputs"])]
    announce_runtime(emit, arguments["runtime"])
    run = run_model(model_bytes, inputs, arguments["runtime"])
    return {}, {f"output_{j}": y for j, y in enumerate(run.outputs)}


def run_isolated(model_bytes: bytes, inputs: list[np.ndarray], runtime: str = "tflm", what: str = "running the model",
                 log=None) -> list[np.ndarray]:
    """run_model's outputs, computed in a child: a crash or a hang is a KitError, never this process's end."""
    arrays = {"model": model_array(model_bytes)} | {f"input_{i}": x for i, x in enumerate(inputs)}
    try:
        result = run_in_child(outputs_task, {"inputs": len(inputs), "runtime": runtime}, arrays, what=what,
                              timeout=time_limit(model_bytes, len(inputs[0]) if inputs else 1), log=log)
    except ChildCrashed as crash:
        raise crash_error(crash) from None
    return [result.arrays[f"output_{j}"] for j in range(len(result.arrays))]
