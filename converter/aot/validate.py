"""The AOT code proven on the host: compiled with the host C compiler and run on the same inputs as TFLM
(the golden runtime, tflm/runners.py); every output byte must match. When one does not, the build is
redone with a trace of every operator's output to name the first operator that diverges.

Two back-ends: the portable kernels, and CMSIS-NN's C path (the same functions the Cortex-M build calls,
compiled for the host) when CMSIS_NN_ROOT points to a CMSIS-NN clone."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import KitError, foreign_text
from .program import AotProgram

CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter")
HARNESS = r"""/* tflm-kit AOT host harness: vectors in on stdin, outputs (and traces) out on stdout. */
#include <stdio.h>
#include <stdlib.h>
#ifdef AOT_TRACE
void aot_trace(int op, const void* data, size_t bytes);
void aot_trace(int op, const void* data, size_t bytes) {
  fwrite(&op, sizeof op, 1, stdout);
  fwrite(data, 1, bytes, stdout);
}
#endif
#include "aot_model.h"
int main(void) {
  static unsigned char* in[AOT_MODEL_INPUT_COUNT];
  static unsigned char* out[AOT_MODEL_OUTPUT_COUNT];
  int i;
  for (i = 0; i < AOT_MODEL_INPUT_COUNT; ++i) in[i] = malloc(aot_model_input_bytes[i]);
  for (i = 0; i < AOT_MODEL_OUTPUT_COUNT; ++i) out[i] = malloc(aot_model_output_bytes[i]);
  for (;;) {
    for (i = 0; i < AOT_MODEL_INPUT_COUNT; ++i)
      if (fread(in[i], 1, aot_model_input_bytes[i], stdin) != aot_model_input_bytes[i]) return 0;
    if (aot_model_invoke((const void* const*)in, (void* const*)out) != 0) return 3;
    for (i = 0; i < AOT_MODEL_OUTPUT_COUNT; ++i) fwrite(out[i], 1, aot_model_output_bytes[i], stdout);
  }
}
"""


class NoCompiler(KitError):
    """No host C compiler to build the AOT code with."""


@dataclass(frozen=True)
class HostValidation:
    backend: str                      # "portable" or "cmsis-nn"
    vectors: int
    identical: int
    divergence: str = ""              # the first diverging operator, when any output differs
    golden: int = 0                   # how many of the vectors (the first ones) are the golden vectors
    golden_identical: int = 0

    @property
    def passed(self) -> bool:
        return self.identical == self.vectors

    def line(self) -> str:
        if self.golden:
            others = self.vectors - self.golden
            counts = f"{self.golden_identical}/{self.golden} golden vectors" + \
                (f" + {self.identical - self.golden_identical}/{others} saturating and random inputs" if others else "")
        else:
            counts = f"{self.identical}/{self.vectors} inputs"
        text = f"AOT ({self.backend}, host gcc) vs TFLM: {counts} bit-identical"
        return text + (f"; first divergence: {self.divergence}" if self.divergence else "")

    def as_dict(self) -> dict:
        return {"backend": self.backend, "vectors": self.vectors, "identical": self.identical,
                "golden": self.golden, "golden_identical": self.golden_identical, "divergence": self.divergence,
                "line": self.line()}


def host_compiler() -> str:
    for name in (os.environ.get("CC", ""), "gcc", "cc", "clang"):
        if name and shutil.which(name):
            return name
    raise NoCompiler("no C compiler (gcc, cc or clang) on this machine to build and check the AOT code",
                     "install gcc, or set `runtime: tflm` in the recipe", code="aot-no-compiler")


def cmsis_sources(root: Path) -> list[Path]:
    """CMSIS-NN's C sources for int8/int16 (the float files are not needed and not compiled)."""
    return sorted(p for p in (root / "Source").rglob("*.c")
                  if not any(tag in p.name for tag in ("_f16", "_f32", "_flt")))


def _run(command: list[str], what: str, stdin: bytes | None = None, cwd: Path | None = None) -> bytes:
    done = subprocess.run(command, input=stdin, capture_output=True, cwd=cwd, timeout=900)
    if done.returncode != 0:
        raise KitError(f"{what} failed: {foreign_text(done.stderr.decode(errors='replace'), tail=True)}",
                       "report this with the model: the AOT generator produced code that does not build or run",
                       code="aot-host-build")
    return done.stdout


def cmsis_library(root: Path, cache: Path) -> Path:
    """CMSIS-NN compiled for the host once per (clone, compiler) and kept in `cache`."""
    compiler = host_compiler()
    sources = cmsis_sources(root)
    key = hashlib.sha256("\n".join([compiler, *CFLAGS, *(f"{p}:{p.stat().st_mtime_ns}" for p in sources)])
                         .encode()).hexdigest()[:16]
    library = cache / f"libcmsis-nn-host-{key}.a"
    if library.exists():
        return library
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tflm-kit-cmsis-", dir=cache) as work:
        objects = []
        for i, source in enumerate(sources):
            obj = Path(work) / f"{i}_{source.stem}.o"
            _run([compiler, *CFLAGS, "-w", f"-I{root / 'Include'}", "-c", str(source), "-o", str(obj)],
                 f"compiling CMSIS-NN's {source.name} for the host")
            objects.append(str(obj))
        partial = Path(work) / library.name
        _run(["ar", "rcs", str(partial), *objects], "archiving CMSIS-NN")
        os.replace(partial, library)
    return library


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tflm-kit"


def build_host(program: AotProgram, folder: Path, cmsis_root: Path | None = None, trace: bool = False) -> Path:
    """The host binary of the program plus the harness, in `folder`."""
    program.write(folder)
    (folder / "aot_harness_main.c").write_text(HARNESS)
    command = [host_compiler(), *CFLAGS, f"-I{folder}"]
    if trace:
        command.append("-DAOT_TRACE")
    sources = sorted(str(p) for p in folder.glob("*.c"))
    if cmsis_root is not None:
        command += ["-DAOT_CMSIS_NN", f"-I{cmsis_root / 'Include'}"]
        sources.append(str(cmsis_library(cmsis_root, default_cache())))
    binary = folder / ("aot_host_trace" if trace else "aot_host")
    _run([*command, *sources, "-o", str(binary)], "building the AOT code with the host compiler")
    return binary


def run_host(binary: Path, program: AotProgram, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs for N vectors (inputs[i]: shape (N, ...) in the input's type), from the compiled program."""
    count = len(inputs[0])
    stdin = b"".join(np.ascontiguousarray(x[v]).astype(spec.dtype).tobytes()
                     for v in range(count) for x, spec in zip(inputs, program.inputs))
    raw = _run([str(binary)], "running the AOT host build", stdin)
    sizes = [int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize for t in program.outputs]
    per_vector = np.frombuffer(raw, np.uint8).reshape(count, sum(sizes))
    bounds = np.cumsum([0, *sizes])
    return [np.ascontiguousarray(per_vector[:, bounds[j]:bounds[j + 1]]).view(spec.dtype)
            .reshape(count, *spec.shape[1:]) for j, spec in enumerate(program.outputs)]


def _traces(raw: bytes, program: AotProgram) -> dict[int, bytes]:
    """Operator index -> its output bytes, from a trace build's stdout (one vector)."""
    sizes = {o.index: o.output_bytes for o in program.operators}
    found, at = {}, 0
    while at + 4 <= len(raw):
        op = int(np.frombuffer(raw[at:at + 4], "<i4")[0])
        if op not in sizes or op in found:   # the traces end where the outputs follow
            break
        found[op] = raw[at + 4:at + 4 + sizes[op]]
        at += 4 + sizes[op]
    return found


def first_divergence(model: bytes, program: AotProgram, inputs: list[np.ndarray], vector: int,
                     cmsis_root: Path | None = None) -> str:
    """'operator k KIND: n of m bytes differ' for the first operator whose output differs from TFLM's."""
    from ..tflm.runners import run_model

    one = [x[vector:vector + 1] for x in inputs]
    tflm = run_model(model, one, "tflm", keep_tensors=True).tensors[0]
    with tempfile.TemporaryDirectory(prefix="tflm-kit-aot-trace-") as folder:
        binary = build_host(program, Path(folder), cmsis_root, trace=True)
        stdin = b"".join(np.ascontiguousarray(x[0]).astype(spec.dtype).tobytes() for x, spec in zip(one, program.inputs))
        raw = subprocess.run([str(binary)], input=stdin, capture_output=True, timeout=600).stdout
    ours = _traces(raw, program)
    for call in program.operators:
        if call.function is None or call.index not in ours:
            continue
        theirs = np.asarray(tflm[call.output]).tobytes()
        mine = ours[call.index]
        if mine != theirs:
            differ = sum(a != b for a, b in zip(mine, theirs))
            return f"operator {call.index} {call.kind} ({call.function}): {differ} of {len(theirs)} bytes differ " \
                   f"on vector {vector}"
    return f"the outputs differ on vector {vector} but no operator's output does (a copy or alias is wrong)"


def validate_on_host(model: bytes, program: AotProgram, inputs: list[np.ndarray],
                     cmsis_root: Path | None = None, expected: list[np.ndarray] | None = None,
                     golden: int = 0) -> HostValidation:
    """Every vector through the host build and through TFLM (or `expected`, TFLM's outputs already
    recorded): how many are byte-identical, and where the first difference starts. `golden`: how many
    of the vectors, the first ones, are the golden vectors (counted apart in the result)."""
    if expected is None:
        from ..tflm.runners import run_model
        expected = run_model(model, inputs, "tflm").outputs
    with tempfile.TemporaryDirectory(prefix="tflm-kit-aot-") as folder:
        outputs = run_host(build_host(program, Path(folder), cmsis_root), program, inputs)
    count = len(inputs[0])
    same = [all(o[v].tobytes() == np.asarray(e[v], o.dtype).tobytes() for o, e in zip(outputs, expected))
            for v in range(count)]   # bytes: float outputs' -0.0 and NaN compare as TFLM wrote them
    backend = "cmsis-nn" if cmsis_root is not None else "portable"
    if all(same):
        return HostValidation(backend, count, count, "", golden, golden)
    divergence = first_divergence(model, program, inputs, same.index(False), cmsis_root)
    return HostValidation(backend, count, sum(same), divergence, golden, sum(same[:golden]))
