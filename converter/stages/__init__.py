"""Pipeline stages: one file per stage, the kinds and the record in base.py, the list in registry.py.

`run(model, settings, data, seed)` in each stage module and `stage_runner(kind)` stay as the short
way to run one stage outside a recipe (tests, notebooks).
"""
from __future__ import annotations

from typing import Callable

from .base import StageContext, StageRecord, StageResult

__all__ = ["StageContext", "StageRecord", "StageResult", "run_stage", "stage_runner", "timed_keras_stage"]


def run_stage(kind: str, model, settings, data, seed: int = 0, **context) -> StageResult:
    from .registry import get

    return get(kind).run(model, settings, StageContext(data, seed, **context))


def stage_runner(kind: str) -> Callable[..., StageResult]:
    def run(model, settings, data, seed: int = 0, **context) -> StageResult:
        return run_stage(kind, model, settings, data, seed, **context)
    return run


def timed_keras_stage(kind: str, transform: Callable, model, settings, data, seed: int = 0) -> StageResult:
    """For a stage written before stages/base.py (`transform(model, settings, data, seed)`): runs it
    as a KerasStage so its record is built the one way. New stages subclass KerasStage and register."""
    from .base import KerasStage

    class Adapted(KerasStage):
        name = kind

        def transform(self, model, settings, context):
            return transform(model, settings, context.data, context.seed)

    return Adapted().run(model, settings, StageContext(data, seed))
