"""Pipeline stages: one file per stage, the kinds and the record in base.py, the list in registry.py.

`run_stage(kind, model, settings, data, seed)` is the one way to run one stage outside a recipe
(tests, bench, the optimize search, notebooks).
"""
from __future__ import annotations

from .base import StageContext, StageRecord, StageResult

__all__ = ["StageContext", "StageRecord", "StageResult", "run_stage"]


def run_stage(kind: str, model, settings, data, seed: int = 0, **context) -> StageResult:
    from .registry import get

    return get(kind).run(model, settings, StageContext(data, seed, **context))
