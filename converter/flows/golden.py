"""Golden-output regression: record TFLM's outputs for fixed inputs, and check a model still gives them bit for bit."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckFailed, KitError
from ..reports.manifest import sha256, tool_versions
from ..inputs.npz import save_npz
from ..tflm.runners import run_tflm
from ..tflite.model import read_model

LOCK = "golden.json"
VECTORS = "golden.npz"


class GoldenMismatch(CheckFailed):
    """A model no longer reproduces its golden outputs; the message names the first differing value."""


@dataclass(frozen=True)
class Golden:
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    model_sha256: str
    model_file: str | None


def save(folder: Path, model_bytes: bytes, model_file: str, inputs: list[np.ndarray], outputs: list[np.ndarray],
         note: str = "") -> dict:
    arrays = {f"input_{i}": x for i, x in enumerate(inputs)} | {f"output_{j}": y for j, y in enumerate(outputs)}
    save_npz(folder / VECTORS, arrays)
    lock = {"model_sha256": sha256(model_bytes), "model_file": model_file, "vectors": int(len(inputs[0])),
            "inputs": len(inputs), "outputs": len(outputs), "tools": tool_versions(), "note": note}
    (folder / LOCK).write_text(json.dumps(lock, indent=2) + "\n")
    return lock


def record(model: Path, data: Path | None, out: Path, vectors: int, seed: int, force: bool = False) -> tuple[dict, str]:
    """Run MODEL on TFLM for `vectors` inputs and write the goldens to `out` atomically."""
    from ..tflm.isolation import open_untrusted
    from ..system.outdir import check_output_path, staged_output
    from .validate import model_inputs

    check_output_path(out, force, inputs=(Path(model),))
    model_bytes, info = open_untrusted(model)
    inputs, _, _, source = model_inputs(info, data, vectors, seed)
    outputs = run_tflm(model_bytes, info, [inputs])
    with staged_output(out) as staging:
        lock = save(staging, model_bytes, str(Path(model).resolve()), [inputs], outputs, note=source)
    return lock, source


def load(folder: Path) -> Golden:
    """A golden folder from `golden record`, or a `convert` output folder (its manifest is the lock)."""
    folder = Path(folder)
    if not (folder / VECTORS).is_file():
        raise KitError(f"{folder} has no {VECTORS}", "record goldens first: tflm-kit golden record MODEL --out DIR")
    if (folder / LOCK).is_file():
        lock = json.loads((folder / LOCK).read_text())
        model_sha, model_file = lock["model_sha256"], lock.get("model_file")
    elif (folder / "manifest.json").is_file():
        manifest = json.loads((folder / "manifest.json").read_text())
        model_sha, model_file = manifest["model"]["sha256"], "model.tflite"
    else:
        raise KitError(f"{folder} has no {LOCK} or manifest.json saying which model it is for",
                       "re-record the goldens with tflm-kit golden record")
    with np.load(folder / VECTORS) as archive:
        count = lambda prefix: sum(1 for k in archive.files if k.startswith(prefix))  # noqa: E731
        inputs = [archive[f"input_{i}"] for i in range(count("input_"))]
        outputs = [archive[f"output_{j}"] for j in range(count("output_"))]
    return Golden(inputs, outputs, model_sha, model_file)


def _model_path(folder: Path, golden: Golden, model: Path | None) -> Path:
    if model is not None:
        return Path(model)
    if golden.model_file is None:
        raise KitError(f"{folder} does not say where its model is", "pass the model: tflm-kit golden check DIR MODEL")
    candidate = Path(golden.model_file)
    return candidate if candidate.is_absolute() else folder / candidate


def first_mismatch(expected: list[np.ndarray], actual: list[np.ndarray]) -> str | None:
    for j, (e, a) in enumerate(zip(expected, actual)):
        e2, a2 = e.reshape(len(e), -1), a.reshape(len(a), -1)
        differs = e2.view(np.uint8).reshape(len(e), -1) != a2.view(np.uint8).reshape(len(a), -1) \
            if e2.dtype == a2.dtype else np.ones_like(e2, dtype=bool)
        if differs.any():
            vector = int(np.argmax(differs.any(axis=1)))
            index = int(np.argmax(e2[vector] != a2[vector])) if e2.dtype == a2.dtype else 0
            return (f"vector {vector} output {j} index {index}: expected {e2[vector, index].item()!r}, "
                    f"got {a2[vector, index].item()!r} ({int(np.count_nonzero(differs))} of {differs.size} values differ)")
    return None


def _signature_problem(golden: Golden, info) -> str | None:
    """Why these goldens cannot belong to this model, if its inputs/outputs do not fit them."""
    for kind, arrays, tensors in (("input", golden.inputs, info.inputs), ("output", golden.outputs, info.outputs)):
        if len(arrays) != len(tensors):
            return f"the goldens have {len(arrays)} {kind}s, the model {len(tensors)}"
        for k, (array, tensor) in enumerate(zip(arrays, tensors)):
            if array.dtype != tensor.dtype or array[0].size != tensor.elements:
                return (f"golden {kind} {k} is {array.dtype} x{array[0].size} per vector, "
                        f"the model's is {tensor.dtype} x{tensor.elements}")
    return None


def check(folder: Path, model: Path | None = None, strict_model: bool = False) -> dict:
    """Re-run the model on TFLM; raise GoldenMismatch naming the first changed value.

    A re-converted model (new bytes, same inputs and outputs) is checked by its outputs:
    that is the regression a TensorFlow or TFLM upgrade can cause. `strict_model` also
    requires the very bytes the goldens were recorded with.
    """
    folder = Path(folder)
    golden = load(folder)
    path = _model_path(folder, golden, model)
    if not path.is_file():
        raise KitError(f"model {path} does not exist", "pass the model: tflm-kit golden check DIR MODEL")
    model_bytes = path.read_bytes()
    info = read_model(model_bytes)
    problem = _signature_problem(golden, info)
    if problem:
        raise KitError(f"the goldens in {folder} are from another model: {problem}",
                       "pass the model they were recorded for, or record new goldens for this one")
    actual_sha = sha256(model_bytes)
    changed = actual_sha != golden.model_sha256
    model_note = (f"model bytes changed since recording (sha256 {golden.model_sha256[:12]}… -> {actual_sha[:12]}…)"
                  if changed else "same model bytes as recorded")
    if changed and strict_model:
        raise KitError(f"{model_note} and --strict-model is set", "pass the recorded model or drop --strict-model")
    outputs = run_tflm(model_bytes, info, golden.inputs)
    mismatch = first_mismatch(golden.outputs, outputs)
    if mismatch:
        raise GoldenMismatch(f"{path.name} no longer reproduces {folder / VECTORS}: {mismatch}; {model_note}")
    return {"vectors": int(len(golden.inputs[0])), "outputs": len(outputs), "model": str(path),
            "model_changed": changed, "note": model_note}
