"""Input vectors for any model (any number of inputs): from --data, or seeded random ones.

--data is an .npz: 'x' (or input_0, x_test, x_eval) for a single-input model; x_0, x_1, ... (or
input_0, input_1, ...) for a model with several; optional labels under 'y'. Float data is
quantized to each input's type; integer data must already be in it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..compare.golden_format import read_arrays
from ..errors import KitError
from ..tflite.model import ModelInfo, TensorInfo
from ..tflm.runners import dequantize, quantize

SINGLE_INPUT_KEYS = ("x", "input_0", "x_0", "x_test", "x_eval")
LABEL_KEYS = ("y", "y_test", "y_eval")


@dataclass(frozen=True)
class VectorInputs:
    quantized: list[np.ndarray]     # per model input, (vectors, ...) in its type: what runtimes are fed
    floats: list[np.ndarray]        # the same values as floats: what a float model is fed
    labels: np.ndarray | None
    source: str                     # for reports: where the vectors came from

    @property
    def vectors(self) -> int:
        return int(len(self.quantized[0]))


def check_run_settings(vectors: int, seed: int) -> None:
    if isinstance(vectors, bool) or not isinstance(vectors, (int, np.integer)) or vectors < 1:
        raise KitError(f"vectors must be a whole number of at least 1, not {vectors!r}", "give e.g. --vectors 100")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise KitError(f"seed must be a whole number of 0 or more, not {seed!r}", "give e.g. --seed 0")


def _input_keys(keys: list[str], count: int, path: Path) -> list[str]:
    if count == 1:
        key = next((k for k in SINGLE_INPUT_KEYS if k in keys), None)
        if key is None:
            raise KitError(f"data file {path} has no 'x' array (it has {sorted(keys)})", "store the inputs under 'x'")
        return [key]
    for prefix in ("x_", "input_"):
        names = [f"{prefix}{i}" for i in range(count)]
        if all(name in keys for name in names):
            return names
    raise KitError(f"the model has {count} inputs but data file {path} does not hold x_0 … x_{count - 1} "
                   f"(it has {sorted(keys)})", f"store input i under 'x_<i>' (x_0 … x_{count - 1}), in model order")


def _one_input(x: np.ndarray, tensor: TensorInfo, index: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(quantized, float) vectors for one model input, checked against the tensor."""
    which, have, contain, are = ("data inputs", "have", "contain", "are") if count == 1 else \
        (f"data input {index}", "has", "contains", "is")
    sample_shape = tensor.sample_shape
    if x.ndim == 0 or tuple(x.shape[1:]) != sample_shape:
        raise KitError(f"{which} {have} shape {tuple(x.shape[1:])} per sample but the model takes {sample_shape}",
                       "reshape the data to the model's input shape (samples along the first axis)")
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise KitError(f"{which} {contain} NaN or infinity", "clean the data")
        return quantize(x, tensor), x.astype(np.float32)
    if x.dtype != tensor.dtype:
        raise KitError(f"{which} {are} {x.dtype} but the model input is {tensor.dtype}",
                       f"give float inputs (the kit quantizes them) or {tensor.dtype} inputs")
    return x, dequantize(x, tensor)


def _from_data(info: ModelInfo, data: Path, vectors: int) -> VectorInputs:
    arrays = read_arrays(data, "data file")
    keys = _input_keys(list(arrays), len(info.inputs), data)
    xs = [arrays[key] for key in keys]
    counts = {len(x) if x.ndim else 0 for x in xs}
    if counts == {0}:
        raise KitError(f"data file {data} has no inputs (0 samples)", "give at least one input sample")
    if len(counts) != 1:
        raise KitError(f"data file {data} holds different numbers of samples per input ({[len(x) for x in xs]})",
                       "give every input the same number of samples, in matching order")
    pairs = [_one_input(x[:vectors], tensor, i, len(xs)) for i, (x, tensor) in enumerate(zip(xs, info.inputs))]
    labels = next((arrays[k] for k in LABEL_KEYS if k in arrays), None)
    labels = None if labels is None else np.asarray(labels)[:vectors]
    return VectorInputs([q for q, _ in pairs], [f for _, f in pairs], labels,
                        f"{len(pairs[0][0])} inputs from {data}")


def _seeded(info: ModelInfo, vectors: int, seed: int) -> VectorInputs:
    rng = np.random.default_rng(seed)
    quantized = []
    for tensor in info.inputs:  # drawn in input order from one generator
        shape = (vectors, *tensor.sample_shape)
        if np.issubdtype(tensor.dtype, np.integer):
            limits = np.iinfo(tensor.dtype)
            quantized.append(rng.integers(limits.min, limits.max, shape, endpoint=True).astype(tensor.dtype))
        elif tensor.dtype == np.bool_:
            quantized.append(rng.integers(0, 1, shape, endpoint=True).astype(np.bool_))
        else:
            quantized.append(rng.standard_normal(shape).astype(tensor.dtype))
    floats = [dequantize(q, t) for q, t in zip(quantized, info.inputs)]
    return VectorInputs(quantized, floats, None, f"{vectors} seeded random inputs (seed {seed}; no --data given)")


def model_inputs(info: ModelInfo, data: Path | None, vectors: int, seed: int) -> VectorInputs:
    """The vectors to run: up to `vectors` from `data`, or `vectors` seeded random ones."""
    check_run_settings(vectors, seed)
    if not info.inputs:
        raise KitError("the model has no inputs", "re-export the model with its input tensors")
    return _seeded(info, vectors, seed) if data is None else _from_data(info, Path(data), vectors)
