"""Before the first trial: the float model (teacher) and the split data, saved in the search directory.

- teacher.h5: the recipe's model after its train/distill stages (fitted on the fine-tuning split only).
  The recipe's other stages (prune, cluster, qat) are what the search replaces, so they are not run.
- data.npz: the split data in the keys a recipe reads (x_train/y_train: fine-tuning inputs and their
  distillation targets; x_calibration, only when it differs from x_train; x_test/y_test: the
  selection set), plus teacher_<j>: the float model's outputs on the selection set, and labels. Trial recipes point at both files, so every
  candidate, and the winner rebuilt by `convert`, starts from the same float model and data.
A model the kit cannot retrain (a Keras 3 model, a PyTorch model: TF-MOT and the tf_keras fine-tuning
stages take tf_keras models only) is prepared for the flatbuffer-level levers instead: base.tflite, its
int8 flatbuffer made once (Keras 3: the recipe's quantize section after its train stages; PyTorch:
litert-torch in the child process, trained and calibrated on the fine-tuning split), replaces
teacher.h5, and teacher_0 holds the float model's outputs on the selection set (Keras 3: predicted;
PyTorch: computed by the child on the float module). No teacher file means no retraining lever.
An interrupted search keeps these files and reuses them.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import KitError
from ..inputs.dataset import Dataset
from ..inputs.npz import save_npz
from ..recipe import Recipe
from .guards import CLASSIFIER, task_of
from .space import BASE_MODEL, FLATBUFFER, KERAS
from .splits import Splits, distillation_targets, split

TEACHER, BASE, DATA = BASE_MODEL[KERAS], BASE_MODEL[FLATBUFFER], "data.npz"
TEACHER_STAGES = ("train", "distill")
RETRAINABLE = "a tf_keras model"


@dataclass(frozen=True)
class Prepared:
    task: str                  # classifier | regression
    loss: str                  # fits the distillation targets
    selection_size: int
    separate_calibration: bool  # data.npz holds x_calibration (it differs from the fine-tuning inputs)
    split_sizes: dict
    split_note: str
    float_accuracy: float | None
    model: object              # the teacher (tf_keras), or the int8 flatbuffer's bytes (flatbuffer base)
    base: str = KERAS          # what the candidates start from, which decides the levers (space.Space.base)
    what: str = RETRAINABLE    # the model in words, for the line saying which levers it cannot take


def _softmax_output(model) -> bool:
    from ..stages.training import _outputs_probabilities

    return _outputs_probabilities(model)


def _teacher(model, recipe: Recipe, data, log) -> object:
    from ..stages import run_stage

    for stage in recipe.stages:
        if stage.kind not in TEACHER_STAGES:
            continue
        log(f"float model: {stage.kind}")
        # the stage resolves a student builder against base_dir itself (StageContext)
        model = run_stage(stage.kind, model, stage.settings, data, recipe.seed, base_dir=recipe.base_dir).model
    return model


def prepare(recipe: Recipe, folder: Path, label_weight: float, log: Callable[[str], None]) -> Prepared:
    """The float (teacher) model and the split data every trial starts from: saved in `folder` the first
    time, reused when a search resumes."""
    from ..system import tf_env

    teacher_path, base_path, data_path = folder / TEACHER, folder / BASE, folder / DATA
    if data_path.is_file() and (teacher_path.is_file() or base_path.is_file()):
        found = teacher_path if teacher_path.is_file() else base_path
        log(f"resuming: reusing {found} and {data_path}")
        arrays, note, sizes = _saved_arrays(data_path)
        tf_env.reseed(recipe.seed)
        model = tf_env.keras().models.load_model(teacher_path, compile=False) if found == teacher_path \
            else base_path.read_bytes()
        base = KERAS if found == teacher_path else FLATBUFFER
        what = _text(arrays.get("model_kind", RETRAINABLE))
    elif recipe.model.torch is None and recipe.model.is_flatbuffer:
        raise KitError("optimize judges candidates against the float model, and a .tflite holds none",
                       "give the recipe the float model (Keras or PyTorch), or convert the .tflite with compress "
                       "settings (int4, lut, memory_plan) instead")
    else:
        model, arrays, note, sizes = _first_preparation(recipe, folder, label_weight, log)
        base = KERAS if teacher_path.is_file() else FLATBUFFER
        what = _text(arrays.get("model_kind", RETRAINABLE))
    selection, labels, teacher_out = arrays["x_test"], arrays.get("y_test"), arrays["teacher_0"]
    task = task_of(teacher_out, labels, selection)
    accuracy = None
    if task == CLASSIFIER and labels is not None:
        accuracy = float(np.mean(np.argmax(teacher_out, axis=1) == labels))
    return Prepared(task, "categorical_crossentropy" if task == CLASSIFIER else "mse", int(len(selection)),
                    "x_calibration" in arrays, sizes, note, accuracy, model, base, what)


def _text(value) -> str:
    """A string saved in data.npz (save_npz stores it as a 1-element array) as the string it was."""
    return str(np.asarray(value).reshape(-1)[0])


def _saved_arrays(data_path: Path) -> tuple[dict, str, dict]:
    """A resumed search's arrays, the split's note and its sizes."""
    with np.load(data_path) as saved:
        arrays = {k: saved[k] for k in saved.files}
    note = _text(arrays["split_note"]) if "split_note" in arrays else ""
    sizes = {"fit": len(arrays["x_train"]), "calibration": len(arrays.get("x_calibration", arrays["x_train"])),
             "selection": len(arrays["x_test"]), "labeled_selection": arrays.get("y_test") is not None}
    return arrays, note, sizes


def _split_data(recipe: Recipe, shapes) -> tuple[Dataset, Splits, Dataset]:
    """(the recipe's data, its split, the data the model may see: fine-tuning, calibration; the
    selection set as its eval inputs, which only score the float model)."""
    from ..inputs.dataset import load_data

    loaded = load_data(recipe.data_spec(), shapes)
    parts = split(loaded, recipe.seed)
    return loaded, parts, replace(loaded, x_train=parts.x_fit, y_train=parts.y_fit,
                                  x_calibration=parts.x_calibration, x_eval=parts.x_selection,
                                  y_eval=parts.y_selection)


def _first_preparation(recipe: Recipe, folder: Path, label_weight: float, log: Callable[[str], None]) -> tuple:
    """Load, split, run the recipe's teacher stages, and save the teacher (or, for a model the kit cannot
    retrain, its int8 flatbuffer) and the arrays atomically."""
    from ..inputs.keras_model import load_model, single_input_shape
    from ..stages.base import check_keras3
    from ..stages.training import predict
    from ..system import tf_env

    if recipe.model.torch is not None:  # seeded in the child (TensorFlow is not imported for it)
        return _torch_base(recipe, folder, log)
    tf_env.reseed(recipe.seed)
    model = load_model(recipe.model, recipe.base_dir)
    if tf_env.is_keras3(model):  # TF-MOT and tf_keras fine-tuning cannot take it: the flatbuffer levers
        # a TF-MOT stage the recipe asks for is refused in one line, as convert refuses it
        check_keras3(model, [stage.kind for stage in recipe.stages], f"model {recipe.model.path or recipe.model.builder}")
        return _keras3_base(model, recipe, folder, log)
    loaded, parts, fit_data = _split_data(recipe, single_input_shape(model))
    teacher_path, data_path = folder / TEACHER, folder / DATA
    model = _teacher(model, recipe, fit_data, log)
    teacher_out = predict(model, parts.x_selection)
    task = task_of(teacher_out, parts.y_selection, parts.x_selection)
    targets = distillation_targets(predict(model, parts.x_fit), parts.y_fit, task == CLASSIFIER,
                                   _softmax_output(model), label_weight)
    arrays = {"x_train": parts.x_fit, "y_train": targets, "x_test": parts.x_selection, "teacher_0": teacher_out,
              "split_note": np.array(parts.note)}
    if not np.array_equal(parts.x_calibration, parts.x_fit):
        arrays["x_calibration"] = parts.x_calibration
    if parts.y_selection is not None:
        arrays["y_test"] = parts.y_selection
    if loaded.labels:
        arrays["labels"] = np.array(loaded.labels)
    _save_model_atomic(model, teacher_path)
    _save_npz_atomic(data_path, arrays)
    return model, arrays, parts.note, parts.sizes()


def _keras3_base(model, recipe: Recipe, folder: Path, log: Callable[[str], None]) -> tuple:
    """A Keras 3 model: its train stages on the fine-tuning split, its float outputs on the selection set,
    then the recipe's quantize section once: base.tflite."""
    from ..inputs.keras_model import single_input_shape
    from ..stages import run_stage
    from ..stages.training import predict

    loaded, parts, fit_data = _split_data(recipe, single_input_shape(model))
    model = _teacher(model, recipe, fit_data, log)
    log(f"int8 base model: quantize ({recipe.quantize.mode}) once; candidates change the flatbuffer only")
    model_bytes = run_stage("quantize", model, recipe.quantize, fit_data, recipe.seed, base_dir=recipe.base_dir).model
    return _save_flatbuffer_base(folder, model_bytes, predict(model, parts.x_selection), loaded, parts,
                                 "a Keras 3 model")


def _torch_base(recipe: Recipe, folder: Path, log: Callable[[str], None]) -> tuple:
    """A PyTorch model: litert-torch's int8 flatbuffer, from the child process that also runs the float
    module on the selection set (its eval inputs here); the builder trains on the fine-tuning split."""
    from ..inputs.torch_model import convert_torch, torch_python

    source = recipe.model.torch
    python = torch_python(source)  # the extra (or the named Python) before any work
    loaded, parts, fit_data = _split_data(recipe, [tuple(source.input_shape)])
    conversion = convert_torch(source, recipe.base_dir, fit_data, recipe.seed, python)
    log(conversion.note())
    return _save_flatbuffer_base(folder, conversion.model_bytes, conversion.float_outputs, loaded, parts,
                                 "a PyTorch model")


def _save_flatbuffer_base(folder: Path, model_bytes: bytes, float_outputs, loaded: Dataset, parts: Splits,
                          what: str) -> tuple:
    """base.tflite and data.npz (no distillation targets: nothing is fine-tuned on a flatbuffer base)."""
    if float_outputs is None or len(float_outputs) != len(parts.x_selection):
        raise KitError(f"the float model of {what} gave no outputs for the {len(parts.x_selection)} selection inputs",
                       "check that its builder returns a module whose forward takes a batch of inputs")
    arrays = {"x_train": parts.x_fit, "x_test": parts.x_selection, "split_note": np.array(parts.note),
              "teacher_0": np.asarray(float_outputs), "model_kind": np.array(what)}
    if parts.y_fit is not None:
        arrays["y_train"] = parts.y_fit
    if parts.y_selection is not None:
        arrays["y_test"] = parts.y_selection
    if loaded.labels:
        arrays["labels"] = np.array(loaded.labels)
    handle, temporary = tempfile.mkstemp(prefix=".base.", suffix=".tflite", dir=folder)
    with os.fdopen(handle, "wb") as stream:
        stream.write(model_bytes)
    os.replace(temporary, folder / BASE)
    _save_npz_atomic(folder / DATA, arrays)
    return model_bytes, arrays, parts.note, parts.sizes()


def _save_model_atomic(model, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(prefix=".teacher.", suffix=".h5", dir=path.parent)
    os.close(handle)
    model.save(temporary, save_format="h5", include_optimizer=False)
    os.replace(temporary, path)


def _save_npz_atomic(path: Path, arrays: dict) -> None:
    handle, temporary = tempfile.mkstemp(prefix=".data.", suffix=".npz", dir=path.parent)
    os.close(handle)
    save_npz(Path(temporary), arrays)
    os.replace(temporary, path)
