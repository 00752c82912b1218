"""Training, calibration and evaluation arrays, checked against the model's inputs.

A single-input model's inputs are one array (samples first); a model with several inputs has a list
of arrays, one per model input in model order, with the same number of samples each (what Keras's
fit and predict take). `input_list`, `sample_count` and `take` treat both alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .builders import load_function
from .npz import npz_names, read_npz
from ..errors import KitError
from ..system.paths import resolve_path
from .sources import DataSource


# One array for a single-input model, else a list of arrays in model input order.
Inputs = Union[np.ndarray, list]


def input_list(x: Inputs) -> list[np.ndarray]:
    """The arrays of `x`, one per model input."""
    return list(x) if isinstance(x, (list, tuple)) else [x]


def sample_count(x: Inputs) -> int:
    return int(len(input_list(x)[0]))


def take(x: Inputs, index) -> Inputs:
    """The samples `index` (a slice or index array) of every input, in the form `x` has."""
    return [a[index] for a in x] if isinstance(x, (list, tuple)) else x[index]


@dataclass(frozen=True)
class Dataset:
    x_train: Optional[Inputs]
    y_train: Optional[np.ndarray]
    x_calibration: Inputs
    x_eval: Optional[Inputs]
    y_eval: Optional[np.ndarray]
    labels: Optional[list[str]]
    # Per-training-sample fields (e.g. 'speaker'), from arrays named 'key_<field>' in the data source:
    # the federated stage partitions clients by them.
    keys: dict[str, np.ndarray] = field(default_factory=dict)
    # The Keras model's input names, in the order of the arrays, when it has several: a flatbuffer
    # converted from it may order its inputs otherwise (tflm/runners.flatbuffer_order). None: the
    # arrays are in the flatbuffer's order (a .tflite source), or there is one input.
    input_names: Optional[tuple[str, ...]] = None

    @property
    def trainable(self) -> bool:
        return self.x_train is not None and self.y_train is not None

    @property
    def labeled_eval(self) -> bool:
        return self.x_eval is not None and self.y_eval is not None and sample_count(self.x_eval) > 0

    def spread_inputs(self, count: int) -> tuple[Inputs, str]:
        """Up to `count` evenly spaced real inputs from the eval set (else the calibration set), and where
        they came from: spread out rather than the first few, so they cover the classes of a sorted set."""
        pool, source = (self.x_eval, "eval set") if self.x_eval is not None and sample_count(self.x_eval) else \
            (self.x_calibration, "calibration set")
        size = sample_count(pool)
        picks = np.unique(np.linspace(0, size - 1, num=min(count, size)).round().astype(int))
        return take(pool, picks), f"{len(picks)} real inputs from the {source}"


def input_keys(key, count: int, field_name: str) -> list[str]:
    """The .npz names of one role's inputs (x_train, x_eval, x_calibration): a list names one array per
    model input; a name alone is the array of a single-input model, or `<name>_0` … `<name>_<n-1>`."""
    if isinstance(key, list):
        if len(key) != count:
            raise KitError(f"data.{field_name} names {len(key)} arrays but the model has {count} input(s)",
                           f"list one .npz array per model input, in model order, under data.{field_name}")
        return key
    return [key] if count == 1 else [f"{key}_{i}" for i in range(count)]


@dataclass(frozen=True)
class DataSpec:
    """What loading the data needs: the recipe's `data:` section, the folder its paths are relative to,
    the cap on eval inputs and the seed of random inputs (Recipe.data_spec() builds it)."""

    source: DataSource
    base_dir: Path = Path(".")
    eval_samples: int = 2000
    seed: int = 0


def _from_npz(spec: DataSpec, count: int) -> dict:
    source = spec.source
    path = resolve_path(source.npz, spec.base_dir)
    if not path.is_file():
        raise KitError(f"data file {path} does not exist", "fix data.npz in the recipe (relative to the recipe file)")
    x_names = {role: input_keys(getattr(source, role), count, role) if getattr(source, role) else []
               for role in ("x_train", "x_eval", "x_calibration")}
    wanted = {source.y_train, source.y_eval, "labels"}.union(*x_names.values())
    archive = read_npz(path, "data file", keys=wanted)
    keys = set(archive)

    def inputs(role: str):
        present = [name for name in x_names[role] if name in keys]
        if present and len(present) != len(x_names[role]):
            missing = [name for name in x_names[role] if name not in keys]
            raise KitError(f"data file {path} has {', '.join(present)} but not {', '.join(missing)} "
                           f"(it has {npz_names(path)})", f"store one array per model input, or fix data.{role}")
        if not present:
            return None
        return archive[present[0]] if count == 1 else [archive[name] for name in present]

    arrays = {
        "x_train": inputs("x_train"), "y_train": archive.get(source.y_train),
        "x_eval": inputs("x_eval"), "y_eval": archive.get(source.y_eval),
        "x_calibration": inputs("x_calibration"),
    }
    if source.x_calibration and arrays["x_calibration"] is None:
        raise KitError(f"data file {path} has no array '{source.x_calibration}' (it has {npz_names(path)})",
                       "fix data.x_calibration in the recipe")
    if "labels" in keys:
        arrays["labels"] = [str(x) for x in archive["labels"]]
    arrays |= {key: archive[key] for key in keys if key.startswith(KEY_PREFIX)}
    return arrays


KEY_PREFIX = "key_"


def _sample_keys(arrays: dict, x_train: Optional[np.ndarray]) -> dict[str, np.ndarray]:
    """The 'key_<field>' arrays, one value per training sample."""
    keys = {name.removeprefix(KEY_PREFIX): np.asarray(value) for name, value in arrays.items()
            if name.startswith(KEY_PREFIX)}
    for name, values in keys.items():
        if x_train is None or values.ndim != 1 or len(values) != sample_count(x_train):
            raise KitError(f"data field '{KEY_PREFIX}{name}' must hold one value per training sample "
                           f"({0 if x_train is None else sample_count(x_train)}), got shape {values.shape}",
                           "give one key value per x_train row")
    return keys


def _head(x, count: int):
    return None if x is None else take(x, slice(None, count))


def _scaled(x, scale: float, offset: float) -> Optional[Inputs]:
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return [_scaled(part, scale, offset) for part in x]
    x = np.asarray(x)
    if np.iscomplexobj(x):  # from a data builder: .npz files are checked on reading
        raise KitError(f"input arrays are complex ({x.dtype}), and the kit does not drop imaginary parts",
                       "give real inputs (e.g. the magnitude, or real and imaginary parts as channels)")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise KitError(f"input arrays must be numeric, got dtype {x.dtype}", "store the inputs as numbers (e.g. float32 or uint8)")
    return (x.astype(np.float32) * np.float32(scale) + np.float32(offset)).astype(np.float32)


def _check_label_text(labels) -> None:
    """Labels become C string literals (model_settings.h): refuse, before any training, what none can hold."""
    for label in labels or ():
        text = str(label)
        if "\0" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            raise KitError(f"label {text!r} contains a NUL character or a lone surrogate, which no C string can hold",
                           "use printable text for the labels (any other Unicode is escaped)")


def _random_inputs(spec: DataSpec, shapes: list[tuple]) -> Inputs:
    """Seeded uniform inputs, drawn input after input from one generator."""
    rng, random = np.random.default_rng(spec.seed), spec.source.random
    drawn = [rng.uniform(random.low, random.high, (random.samples, *shape)).astype(np.float32) for shape in shapes]
    return drawn[0] if len(shapes) == 1 else drawn


def _check_inputs(name: str, x: Inputs, shapes: list[tuple]) -> None:
    """`x` holds one array per model input, each of the input's shape, all with the same samples."""
    parts = input_list(x)
    if len(parts) != len(shapes) or (len(shapes) > 1 and not isinstance(x, (list, tuple))):
        raise KitError(f"{name} inputs hold {len(parts) if isinstance(x, (list, tuple)) else 'one array'} but the "
                       f"model has {len(shapes)} inputs", "give a list with one array per model input, in model order")
    for i, (part, shape) in enumerate(zip(parts, shapes)):
        which, have, contain = (f"{name} inputs", "have", "contain") if len(shapes) == 1 else \
            (f"{name} input {i}", "has", "contains")
        if tuple(part.shape[1:]) != tuple(shape):
            raise KitError(f"{which} {have} shape {tuple(part.shape[1:])} per sample but the model takes {tuple(shape)}",
                           "reshape the arrays (e.g. add a channel axis) to the model's input shape")
        if not np.isfinite(part).all():
            raise KitError(f"{which} {contain} NaN or infinity", "clean the data before converting")
    if len({len(part) for part in parts}) > 1:
        raise KitError(f"{name} inputs hold different numbers of samples per input ({[len(p) for p in parts]})",
                       "give every input the same number of samples, in matching order")


def load_data(spec: DataSpec, input_shape: tuple | list[tuple]) -> Dataset:
    """Load the arrays and check them against the model's inputs: `input_shape` is the shape of the one
    input (without batch), or a list with every input's shape, in model order."""
    shapes = [tuple(shape) for shape in input_shape] if isinstance(input_shape, list) else [tuple(input_shape)]
    if not shapes:
        raise KitError("the model has no inputs", "re-export the model with its input tensors")
    source = spec.source
    if source.npz is not None:
        arrays = _from_npz(spec, len(shapes))
    elif source.random is not None:
        arrays = {"x_calibration": _random_inputs(spec, shapes)}
        arrays["x_eval"] = arrays["x_calibration"]
    else:
        arrays = load_function(source.builder, spec.base_dir, "data")(**source.builder_args)
        if not isinstance(arrays, dict):
            raise KitError(f"data builder {source.builder} returned {type(arrays).__name__}, not a dict",
                           "return a dict with x_train, y_train, x_eval, y_eval (and optional x_calibration, labels)")
    x_train = _scaled(arrays.get("x_train"), source.scale, source.offset)
    # Float and int8 quality are scored on the same capped eval set, so they compare.
    x_eval = _scaled(_head(arrays.get("x_eval"), spec.eval_samples), source.scale, source.offset)
    x_cal = _scaled(arrays.get("x_calibration"), source.scale, source.offset)
    if x_cal is None:
        x_cal = x_train if x_train is not None else x_eval
    if x_cal is None or sample_count(x_cal) == 0:
        raise KitError("the data has no inputs to calibrate with (no x_calibration, x_train or x_eval, or it is empty)",
                       "provide calibration inputs in the data source")
    for name, x in (("calibration", x_cal), ("train", x_train), ("eval", x_eval)):
        if x is not None:
            _check_inputs(name, x, shapes)
    labels = source.labels or arrays.get("labels")
    _check_label_text(labels)
    y_train, y_eval = arrays.get("y_train"), _head(arrays.get("y_eval"), spec.eval_samples)
    for name, x, y in (("train", x_train, y_train), ("eval", x_eval, y_eval)):
        if x is not None and y is not None and sample_count(x) != len(y):
            raise KitError(f"{name} has {sample_count(x)} inputs but {len(y)} labels", "give one label per input")
    return Dataset(
        x_train=x_train, y_train=None if y_train is None else np.asarray(y_train),
        x_calibration=x_cal, x_eval=x_eval, y_eval=None if y_eval is None else np.asarray(y_eval),
        labels=list(labels) if labels is not None else None, keys=_sample_keys(arrays, x_train),
    )


def check_training_labels(losses: set[str], data: Dataset, model) -> None:
    """Before any training: the labels fit `losses` (the label loss of every stage that trains,
    Recipe.training_losses()) and the model's output width (TensorFlow's own error for a label of 99 on
    10 outputs is a graph-execution traceback)."""
    if not losses or data.y_train is None:
        return
    y, width = np.asarray(data.y_train), model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if np.iscomplexobj(y) or not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise KitError(f"training labels (y_train) are {y.dtype}, not numbers", "store the labels as integers")
    if not np.isfinite(y).all():
        raise KitError("training labels (y_train) contain NaN or infinity", "clean the labels before converting")
    fix = f"fix y_train, or give the model as many outputs as there are classes (it has {width})"
    if "sparse_categorical_crossentropy" in losses and width is not None:
        flat = y.reshape(-1).astype(np.float64)
        bad = np.unique(flat[(flat < 0) | (flat >= width) | (flat != np.round(flat))])
        if bad.size:
            shown = ", ".join(f"{v:g}" for v in bad[:5]) + (" ..." if bad.size > 5 else "")
            raise KitError(f"training labels must be class indices 0 to {width - 1} for the model's {width} "
                           f"outputs, but y_train holds {shown}", fix)
    if "categorical_crossentropy" in losses and width is not None and (y.ndim < 2 or y.shape[-1] != width):
        raise KitError(f"categorical_crossentropy needs one-hot labels of width {width}, but y_train has shape "
                       f"{y.shape}", "one-hot encode y_train, or use loss: sparse_categorical_crossentropy")
