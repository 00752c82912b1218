"""Fit the float model (for builders that return an untrained architecture)."""
from __future__ import annotations

from pydantic import Field

from .base import KerasStage, StageContext, StageSettings, register
from .training import LOSSES, compile_for_training, fit, rounded_losses


class TrainSettings(StageSettings):
    """Fit the float model on data.x_train before optimizing (for builders that return it untrained)."""

    epochs: int = Field(5, ge=1, le=1000)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    loss: LOSSES = "sparse_categorical_crossentropy"


@register
class Train(KerasStage):
    name = "train"
    Settings = TrainSettings
    keras3_instead = None  # compile and fit with the model's own Keras (training.compile_for_training)

    def transform(self, model, settings: TrainSettings, context: StageContext):
        compile_for_training(model, settings.loss, settings.learning_rate)
        losses = fit(model, context.data, settings.epochs, settings.batch_size, context.seed, stage="train",
                     events=context.events)
        return model, {"loss_per_epoch": rounded_losses(losses)}


def run(model, settings: TrainSettings, data, seed: int = 0, **context):
    return Train().run(model, settings, StageContext(data, seed, **context))
