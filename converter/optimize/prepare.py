"""Before the first trial: the float model (teacher) and the split data, saved in the search directory.

- teacher.h5: the recipe's model after its train/distill stages (fitted on the fine-tuning split only).
  The recipe's other stages (prune, cluster, qat) are what the search replaces, so they are not run.
- data.npz: the split data in the keys a recipe reads (x_train/y_train: fine-tuning inputs and their
  distillation targets; x_calibration, only when it differs from x_train; x_test/y_test: the
  selection set), plus teacher_<j>: the float model's outputs on the selection set, and labels. Trial recipes point at both files, so every
  candidate, and the winner rebuilt by `convert`, starts from the same float model and data.
An interrupted search keeps these files and reuses them.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..inputs.npz import save_npz
from ..recipe import Recipe
from .guards import CLASSIFIER, task_of
from .splits import distillation_targets, split

TEACHER, DATA = "teacher.h5", "data.npz"
TEACHER_STAGES = ("train", "distill")


@dataclass(frozen=True)
class Prepared:
    task: str                  # classifier | regression
    loss: str                  # fits the distillation targets
    selection_size: int
    separate_calibration: bool  # data.npz holds x_calibration (it differs from the fine-tuning inputs)
    split_sizes: dict
    split_note: str
    float_accuracy: float | None
    model: object              # the teacher (Keras), for the search space


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
    from ..flows.convert import _input_shape
    from ..inputs.dataset import load_data
    from ..inputs.keras_model import load_model
    from ..system import tf_env
    from ..stages.training import predict

    keras = tf_env.keras()
    keras.utils.set_random_seed(recipe.seed)
    teacher_path, data_path = folder / TEACHER, folder / DATA
    resumed = teacher_path.is_file() and data_path.is_file()
    if resumed:
        log(f"resuming: reusing {teacher_path} and {data_path}")
        model = keras.models.load_model(teacher_path, compile=False)
        with np.load(data_path) as saved:
            arrays = {k: saved[k] for k in saved.files}
        selection, labels = arrays["x_test"], arrays.get("y_test")
        note = str(arrays["split_note"]) if "split_note" in arrays else ""
        sizes = {"fit": len(arrays["x_train"]), "calibration": len(arrays.get("x_calibration", arrays["x_train"])),
                 "selection": len(selection), "labeled_selection": labels is not None}
        teacher_out = arrays["teacher_0"]
    else:
        model = load_model(recipe)
        loaded = load_data(recipe, _input_shape(model))
        parts = split(loaded, recipe.seed)
        fit_data = replace(loaded, x_train=parts.x_fit, y_train=parts.y_fit, x_calibration=parts.x_calibration,
                           x_eval=parts.x_selection, y_eval=parts.y_selection)
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
        selection, labels, note, sizes = parts.x_selection, parts.y_selection, parts.note, parts.sizes()
    task = task_of(teacher_out, labels, selection)
    accuracy = None
    if task == CLASSIFIER and labels is not None:
        accuracy = float(np.mean(np.argmax(teacher_out, axis=1) == labels))
    return Prepared(task, "categorical_crossentropy" if task == CLASSIFIER else "mse", int(len(selection)),
                    "x_calibration" in arrays, sizes, note, accuracy, model)


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
