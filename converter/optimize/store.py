"""search.json: every finished trial, saved after each one, so an interrupted search resumes.

A search directory holds one search. Its settings (recipe, board, guards, objective, space,
fine-tuning) are fingerprinted; a later run with other settings is refused rather than mixed in.
Running the same command again with a larger --trials extends the search.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import KitError
from ..reports.manifest import tool_versions
from ..system.safe_yaml import load_json_file
from .trial import CRASHED, ERROR, TrialResult

FILE = "search.json"


def fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder, so a reader never sees half a file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)


@dataclass
class SearchStore:
    folder: Path
    settings: dict
    trials: list[TrialResult] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.folder / FILE

    @staticmethod
    def claim(folder: Path) -> None:
        """Mark a new search folder with its record before anything else is written there (the teacher and
        the split data come first): an interrupted search is then recognised, and continued, by its record."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / FILE).is_file():
            write_atomic(folder / FILE, json.dumps({"fingerprint": None, "settings": {}, "summary": {}, "trials": [],
                                                    "tools": tool_versions()}, indent=1) + "\n")

    @staticmethod
    def open(folder: Path, settings: dict) -> "SearchStore":
        """The stored search in `folder` (resumed), or a new one (also when only claim() wrote the record)."""
        store = SearchStore(Path(folder), settings)
        if not store.path.is_file():
            return store
        saved = load_json_file(store.path, "search record", "move it away to start a new search there")
        if saved.get("fingerprint") is None and not saved.get("trials"):
            return store
        if saved.get("fingerprint") != fingerprint(settings):
            raise KitError(f"{folder} holds a search with other settings (recipe, board, guards, objective or "
                           "fine-tuning)", "use the same options to resume or extend it, or another --out")
        store.trials = [TrialResult.from_dict(row) for row in saved.get("trials", [])]
        return store

    def next_number(self) -> int:
        return max((t.number for t in self.trials), default=-1) + 1

    def add(self, result: TrialResult) -> None:
        self.trials.append(result)
        self.save()

    def counts(self) -> dict:
        failed = sum(t.status in (ERROR, CRASHED) for t in self.trials)
        return {"done": len(self.trials), "passed": sum(t.passed for t in self.trials), "failed": failed}

    def done_phase(self, phase: str) -> list[TrialResult]:
        return [t for t in self.trials if t.phase == phase]

    def best(self, objective: str) -> Optional[TrialResult]:
        """The passing trial with the lowest objective, ties broken by the better quality."""
        passing = [t for t in self.trials if t.passed and t.cost]
        key = comparable_key(passing, objective)
        passing = [t for t in passing if t.cost.get(key) is not None]
        if not passing:
            return None
        return min(passing, key=lambda t: (t.cost[key], -quality_score(t)))

    def save(self) -> None:
        content = {"fingerprint": fingerprint(self.settings), "settings": self.settings,
                   "summary": self.summary, "trials": [t.as_dict() for t in self.trials], "tools": tool_versions()}
        write_atomic(self.path, json.dumps(content, indent=1, default=str) + "\n")


def cost_key(objective: str) -> str:
    return {"flash": "flash_bytes", "ram": "arena_bytes", "latency": "instructions"}[objective]


# The figure every trial has from the same source (footprint data or flatbuffer; TFLM's host runtime):
# a linked image holds the firmware's self-test program and golden vectors too, so it must not be
# compared with a footprint estimate of another trial.
HOST_SIDE = {"flash": "flash_estimate_bytes", "ram": "arena_host_bytes", "latency": "instructions"}


def comparable_key(trials: list[TrialResult], objective: str) -> str:
    """The cost field to rank `trials` by: the measured figure when all of them have it from one source
    (e.g. every one a linked image), else the host-side figure they all share."""
    measured = cost_key(objective)
    source = {"flash": "flash_source", "ram": "arena_source"}.get(objective)
    if source is None:
        return measured
    sources = {(t.cost or {}).get(source) for t in trials}
    have_all = all((t.cost or {}).get(measured) is not None for t in trials)
    return measured if len(sources) == 1 and have_all else HOST_SIDE[objective]


def search_value(cost: Optional[dict], objective: str) -> Optional[float]:
    """The value the optimizer learns from: the host-side figure, which every trial has from the same
    source (passing trials measured on the device would otherwise be ranked against estimates)."""
    cost = cost or {}
    value = cost.get(HOST_SIDE[objective])
    return cost.get(cost_key(objective)) if value is None else value


def quality_score(trial: TrialResult) -> float:
    """One number for 'how close to the float model': top-1 agreement for classifiers, else SQNR in dB."""
    metrics = trial.metrics or {}
    if "top1_agreement" in metrics:
        return float(metrics["top1_agreement"])
    sqnr = metrics.get("min_sqnr_db", float("-inf"))
    return float(sqnr) if not isinstance(sqnr, str) else float(sqnr.replace("inf", "1e9"))
