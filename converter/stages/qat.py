"""Quantization-aware training with TF-MOT: QAT, and the collaborative PQAT / CQAT / PCQAT schemes.

The stage wraps the model with fake-quantization (`quantize_annotate_model` + `quantize_apply`),
fine-tunes it, and hands the wrapped model to the quantize step, whose converter reads the learned
ranges. The collaborative schemes keep what earlier stages made: `prune_preserve` keeps the zeros
of a prune stage (PQAT), `cluster_preserve` keeps the clustered values (CQAT; then LUT compression
still applies), `prune_cluster_preserve` keeps both (PCQAT).
"""
from __future__ import annotations

import tensorflow_model_optimization as tfmot

from ..system import tf_env
from ..errors import KitError
from ..recipe import QatSettings
from .training import compile_for_training, fit
from . import StageResult, timed_keras_stage


def scheme(name: str):
    combine = tfmot.experimental.combine
    if name == "default":
        return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
    if name == "prune_preserve":
        return combine.Default8BitPrunePreserveQuantizeScheme()
    if name == "cluster_preserve":
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False)
    return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)


def _qat(model, settings: QatSettings, data, seed):
    quantization = tfmot.quantization.keras
    try:
        with quantization.quantize_scope():
            annotated = quantization.quantize_annotate_model(model)
            wrapped = quantization.quantize_apply(annotated, scheme(settings.scheme))
    except (ValueError, RuntimeError, TypeError) as exc:
        raise KitError(f"TF-MOT cannot apply quantization-aware training to this model: "
                       f"{' '.join(str(exc).split())[:200]}",
                       "remove the qat stage or replace the unsupported layer") from None
    compile_for_training(wrapped, settings.loss, settings.learning_rate)
    losses = fit(wrapped, data, settings.epochs, settings.batch_size, seed, stage="qat")
    tf_env.keras()  # keep Keras 2 loaded for the converter
    return wrapped, {"loss_per_epoch": [round(x, 5) for x in losses], "scheme": settings.scheme}


def run(model, settings: QatSettings, data, seed: int = 0) -> StageResult:
    return timed_keras_stage("qat", _qat, model, settings, data, seed)
