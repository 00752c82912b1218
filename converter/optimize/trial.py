"""One trial: build a candidate with the convert flow, judge it on the selection set, measure its cost.

Runs inside a Ray worker (or in-process in tests). The candidate is exactly what `convert` makes of
the trial's recipe (saved beside its artifacts), so the winner can be rebuilt by `convert`.
Bad settings (e.g. more clusters than a channel has weights) come back as an "error" result;
only a crash of the worker process is left to the caller to record.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import yaml

from .guards import Guards, judge, quality
from .space import FineTune, candidate_recipe

PASSED, FAILED_GUARD, ERROR, CRASHED = "passed", "failed guard", "error", "crashed"


@dataclass(frozen=True)
class TrialSpec:
    number: int
    phase: str                   # reference | sensitivity | greedy | tpe
    params: dict
    search_dir: str
    base_recipe: object          # the user's Recipe (settings for quantize, golden, name, seed)
    guards: Guards
    fine_tune: FineTune
    loss: str
    selection_size: int
    board: dict
    separate_calibration: bool   # data.npz has x_calibration (else the fine-tuning inputs calibrate)
    device: bool                 # build and run the firmware on the emulated core when the guards hold
    cpus: int = 1                # Ray reserves this many CPUs for the trial. TensorFlow keeps its default
    # thread pools: pools of another size change float sums in fine-tuning, and the trial's model must be
    # byte-identical to what `convert` makes of the same recipe.
    runtime: str = "tflm"        # the runtime whose deployed cost is priced and measured (converter/runtimes)
    space_base: str = "keras"    # what candidates start from: the float teacher or the int8 base (space.BASE_MODEL)


@dataclass
class TrialResult:
    number: int
    phase: str
    params: dict
    status: str
    reason: str = ""
    metrics: dict = field(default_factory=dict)
    constraints: dict = field(default_factory=dict)
    cost: Optional[dict] = None
    model_sha256: Optional[str] = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def as_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(row: dict) -> "TrialResult":
        return TrialResult(**row)


def trial_paths(search_dir: Path, number: int) -> tuple[Path, Path]:
    """(recipe file, artifacts folder) of a trial."""
    return search_dir / "trials" / f"{number:04d}.yaml", search_dir / "trials" / f"{number:04d}"


def selection_arrays(search_dir: Path) -> tuple[np.ndarray, Optional[np.ndarray], list[np.ndarray]]:
    """Selection inputs, their labels (or None) and the float model's outputs on them."""
    with np.load(search_dir / "data.npz") as data:
        labels = data["y_test"] if "y_test" in data.files else None
        teacher = [data[k] for k in sorted((k for k in data.files if k.startswith("teacher_")),
                                           key=lambda k: int(k.split("_")[1]))]
        return data["x_test"], labels, teacher


def judge_model(model_bytes: bytes, search_dir: Path, guards: Guards):
    """Run the int8 model on TFLM over the selection set and judge it against the float model."""
    from ..tflite.model import read_model
    from ..tflm.runners import dequantize, quantize, run_tflm

    x, labels, teacher = selection_arrays(search_dir)
    info = read_model(model_bytes)
    outputs = run_tflm(model_bytes, [quantize(x, info.inputs[0])])
    candidate = [dequantize(out, tensor) for out, tensor in zip(outputs, info.outputs)]
    return judge(guards, quality(teacher, candidate, labels))


def run_trial(spec: TrialSpec) -> TrialResult:
    from ..errors import KitError, foreign_text
    from ..flows.convert import convert
    from ..recipe import parse_recipe
    from .cost import device_cost, host_cost

    started = time.perf_counter()
    search_dir = Path(spec.search_dir)
    recipe_path, out = trial_paths(search_dir, spec.number)
    result = TrialResult(spec.number, spec.phase, spec.params, ERROR)
    try:
        mapping = candidate_recipe(spec.base_recipe, spec.params, spec.fine_tune, spec.loss, spec.selection_size,
                                   spec.separate_calibration, space_base=spec.space_base)
        recipe_path.parent.mkdir(parents=True, exist_ok=True)
        recipe_path.write_text(yaml.safe_dump(mapping, sort_keys=False))
        # no device check per trial: the search builds the firmware itself for the candidates that pass (device_cost)
        manifest = convert(parse_recipe(mapping, base_dir=recipe_path.parent), out, force=True, log=lambda _: None,
                           device_check="off").manifest
        verdict = judge_model((out / "model.tflite").read_bytes(), search_dir, spec.guards)
        cost = host_cost(manifest, spec.board, (out / "model.tflite").read_bytes(), spec.runtime)
        result.status = PASSED if verdict.passed else FAILED_GUARD
        result.reason = "; ".join(verdict.failures)
        if spec.device and verdict.passed:
            try:
                cost = device_cost(cost, out, spec.board["name"], spec.runtime)
            except KitError as error:  # keep the host figures; a candidate that does not build cannot win
                result.status, result.reason = FAILED_GUARD, f"firmware for the emulated core: {error}"
        if cost.device_pass is False:
            result.status, result.reason = FAILED_GUARD, "the firmware's self-test failed on the emulated core"
        result.metrics, result.constraints = _json_safe(verdict.metrics), verdict.constraints
        result.cost, result.model_sha256 = cost.as_dict(), manifest["model"]["sha256"]
    except KitError as error:
        result.reason = str(error)
    except Exception as error:  # a bug or a library failure in one candidate must not end the search
        result.reason = foreign_text(error, with_type=True)
        result.metrics = {"traceback": traceback.format_exc()[-2000:]}
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def _json_safe(value):
    """inf SQNR (identical outputs) as a string JSON can hold."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return "inf" if value > 0 else "-inf"
    return value
