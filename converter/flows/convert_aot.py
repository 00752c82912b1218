"""convert's AOT phase: the validated model compiled to C (converter/aot) and proven bit for bit on the
host before anything is written.

The recipe's `runtime` decides: `tflm` skips it; `aot` or `both` set explicitly make it required (a
model outside the AOT operator set, no C compiler, or generated code that does not build or differs from
TFLM is a one-line error and nothing is written); left at its default (`both`), AOT is skipped with one
printed line saying why and TFLM's artifacts are written as before. Never C that silently differs:
the generated code is built with the host compiler and must give TFLM's golden outputs (plus saturating
and random inputs, run on TFLM here) byte for byte, on the portable kernels and, when CMSIS_NN_ROOT names
a CMSIS-NN clone, on CMSIS-NN's C path too."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..aot import AotProgram
from ..aot.validate import HostValidation
from ..errors import KitError
from ..progress import Note, Sink
from ..recipe import Recipe

FOLDER = "aot"          # inside --out
EXTRA_VECTORS = 6       # saturating (-128, 127, 0) and random inputs beyond the golden vectors
CORES = ("host", "cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m55")


@dataclass(frozen=True)
class AotResult:
    program: AotProgram
    validations: tuple[HostValidation, ...]     # one per back-end checked

    def as_dict(self) -> dict:
        plan = self.program.plan("host")
        return {**self.program.as_dict(), "folder": FOLDER, "validated": [v.as_dict() for v in self.validations],
                "bit_exact": all(v.passed for v in self.validations),
                "buffer_bytes": {core: self.program.buffer_bytes(core) for core in CORES},
                "plan_host": [{"offset": e.offset, "bytes": e.size, "tensor": e.what} for e in plan.entries]}

    def lines(self) -> list[str]:
        sizes = ", ".join(f"{core} {self.program.buffer_bytes(core):,} B" for core in CORES)
        m4 = self.program.plan("cortex-m4")
        saved = f" (in place; cortex-m4 without: {m4.baseline_bytes:,} B)" if m4.buffer_bytes < m4.baseline_bytes else ""
        return [v.line() for v in self.validations] + [f"AOT static buffer: {sizes}{saved}"]


def _extra_inputs(golden_inputs: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Saturating, zero and random inputs of each input's type (float inputs: the golden range, widened)."""
    rng = np.random.default_rng(seed)
    extra = []
    for x in golden_inputs:
        shape = (EXTRA_VECTORS, *x.shape[1:])
        if np.issubdtype(x.dtype, np.floating):
            low, high = float(np.min(x)), float(np.max(x))
            span = max(high - low, 1e-3)
            block = rng.uniform(low - span, high + span, shape).astype(x.dtype)
            block[0], block[1], block[2] = low - span, high + span, 0
        else:
            info = np.iinfo(x.dtype)
            block = rng.integers(info.min, info.max + 1, shape).astype(x.dtype)
            block[0], block[1], block[2] = info.min, info.max, 0
        extra.append(block)
    return extra


def _validate(model_bytes: bytes, program: AotProgram, golden_inputs, golden_outputs,
              seed: int) -> tuple[HostValidation, ...]:
    from ..runtimes.aot import validate_backends
    from ..tflm.runners import run_tflm

    extra = _extra_inputs(golden_inputs, seed)
    inputs = [np.concatenate([g, e]) for g, e in zip(golden_inputs, extra)]
    extra_out = run_tflm(model_bytes, extra)
    expected = [np.concatenate([g, e]) for g, e in zip(golden_outputs, extra_out)]
    return validate_backends(model_bytes, program, inputs, expected, len(golden_inputs[0]))


def build_aot(recipe: Recipe, model_bytes: bytes, golden_inputs, golden_outputs, events: Sink) -> Optional[AotResult]:
    """The AOT program and its host validation, or None when AOT is skipped (and the line saying why)."""
    from ..aot import generate
    from ..aot.validate import host_compiler

    runtime, explicit = recipe.runtime or "both", recipe.runtime is not None
    if runtime == "tflm":
        return None
    try:
        program = generate(model_bytes)
        host_compiler()
        validations = _validate(model_bytes, program, golden_inputs, golden_outputs, recipe.seed)
        failed = [v for v in validations if not v.passed]
        if failed:
            raise KitError(f"the generated AOT code differs from TFLM on the host ({failed[0].line()}); nothing was "
                           "written", "set `runtime: tflm` in the recipe to convert without it, and report this "
                           "with the model", code="aot-differs")
    except KitError as reason:
        if explicit:
            raise
        events(Note(f"AOT runtime skipped (TFLM artifacts only): {reason.problem}"))
        return None
    return AotResult(program, validations)
