"""golden.npz, in one place: input_<i> and output_<j> arrays, one row per vector.

Written by `convert` and `golden record`, read by `golden check`, the firmware self-test
(`flash`) and the emitted C golden vectors. Reading checks everything a hand-edited or
damaged file can get wrong, so a bad file is one clear error and never a traceback.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import KitError
from ..inputs.npz import read_npz, save_npz

VECTORS_FILE = "golden.npz"
_KEY = re.compile(r"(input|output)_(\d+)")
_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float: what a model tensor holds


@dataclass(frozen=True)
class GoldenVectors:
    """TFLM's outputs for fixed inputs: the one golden type (convert's, `golden record`'s and golden.npz's)."""
    inputs: list[np.ndarray]     # per model input: (vectors, ...)
    outputs: list[np.ndarray]    # per model output: (vectors, ...)
    source: str = ""             # where the inputs came from, for people

    @property
    def vectors(self) -> int:
        return int(len(self.inputs[0]))


def read_arrays(path: Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz through the kit's one safe reader, and only real numbers."""
    path = Path(path)
    if not path.is_file():
        raise KitError(f"{what} {path} does not exist", "give the path of an .npz file (numpy.savez)")
    arrays = read_npz(path, what)
    for name, array in arrays.items():
        if array.dtype.kind not in _NUMERIC_KINDS:
            kind = "complex" if array.dtype.kind == "c" else "not numeric"
            raise KitError(f"{what} {path}: array '{name}' is {array.dtype} ({kind})",
                           "give real numbers (float or the model's integer type); the kit never drops an "
                           "imaginary part or converts text")
    return arrays


def save_vectors(path: Path, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> None:
    save_npz(path, {f"input_{i}": x for i, x in enumerate(inputs)} | {f"output_{j}": y for j, y in enumerate(outputs)})


def _numbered(arrays: dict[str, np.ndarray], kind: str, path: Path) -> list[np.ndarray]:
    numbers = sorted(int(m.group(2)) for name in arrays if (m := _KEY.fullmatch(name)) and m.group(1) == kind)
    if not numbers:
        raise KitError(f"{path} has no {kind}_0 array", "re-record the goldens (tflm-kit golden record)")
    if numbers != list(range(len(numbers))):
        raise KitError(f"{path} has {kind} arrays {numbers}, not numbered 0 to {len(numbers) - 1}",
                       "re-record the goldens (tflm-kit golden record)")
    return [arrays[f"{kind}_{n}"] for n in numbers]


def load_vectors(path: Path) -> GoldenVectors:
    """golden.npz, checked: input_0.. and output_0.., numbered without gaps, one row per vector in each."""
    path = Path(path)
    arrays = read_arrays(path, "golden vectors")
    strangers = sorted(name for name in arrays if not _KEY.fullmatch(name))
    if strangers:
        raise KitError(f"{path} holds arrays the golden format does not have: {strangers[:5]}",
                       "keep only input_<i> and output_<j> (what tflm-kit golden record writes)")
    inputs, outputs = _numbered(arrays, "input", path), _numbered(arrays, "output", path)
    counts = {name: (len(a) if a.ndim else None) for name, a in
              [(f"input_{i}", x) for i, x in enumerate(inputs)] + [(f"output_{j}", y) for j, y in enumerate(outputs)]}
    if None in counts.values() or len(set(counts.values())) != 1 or 0 in counts.values():
        listed = ", ".join(f"{name}: {count}" for name, count in counts.items())
        raise KitError(f"{path} does not hold the same number of vectors (at least one) in every array ({listed})",
                       "re-record the goldens (tflm-kit golden record)")
    return GoldenVectors(inputs, outputs)
