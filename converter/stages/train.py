"""Fit the float model (for builders that return an untrained architecture)."""
from __future__ import annotations

from ..recipe import TrainSettings
from .training import compile_for_training, fit
from . import StageResult, timed_keras_stage


def _train(model, settings: TrainSettings, data, seed):
    compile_for_training(model, settings.loss, settings.learning_rate)
    losses = fit(model, data, settings.epochs, settings.batch_size, seed, stage="train")
    return model, {"loss_per_epoch": [round(x, 5) for x in losses]}


def run(model, settings: TrainSettings, data, seed: int = 0) -> StageResult:
    return timed_keras_stage("train", _train, model, settings, data, seed)
