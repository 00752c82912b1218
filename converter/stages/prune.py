"""Magnitude pruning with TF-MOT, fine-tuned, then stripped back to plain Keras layers."""
from __future__ import annotations

import math

from pydantic import Field, model_validator
from typing import Literal

from ..errors import KitError, foreign_text
from ..inputs.dataset import sample_count
from .base import KerasStage, StageContext, StageSettings, register
from .training import LOSSES, compile_for_training, fit, freeze_batch_norm, rounded_losses


class PruneSettings(StageSettings):
    final_sparsity: float = Field(0.5, gt=0.0, lt=1.0)
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    schedule: Literal["constant", "polynomial"] = "polynomial"
    structured_2_4: bool = False
    epochs: int = Field(2, ge=1, le=1000)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    loss: LOSSES = "sparse_categorical_crossentropy"
    freeze_batch_norm: bool = Field(True, description="fine-tune with BatchNormalization in inference mode (its "
                                    "moving statistics stay the float model's)")

    @model_validator(mode="after")
    def _ordered(self):
        if self.schedule == "polynomial" and self.initial_sparsity >= self.final_sparsity:
            raise ValueError("initial_sparsity must be below final_sparsity")
        return self


def _schedule(settings: PruneSettings, end_step: int):
    import tensorflow_model_optimization as tfmot

    sparsity = tfmot.sparsity.keras
    if settings.schedule == "constant":
        return sparsity.ConstantSparsity(settings.final_sparsity, begin_step=0, frequency=max(1, end_step // 10))
    return sparsity.PolynomialDecay(initial_sparsity=settings.initial_sparsity, final_sparsity=settings.final_sparsity,
                                    begin_step=0, end_step=end_step, frequency=max(1, end_step // 10))


@register
class Prune(KerasStage):
    """Zero the smallest weights on a schedule while fine-tuning (or 2 of every 4 with structured_2_4).
    TF-MOT cannot prune a model wrapped for quantization-aware training: prune comes before qat."""
    keras3_instead = ("TF-MOT pruning takes tf_keras models only: drop the stage and use compress int4: true or "
                      "lut: true after quantize (the kit's own weight compression), or build the model with tf_keras")

    name, Settings, must_not_follow = "prune", PruneSettings, ("qat",)

    def transform(self, model, settings: PruneSettings, context: StageContext):
        import tensorflow_model_optimization as tfmot

        data = context.data
        steps_per_epoch = math.ceil(sample_count(data.x_train) / settings.batch_size) if data.trainable else 1
        end_step = max(1, steps_per_epoch * settings.epochs - 1)
        kwargs = {"pruning_schedule": _schedule(settings, end_step)}
        if settings.structured_2_4:
            # m_by_n pruning fixes 50% sparsity in every 4-block; the schedule only sets when masks update.
            kwargs["sparsity_m_by_n"] = (2, 4)
        try:
            wrapped = tfmot.sparsity.keras.prune_low_magnitude(model, **kwargs)
        except ValueError as exc:
            raise KitError(f"TF-MOT cannot prune this model: {foreign_text(exc)}",
                           "remove the prune stage or replace the unsupported layer") from None
        if settings.freeze_batch_norm:
            freeze_batch_norm(wrapped)
        compile_for_training(wrapped, settings.loss, settings.learning_rate)
        losses = fit(wrapped, data, settings.epochs, settings.batch_size, context.seed,
                     callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], stage="prune", events=context.events)
        stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
        freeze_batch_norm(stripped, frozen=False)  # later stages train BN as usual
        return stripped, {"loss_per_epoch": rounded_losses(losses), "end_step": end_step}


def run(model, settings: PruneSettings, data, seed: int = 0, **context):
    return Prune().run(model, settings, StageContext(data, seed, **context))
