"""Pipeline stages. Each has one shape: `run(model, settings, data, seed) -> StageResult`.

A stage takes a model and its settings and returns the new model plus a record of
what it did (JSON-ready), so stages compose in any order and test alike.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..inputs.dataset import Dataset
from .training import keras_quality
from .weights import overall_sparsity, weight_stats


@dataclass
class StageResult:
    model: Any
    record: dict = field(default_factory=dict)


def timed_keras_stage(kind: str, transform: Callable, model, settings, data: Dataset, seed: int) -> StageResult:
    """Run a Keras-to-Keras transform and record quality and weights before and after."""
    started = time.perf_counter()
    before = keras_quality(model, data)
    new_model, details = transform(model, settings, data, seed)
    after_weights = weight_stats(new_model)
    record = {
        "stage": kind,
        "settings": settings.model_dump(),
        **details,
        "quality_before": before,
        "quality_after": keras_quality(new_model, data),
        "sparsity_after": overall_sparsity(after_weights),
        "layers": after_weights,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return StageResult(new_model, record)


def stage_runner(kind: str) -> Callable[..., StageResult]:
    from . import cluster, distill, federated, prune, qat, train

    return {"train": train.run, "prune": prune.run, "cluster": cluster.run, "qat": qat.run,
            "distill": distill.run, "federated": federated.run}[kind]
