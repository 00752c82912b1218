"""Magnitude pruning with TF-MOT, fine-tuned, then stripped back to plain Keras layers."""
from __future__ import annotations

import math

import tensorflow_model_optimization as tfmot

from ..errors import KitError
from ..recipe import PruneSettings
from .training import compile_for_training, fit
from . import StageResult, timed_keras_stage


def _schedule(settings: PruneSettings, end_step: int):
    sparsity = tfmot.sparsity.keras
    if settings.schedule == "constant":
        return sparsity.ConstantSparsity(settings.final_sparsity, begin_step=0, frequency=max(1, end_step // 10))
    return sparsity.PolynomialDecay(initial_sparsity=settings.initial_sparsity, final_sparsity=settings.final_sparsity,
                                    begin_step=0, end_step=end_step, frequency=max(1, end_step // 10))


def _prune(model, settings: PruneSettings, data, seed):
    steps_per_epoch = math.ceil(len(data.x_train) / settings.batch_size) if data.trainable else 1
    end_step = max(1, steps_per_epoch * settings.epochs - 1)
    kwargs = {"pruning_schedule": _schedule(settings, end_step)}
    if settings.structured_2_4:
        # m_by_n pruning fixes 50% sparsity in every 4-block; the schedule only sets when masks update.
        kwargs["sparsity_m_by_n"] = (2, 4)
    try:
        wrapped = tfmot.sparsity.keras.prune_low_magnitude(model, **kwargs)
    except ValueError as exc:
        raise KitError(f"TF-MOT cannot prune this model: {' '.join(str(exc).split())[:200]}",
                       "remove the prune stage or replace the unsupported layer") from None
    compile_for_training(wrapped, settings.loss, settings.learning_rate)
    losses = fit(wrapped, data, settings.epochs, settings.batch_size, seed,
                 callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], stage="prune")
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    return stripped, {"loss_per_epoch": [round(x, 5) for x in losses], "end_step": end_step}


def run(model, settings: PruneSettings, data, seed: int = 0) -> StageResult:
    return timed_keras_stage("prune", _prune, model, settings, data, seed)
