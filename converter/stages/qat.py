"""Quantization-aware training with TF-MOT: QAT, and the collaborative PQAT / CQAT / PCQAT schemes.

The stage wraps the model with fake-quantization (`quantize_annotate_model` + `quantize_apply`),
fine-tunes it, and hands the wrapped model to the quantize step, whose converter reads the learned
ranges. The collaborative schemes keep what earlier stages made: `prune_preserve` keeps the zeros
of a prune stage (PQAT), `cluster_preserve` keeps the clustered values (CQAT; then LUT compression
still applies), `prune_cluster_preserve` keeps both (PCQAT). So prune and cluster come before qat
(checked when the recipe loads: their `must_not_follow`).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..errors import KitError, foreign_text
from ..system import tf_env
from .base import KerasStage, StageContext, StageSettings, register
from .training import LOSSES, compile_for_training, fit, rounded_losses


class QatSettings(StageSettings):
    """Quantization-aware fine-tuning (TF-MOT); the schemes keep pruning and/or clustering."""

    scheme: Literal["default", "prune_preserve", "cluster_preserve", "prune_cluster_preserve"] = "default"
    epochs: int = Field(1, ge=1, le=1000)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    loss: LOSSES = "sparse_categorical_crossentropy"


def scheme(name: str):
    import tensorflow_model_optimization as tfmot

    combine = tfmot.experimental.combine
    if name == "default":
        return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
    if name == "prune_preserve":
        return combine.Default8BitPrunePreserveQuantizeScheme()
    if name == "cluster_preserve":
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False)
    return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)


@register
class Qat(KerasStage):
    keras3_instead = ("TF-MOT quantization-aware training takes tf_keras models only: drop the stage and use "
                      "post-training quantization (the quantize: section, int8 or int16x8), or build the model with tf_keras")
    name = "qat"
    Settings = QatSettings

    def transform(self, model, settings: QatSettings, context: StageContext):
        import tensorflow_model_optimization as tfmot

        quantization = tfmot.quantization.keras
        try:
            with quantization.quantize_scope():
                annotated = quantization.quantize_annotate_model(model)
                wrapped = quantization.quantize_apply(annotated, scheme(settings.scheme))
        except (ValueError, RuntimeError, TypeError) as exc:
            raise KitError(f"TF-MOT cannot apply quantization-aware training to this model: "
                           f"{foreign_text(exc)}",
                           "remove the qat stage or replace the unsupported layer") from None
        compile_for_training(wrapped, settings.loss, settings.learning_rate)
        losses = fit(wrapped, context.data, settings.epochs, settings.batch_size, context.seed, stage="qat",
                     events=context.events)
        tf_env.keras()  # keep Keras 2 loaded for the converter
        return wrapped, {"loss_per_epoch": rounded_losses(losses), "scheme": settings.scheme}


def run(model, settings: QatSettings, data, seed: int = 0, **context):
    return Qat().run(model, settings, StageContext(data, seed, **context))
