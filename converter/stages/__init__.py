"""Pipeline stages: one file per stage, the kinds and the record in base.py, the list in registry.py.

`run(model, settings, data, seed)` in each stage module and `stage_runner(kind)` stay as the short
way to run one stage outside a recipe (tests, notebooks).
"""
from __future__ import annotations

from typing import Callable

from .base import StageContext, StageRecord, StageResult

__all__ = ["StageContext", "StageRecord", "StageResult", "run_stage", "stage_runner"]


def run_stage(kind: str, model, settings, data, seed: int = 0, **context) -> StageResult:
    from .registry import get

    return get(kind).run(model, settings, StageContext(data, seed, **context))


def stage_runner(kind: str) -> Callable[..., StageResult]:
    def run(model, settings, data, seed: int = 0, **context) -> StageResult:
        return run_stage(kind, model, settings, data, seed, **context)
    return run
