"""The Pareto front of a search (cost vs quality) and its report: search.md and search.png."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .guards import Guards
from .space import describe
from .store import SearchStore, quality_score
from .trial import TrialResult


# Fronts and plots use the flash figure every trial has from the same source (see cost.DeployedCost).
FLASH, ARENA = "flash_estimate_bytes", "arena_host_bytes"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: lower cost (x) and higher quality (y), one at least strictly."""
    front = []
    for i, (cost, score) in enumerate(points):
        dominated = any(c <= cost and s >= score and (c < cost or s > score) for j, (c, s) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _measured(trials: list[TrialResult], key: str) -> list[TrialResult]:
    return [t for t in trials if t.cost and t.cost.get(key) is not None and t.metrics and "sqnr_db" in t.metrics]


def fronts(trials: list[TrialResult]) -> dict[str, list[int]]:
    """Trial numbers on the flash-vs-quality and RAM-vs-quality fronts."""
    out = {}
    for name, key in (("flash", FLASH), ("ram", ARENA)):
        measured = _measured(trials, key)
        points = [(float(t.cost[key]), quality_score(t)) for t in measured]
        out[name] = [measured[i].number for i in pareto_front(points)]
    return out


def _cell(value, fmt: str = "{:,}") -> str:
    return "—" if value is None else fmt.format(value)


def _quality_text(trial: TrialResult) -> str:
    m = trial.metrics or {}
    parts = []
    if "top1_agreement" in m:
        parts.append(f"agree {m['top1_agreement']:.1%}")
    if "accuracy_quantized" in m:
        parts.append(f"acc {m['accuracy_quantized']:.1%}")
    if "min_sqnr_db" in m:
        sqnr = m["min_sqnr_db"]
        parts.append(f"SQNR {sqnr if isinstance(sqnr, str) else round(sqnr, 1)} dB")
    return ", ".join(parts) or "—"


def render_markdown(store: SearchStore, best: Optional[TrialResult], front: dict[str, list[int]]) -> str:
    settings, summary = store.settings, store.summary
    lines = [f"# Search: {settings['recipe_name']} on {settings['board']}", "",
             f"Objective: smallest {settings['objective']} whose candidate holds every guard against the float "
             f"model on {summary.get('splits', {}).get('selection', '?')} held-out inputs. Guards: "
             f"{Guards(**settings['guards']).describe()}. Splits: {summary.get('split_note', '')}.", ""]
    levers = summary.get("levers")
    if levers:
        lines += [f"Levers for {levers['model']}: {'; '.join(levers['searched']) or 'none but plain int8'}."
                  + (f" Left out: {'; '.join(levers['left_out'])}." if levers["left_out"] else ""), ""]
    if summary.get("float_accuracy") is not None:
        lines += [f"Float model accuracy on the selection set: {summary['float_accuracy']:.2%}.", ""]
    if best is not None:
        cost = best.cost
        lines += [f"**Best: trial {best.number}** ({describe(best.params)}): flash {cost['flash_bytes']:,} B "
                  f"({cost['flash_source']}), arena {cost['arena_bytes']:,} B ({cost['arena_source']}), "
                  f"{_quality_text(best)}. Rebuild: `tflm-kit convert best/recipe.yaml --out OUT`.", ""]
        if summary.get("reference_delta"):
            lines += [summary["reference_delta"], ""]
    else:
        lines += ["**No candidate passed every guard.**", ""]
    lines += [f"Pareto front, flash vs quality: trials {front.get('flash')}; RAM vs quality: trials {front.get('ram')}.",
              "", "| trial | phase | settings | status | quality vs float | model B | flash estimate B | flash B "
              "| flash from | arena B | arena from | instructions | s | reason |", "|" + "---|" * 14]
    for t in store.trials:
        c = t.cost or {}
        lines.append(f"| {t.number} | {t.phase} | {describe(t.params)} | {t.status} | {_quality_text(t)} | "
                     f"{_cell(c.get('model_bytes'))} | {_cell(c.get(FLASH))} | {_cell(c.get('flash_bytes'))} | "
                     f"{c.get('flash_source', '—')} | "
                     f"{_cell(c.get('arena_bytes'))} | {c.get('arena_source', '—')} | {_cell(c.get('instructions'))} | "
                     f"{t.seconds} | {t.reason.replace('|', '/')[:160]} |")
    return "\n".join(lines) + "\n"


def plot(store: SearchStore, front: dict[str, list[int]], path: Path) -> bool:
    """Flash vs quality and RAM vs quality, passing trials filled, the fronts joined. False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, (name, key, label) in zip(axes, (("flash", FLASH, "deployed flash, host-side estimate (B)"),
                                               ("ram", ARENA, "tensor arena, host (B)"))):
        measured = _measured(store.trials, key)
        for passed, marker in ((True, "o"), (False, "x")):
            chosen = [t for t in measured if t.passed == passed]
            axis.scatter([t.cost[key] for t in chosen], [quality_score(t) for t in chosen], marker=marker,
                         label="holds the guards" if passed else "fails a guard")
        on_front = sorted((t for t in measured if t.number in front.get(name, [])), key=lambda t: t.cost[key])
        axis.plot([t.cost[key] for t in on_front], [quality_score(t) for t in on_front], "k--", lw=0.8,
                  label="Pareto front")
        axis.set_xlabel(label)
        axis.set_ylabel("top-1 agreement with float" if store.settings.get("task") == "classifier" else "SQNR (dB)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
