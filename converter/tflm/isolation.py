"""Try an untrusted .tflite in a child process before this process loads it.

A malformed model can abort or segfault inside TFLM or LiteRT. Loading, allocating
and invoking it once in a child turns such a crash into a clear error of the kit.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..errors import KitError


def _smoke(model_path: Path) -> None:
    """Child side: one invoke with zero inputs on each runtime the kit uses."""
    from .runners import run_litert, run_tflm
    from ..tflite.model import read_model

    model_bytes = model_path.read_bytes()
    info = read_model(model_bytes)
    zeros = [np.zeros((1, *t.shape[1:]), t.dtype) for t in info.inputs]
    # All three runtimes validate uses: XNNPACK (optimized kernels) refuses quantization parameters
    # the reference kernels accept, with a RuntimeError the parent would otherwise meet mid-report.
    for name, run in (("TFLM", lambda: run_tflm(model_bytes, info, zeros)),
                      ("LiteRT", lambda: run_litert(model_bytes, zeros, reference_kernels=True)),
                      ("LiteRT optimized kernels", lambda: run_litert(model_bytes, zeros, reference_kernels=False))):
        print(f"running {name}", flush=True)
        try:
            run()
        except KitError:
            raise
        except Exception as exc:  # a runtime refusing the model: its own words, on one line
            raise KitError(f"{name} refused this model ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})",
                           "re-export the model") from None


def check_runs_safely(model_bytes: bytes, timeout: float = 300) -> None:
    with tempfile.TemporaryDirectory(prefix="tflm-kit-smoke-") as folder:
        path = Path(folder) / "model.tflite"
        path.write_bytes(model_bytes)
        try:
            child = subprocess.run([sys.executable, "-m", "converter.tflm.isolation", str(path)],
                                   capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise KitError(f"running the model once took over {timeout:.0f} s (hang?)",
                           "check the model; a loop or a huge tensor makes it unusable on an MCU") from None
    if child.returncode == 0:
        return
    stage = (child.stdout.strip().splitlines() or ["loading"])[-1].removeprefix("running ")
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        raise KitError(f"{stage} crashed ({name}) on this model: it is malformed or uses an op in a way "
                       "the runtime cannot handle", "re-export the model; the kit's process was not affected")
    last = [line for line in child.stderr.splitlines() if line.startswith("error:")]
    raise KitError(last[-1].removeprefix("error: ").split(" — fix: ")[0] if last else
                   f"{stage} failed on this model (exit {child.returncode}): {' '.join(child.stderr.split())[-200:]}",
                   "check the model runs on TFLM")


def open_untrusted(model_path: Path, log=lambda message: None) -> tuple:
    """Read a .tflite from anywhere: structure, deployability and one run in a child, before this
    process lets a runtime near it. Returns (model bytes, ModelInfo)."""
    from ..emit.sources import resolver_ops
    from ..tflite.model import check_deployable, read_model

    model_path = Path(model_path)
    if not model_path.is_file():
        raise KitError(f"model {model_path} does not exist", "give the path of a .tflite file")
    model_bytes = model_path.read_bytes()
    info = read_model(model_bytes)
    check_deployable(model_bytes)  # unsupported ops (with alternatives), types, dynamic shapes, float ops
    resolver_ops(info)  # names any operator TFLM has no kernel for
    log("trying the model once in a separate process")
    check_runs_safely(model_bytes)
    return model_bytes, info


if __name__ == "__main__":
    try:
        _smoke(Path(sys.argv[1]))
    except KitError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
