"""Golden-output regression: record TFLM's outputs for fixed inputs, and check a model still gives them bit for bit.

The model may come from anywhere: TFLM runs it in a child process (converter.tflm.child) both
when recording and when checking; this process reads its flatbuffer and compares the outputs.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..compare.golden_format import VECTORS_FILE, GoldenVectors, load_vectors, save_vectors
from ..compare.outputs import first_mismatch
from ..errors import CheckFailed, KitError
from ..reports.manifest import sha256, tool_versions
from ..system.safe_yaml import load_json_file
from ..tflm.isolation import read_checked, run_isolated
from .model_inputs import model_inputs

LOCK = "golden.json"
VECTORS = VECTORS_FILE
RE_RECORD = "re-record the goldens: tflm-kit golden record MODEL --out DIR --force"


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
    save_vectors(folder / VECTORS, inputs, outputs)
    lock = {"model_sha256": sha256(model_bytes), "model_file": model_file, "vectors": int(len(inputs[0])),
            "inputs": len(inputs), "outputs": len(outputs), "tools": tool_versions(), "note": note}
    (folder / LOCK).write_text(json.dumps(lock, indent=2) + "\n")
    return lock


def record(model: Path, data: Path | None, out: Path, vectors: int, seed: int, force: bool = False) -> tuple[dict, str]:
    """Run MODEL on TFLM (in a child) for `vectors` inputs and write the goldens to `out` atomically."""
    from ..system.outdir import check_output_path, staged_output

    check_output_path(out, force, inputs=(Path(model),) + ((Path(data),) if data is not None else ()))
    model_bytes, info = read_checked(model)
    vector_inputs = model_inputs(info, data, vectors, seed)
    outputs = run_isolated(model_bytes, vector_inputs.quantized, what=f"recording goldens of {model}", consistent=True)
    with staged_output(out) as staging:
        lock = save(staging, model_bytes, str(Path(model).resolve()), vector_inputs.quantized, outputs,
                    note=vector_inputs.source)
    return lock, vector_inputs.source


def _read_json(path: Path) -> dict:
    return load_json_file(path, "golden record", RE_RECORD)


def _claim(record: dict, key: str, path: Path, kind=int):
    value = record.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise KitError(f"{path} has no valid '{key}' (found {value!r})", RE_RECORD)
    return value


def _check_claims(path: Path, claims: dict, vectors: GoldenVectors) -> None:
    """What the lock says must be what golden.npz holds: a lock that lies makes a check meaningless."""
    held = {"vectors": vectors.vectors, "inputs": len(vectors.inputs), "outputs": len(vectors.outputs)}
    for key, claimed in claims.items():
        if claimed is not None and claimed != held[key]:
            raise KitError(f"{path} says {claimed} {key} but {VECTORS} holds {held[key]}", RE_RECORD)


def load(folder: Path) -> Golden:
    """A golden folder from `golden record`, or a `convert` output folder (its manifest is the lock)."""
    folder = Path(folder)
    if not (folder / VECTORS).is_file():
        raise KitError(f"{folder} has no {VECTORS}", "record goldens first: tflm-kit golden record MODEL --out DIR")
    if (folder / LOCK).is_file():
        path = folder / LOCK
        lock = _read_json(path)
        model_sha, model_file = _claim(lock, "model_sha256", path, str), lock.get("model_file")
        if model_file is not None and not isinstance(model_file, str):
            raise KitError(f"{path} has no valid 'model_file' (found {model_file!r})", RE_RECORD)
        claims = {key: _claim(lock, key, path) for key in ("vectors", "inputs", "outputs")}
    elif (folder / "manifest.json").is_file():
        path = folder / "manifest.json"
        manifest = _read_json(path)
        model = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
        model_sha, model_file = _claim(model, "sha256", path, str), "model.tflite"
        summary = manifest.get("summary") if isinstance(manifest.get("summary"), dict) else {}
        claims = {"vectors": summary.get("golden_vectors"), "inputs": len(model.get("inputs") or []) or None,
                  "outputs": len(model.get("outputs") or []) or None}
    else:
        raise KitError(f"{folder} has no {LOCK} or manifest.json saying which model it is for",
                       "re-record the goldens with tflm-kit golden record")
    if not re.fullmatch(r"[0-9a-f]{64}", model_sha):
        raise KitError(f"{path} gives the model's sha256 as {model_sha[:80]!r}, not 64 hex digits", RE_RECORD)
    vectors = load_vectors(folder / VECTORS)
    _check_claims(path, claims, vectors)
    return Golden(vectors.inputs, vectors.outputs, model_sha, model_file)


def _model_path(folder: Path, golden: Golden, model: Path | None) -> Path:
    if model is not None:
        return Path(model)
    if golden.model_file is None:
        raise KitError(f"{folder} does not say where its model is", "pass the model: tflm-kit golden check DIR MODEL")
    candidate = Path(golden.model_file)
    return candidate if candidate.is_absolute() else folder / candidate


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
    model_bytes, info = read_checked(path)
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
    outputs = run_isolated(model_bytes, golden.inputs, what=f"checking {path} against its goldens")
    mismatch = first_mismatch(golden.outputs, outputs)
    if mismatch:
        raise GoldenMismatch(f"{path.name} no longer reproduces {folder / VECTORS}: {mismatch}; {model_note}")
    return {"vectors": int(len(golden.inputs[0])), "outputs": len(outputs), "model": str(path),
            "model_changed": changed, "note": model_note}
