"""Quality guards: a candidate is judged against the FLOAT model (the teacher) on held-out inputs.

Every guard that applies must hold; a failing candidate keeps the list of guards it broke and by
how much. Each guard is also a constraint value (<= 0 when it holds) for a constrained optimizer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from ..compare.fidelity import output_metrics

CLASSIFIER = "classifier"
REGRESSION = "regression"


@dataclass(frozen=True)
class Guards:
    """Thresholds; None switches a guard off. Defaults follow the task (see `defaults`)."""

    task: str
    min_agreement: Optional[float] = None     # top-1 agreement with the float model, 0..1
    max_accuracy_drop: Optional[float] = None  # float accuracy minus candidate accuracy, 0..1 (labels only)
    min_sqnr_db: Optional[float] = None        # of each output against the float model's

    @staticmethod
    def defaults(task: str, min_agreement: Optional[float] = None, max_accuracy_drop: Optional[float] = None,
                 min_sqnr_db: Optional[float] = None) -> "Guards":
        """Classifiers: agreement >= 95% and accuracy drop <= 1 point; regression/autoencoders: SQNR >= 20 dB.
        A threshold given explicitly applies whatever the task."""
        if task == CLASSIFIER:
            return Guards(task, 0.95 if min_agreement is None else min_agreement,
                          0.01 if max_accuracy_drop is None else max_accuracy_drop, min_sqnr_db)
        return Guards(task, min_agreement, max_accuracy_drop, 20.0 if min_sqnr_db is None else min_sqnr_db)

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        parts = []
        if self.min_agreement is not None:
            parts.append(f"top-1 agreement >= {self.min_agreement:.0%}")
        if self.max_accuracy_drop is not None:
            parts.append(f"accuracy drop <= {self.max_accuracy_drop * 100:g} point(s) (when labels exist)")
        if self.min_sqnr_db is not None:
            parts.append(f"SQNR of every output >= {self.min_sqnr_db:g} dB")
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class Verdict:
    passed: bool
    failures: list[str] = field(default_factory=list)   # one readable line per broken guard
    constraints: dict = field(default_factory=dict)  # guard -> value, <= 0 when it holds
    metrics: dict = field(default_factory=dict)


def task_of(outputs: np.ndarray, labels: Optional[np.ndarray], inputs: Optional[np.ndarray] = None) -> str:
    """A classifier has one score per class (2+ columns); integer labels, when present, must index them.
    An output shaped like the input (an autoencoder's reconstruction, e.g. MLPerf Tiny AD's 640 values)
    is regression however wide it is."""
    flat = outputs.reshape(len(outputs), -1)
    if flat.shape[1] < 2 or outputs.ndim != 2:
        return REGRESSION
    if inputs is not None and inputs.shape == outputs.shape:
        return REGRESSION
    if labels is not None and not np.issubdtype(np.asarray(labels).dtype, np.integer):
        return REGRESSION
    return CLASSIFIER


def quality(float_outputs: list[np.ndarray], candidate_outputs: list[np.ndarray],
            labels: Optional[np.ndarray]) -> dict:
    """Metrics of every output against the float model's, plus the first output's summary at top level."""
    per_output = [output_metrics(f, c, labels if j == 0 else None)
                  for j, (f, c) in enumerate(zip(float_outputs, candidate_outputs))]
    summary = dict(per_output[0])
    summary["min_sqnr_db"] = min(m["sqnr_db"] for m in per_output)
    summary["max_abs_error"] = max(float(np.max(np.abs(c.astype(np.float64) - f.astype(np.float64))))
                                   for f, c in zip(float_outputs, candidate_outputs))
    if "accuracy_float" in summary:
        summary["accuracy_drop"] = summary["accuracy_float"] - summary["accuracy_quantized"]
    summary["per_output"] = per_output
    return summary


def judge(guards: Guards, metrics: dict) -> Verdict:
    failures, constraints = [], {}
    if guards.min_agreement is not None:
        agreement = metrics.get("top1_agreement")
        if agreement is None:
            failures.append("top-1 agreement: the output has no classes to agree on")
            constraints["agreement"] = 1.0
        else:
            constraints["agreement"] = guards.min_agreement - agreement
            if agreement < guards.min_agreement:
                failures.append(f"top-1 agreement {agreement:.2%} < {guards.min_agreement:.2%}")
    if guards.max_accuracy_drop is not None and "accuracy_drop" in metrics:
        drop = metrics["accuracy_drop"]
        constraints["accuracy_drop"] = drop - guards.max_accuracy_drop
        if drop > guards.max_accuracy_drop:
            failures.append(f"accuracy drop {drop * 100:.1f} points > {guards.max_accuracy_drop * 100:.1f} "
                            f"(float {metrics['accuracy_float']:.2%}, candidate {metrics['accuracy_quantized']:.2%})")
    if guards.min_sqnr_db is not None:
        sqnr = metrics["min_sqnr_db"]
        # 1 per 10 dB, so it weighs like the fractions above; clipped: SQNR is inf for identical outputs
        constraints["sqnr"] = float(np.clip((guards.min_sqnr_db - sqnr) / 10.0, -10.0, 10.0))
        if sqnr < guards.min_sqnr_db:
            failures.append(f"SQNR {sqnr:.1f} dB < {guards.min_sqnr_db:.1f} dB")
    return Verdict(not failures, failures, {k: float(v) for k, v in constraints.items()}, metrics)


FEW_SELECTION_INPUTS = 200  # below this one input moves top-1 agreement and accuracy by more than half a point


def evidence_note(selection_size: int) -> Optional[str]:
    """Say when the selection set is too small for the guards to separate a good candidate from a poor one:
    a guard judged on n inputs cannot see a difference smaller than 1/n."""
    if selection_size >= FEW_SELECTION_INPUTS:
        return None
    return (f"the guards are judged on {selection_size} held-out inputs: one input moves top-1 agreement and "
            f"accuracy by {100 / max(selection_size, 1):.1f} points, so a winner is weak evidence; add eval data "
            f"(at least {FEW_SELECTION_INPUTS} inputs) before trusting it on the device")
