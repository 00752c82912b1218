"""Data splits for a search: fine-tuning and calibration never see the selection set.

Candidates are chosen on the selection set, so it must be held out from everything that shapes
a candidate. The recipe's eval inputs are the selection set when the fine-tuning and calibration
inputs are other samples; when they overlap (a recipe that calibrates on its eval inputs, or has
only one array), a seeded random part of the pool is held out instead. Rows that are byte-identical
to a selection row are then dropped from the fine-tuning and calibration inputs, so a duplicated
sample cannot leak either.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import KitError
from ..inputs.dataset import Dataset

HELD_OUT_FRACTION = 0.5   # of a shared pool, when the recipe has no separate eval inputs
MIN_SELECTION = 8


@dataclass(frozen=True)
class Splits:
    """What each part of a search may use."""

    x_fit: np.ndarray                 # fine-tuning inputs (the training inputs, else the calibration inputs)
    y_fit: Optional[np.ndarray]       # their labels, when the recipe has them
    x_calibration: np.ndarray
    x_selection: np.ndarray           # judges candidates; nothing else sees it
    y_selection: Optional[np.ndarray]
    note: str                         # how the split was made, for the report

    def sizes(self) -> dict:
        return {"fit": int(len(self.x_fit)), "calibration": int(len(self.x_calibration)),
                "selection": int(len(self.x_selection)), "labeled_selection": self.y_selection is not None}


def _row_keys(x: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in np.ascontiguousarray(x, dtype=np.float32)]


def _without(x: np.ndarray, y: Optional[np.ndarray], held_out: set[bytes]):
    keep = np.array([key not in held_out for key in _row_keys(x)], dtype=bool)
    return x[keep], (None if y is None else y[keep]), int((~keep).sum())


def _seeded_halves(count: int, seed: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    held = max(MIN_SELECTION, int(round(count * fraction)))
    if held >= count:
        raise KitError(f"the data has {count} samples: too few to hold out a selection set",
                       f"give at least {2 * MIN_SELECTION} real inputs (eval or calibration) in the recipe's data")
    return np.sort(order[held:]), np.sort(order[:held])


def split(data: Dataset, seed: int, fraction: float = HELD_OUT_FRACTION) -> Splits:
    """The seeded split of a recipe's data (already scaled and shape-checked by load_data)."""
    x_fit, y_fit = (data.x_train, data.y_train) if data.x_train is not None else (data.x_calibration, None)
    x_cal = data.x_calibration
    if data.x_eval is not None and len(data.x_eval) >= MIN_SELECTION:
        x_sel, y_sel = data.x_eval, data.y_eval
        eval_keys = set(_row_keys(x_sel))
        fit_left = sum(key not in eval_keys for key in _row_keys(x_fit))
        cal_left = sum(key not in eval_keys for key in _row_keys(x_cal))
        if fit_left and cal_left:
            note = "selection: the recipe's eval inputs; fine-tuning and calibration: its other inputs"
        else:  # fine-tuning or calibration would have only the eval inputs: split them
            fit_part, sel_part = _seeded_halves(len(x_sel), seed, fraction)
            if not fit_left:
                x_fit, y_fit = x_sel[fit_part], (None if y_sel is None else y_sel[fit_part])
            if not cal_left:
                x_cal = x_sel[fit_part]
            x_sel, y_sel = x_sel[sel_part], (None if y_sel is None else y_sel[sel_part])
            note = (f"selection: a seeded {len(sel_part)} of the {len(sel_part) + len(fit_part)} eval inputs "
                    "(the recipe fine-tunes or calibrates on its eval inputs); the rest fine-tune and calibrate")
    else:
        pool, labels = x_fit, y_fit
        fit_part, sel_part = _seeded_halves(len(pool), seed, fraction)
        x_fit, y_fit = pool[fit_part], (None if labels is None else labels[fit_part])
        x_sel, y_sel = pool[sel_part], (None if labels is None else labels[sel_part])
        x_cal, _, _ = _without(x_cal, None, set(_row_keys(x_sel)))
        if not len(x_cal):
            x_cal = x_fit
        note = f"selection: a seeded {len(sel_part)} of {len(pool)} inputs (the recipe has no eval inputs)"
    held_out = set(_row_keys(x_sel))
    x_fit, y_fit, dropped_fit = _without(x_fit, y_fit, held_out)
    x_cal, _, dropped_cal = _without(x_cal, None, held_out)
    if dropped_fit or dropped_cal:
        note += f"; dropped {dropped_fit} fine-tuning and {dropped_cal} calibration inputs equal to a selection input"
    if not len(x_fit) or not len(x_cal):
        raise KitError("after holding out the selection set no inputs are left to fine-tune or calibrate on",
                       "give the recipe separate training/calibration inputs and eval inputs")
    return Splits(x_fit, y_fit, x_cal, x_sel, y_sel, note)


def distillation_targets(teacher_outputs: np.ndarray, labels: Optional[np.ndarray], classifier: bool,
                         softmax_output: bool, label_weight: float) -> np.ndarray:
    """What the student fits: the float model's outputs, as probabilities for a classifier (mixed with
    one-hot labels at `label_weight` when labels exist); the outputs themselves otherwise (MSE)."""
    if not classifier:
        return teacher_outputs.astype(np.float32)
    probabilities = teacher_outputs if softmax_output else _softmax(teacher_outputs)
    if labels is None or label_weight == 0:
        return probabilities.astype(np.float32)
    one_hot = np.eye(probabilities.shape[1], dtype=np.float32)[np.asarray(labels, dtype=np.int64)]
    return ((1 - label_weight) * probabilities + label_weight * one_hot).astype(np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
