"""bench/results.{md,csv,png} from the optimize runs in bench/optimize_runs/<model>.json.

Each run file is a `tflm-kit optimize` search.json, plus a "bench" entry (command, wall seconds,
machine load) when bench.run made it. Every figure is read from the run: nothing is typed in here.

    python -m bench.results_render      # re-render from the stored runs, no search
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from converter import FEW_SELECTION_INPUTS, evidence_note

from .mlperf_models import MODELS, BenchModel

BENCH = Path(__file__).resolve().parent
RUNS = BENCH / "optimize_runs"


@dataclass(frozen=True)
class ResultRow:
    key: str
    title: str
    reference_bytes: Optional[int]     # the MLPerf reference .tflite as shipped
    plain_model_bytes: int             # the kit's plain int8 flatbuffer (trial 0, metadata stripped)
    winner: str                        # settings of the smallest passing trial, or why none passed
    winner_trial: Optional[int]
    winner_model_bytes: Optional[int]
    ratio: Optional[float]             # winner flatbuffer / reference flatbuffer
    image_plain: Optional[int]         # deployed flash, plain int8
    image_winner: Optional[int]
    flash_source: str
    arena_plain: Optional[int]
    arena_winner: Optional[int]
    arena_source: str
    instructions_plain: Optional[int]
    instructions_winner: Optional[int]
    agreement: Optional[float]
    accuracy_float: Optional[float]
    accuracy_winner: Optional[float]
    sqnr_db: Optional[float]
    goal: str
    goal_met: Optional[bool]           # None: the issue sets no goal for this row
    trials: int
    passed: int
    failed: int
    wall_seconds: Optional[float]
    command: str
    inputs: str
    evidence: Optional[str] = None     # optimize's warning when the guards were judged on few inputs


def _trial_settings(trial: dict) -> str:
    """The search's own description, shortened when every layer has the same cluster count."""
    from converter import cluster_counts
    from converter import describe_candidate as describe

    params = trial["params"]
    counts = set(cluster_counts(params).values())
    if len(counts) == 1 and counts != {0} and len(cluster_counts(params)) > 2:
        rest = describe({k: v for k, v in params.items() if not k.startswith("clusters:")})
        return f"every layer {counts.pop()} clusters/ch + LUT" + ("" if rest == "plain int8" else f" + {rest}")
    return describe(params)


def _cost(trial: Optional[dict], key: str):
    return None if trial is None or not trial.get("cost") else trial["cost"].get(key)


def reference_bytes(model: BenchModel) -> Optional[int]:
    if not model.reference or "TFLM_KIT_SHARED_DATA" not in os.environ:
        return None
    path = Path(os.environ["TFLM_KIT_SHARED_DATA"]) / "mlperf_tiny" / model.reference
    return path.stat().st_size if path.is_file() else None


def goal_met(model: BenchModel, ratio: Optional[float], metrics: dict) -> Optional[bool]:
    goal = model.goal
    if goal is None:
        return None
    if ratio is None or ratio > goal.max_ratio:
        return False
    quality = goal.quality
    checks = [(quality.min_agreement, metrics.get("top1_agreement"), lambda v, t: v >= t),
              (quality.max_accuracy_drop, metrics.get("accuracy_drop"), lambda v, t: v <= t),
              (quality.min_sqnr_db, metrics.get("min_sqnr_db"), lambda v, t: v >= t)]
    return all(value is not None and ok(value, threshold)
               for threshold, value, ok in checks if threshold is not None)


def row_of(model: BenchModel, run: dict) -> ResultRow:
    trials = {t["number"]: t for t in run["trials"]}
    plain = next(t for t in run["trials"] if t["phase"] == "reference")
    best_number = run.get("summary", {}).get("best_trial")
    best = trials.get(best_number)
    metrics = best["metrics"] if best else {}
    bench = run.get("bench", {})
    ref = bench.get("reference_bytes") or reference_bytes(model)
    winner_bytes = _cost(best, "model_bytes")
    ratio = winner_bytes / ref if winner_bytes and ref else None
    return ResultRow(
        key=model.key, title=model.title, reference_bytes=ref, plain_model_bytes=_cost(plain, "model_bytes"),
        winner=_trial_settings(best) if best else "no candidate passed the guards",
        winner_trial=best_number if best else None, winner_model_bytes=winner_bytes, ratio=ratio,
        image_plain=_cost(plain, "flash_bytes"), image_winner=_cost(best, "flash_bytes"),
        flash_source=str(_cost(best or plain, "flash_source")),
        arena_plain=_cost(plain, "arena_bytes"), arena_winner=_cost(best, "arena_bytes"),
        arena_source=str(_cost(best or plain, "arena_source")),
        instructions_plain=_cost(plain, "instructions"), instructions_winner=_cost(best, "instructions"),
        # top-1 agreement means nothing for an autoencoder's 640 reconstructed values
        agreement=None if run.get("settings", {}).get("guards", {}).get("task") == "regression"
        else metrics.get("top1_agreement"), accuracy_float=metrics.get("accuracy_float"),
        accuracy_winner=metrics.get("accuracy_quantized"), sqnr_db=metrics.get("min_sqnr_db"),
        goal=model.goal.describe() if model.goal else "— (no goal in the issue)",
        goal_met=goal_met(model, ratio, metrics), trials=len(trials),
        passed=sum(t["status"] == "passed" for t in trials.values()),
        failed=sum(t["status"] in ("error", "crashed") for t in trials.values()),
        wall_seconds=bench.get("wall_seconds"), command=bench.get("command", ""), inputs=model.inputs,
        evidence=evidence_note(run.get("summary", {}).get("splits", {}).get("selection", FEW_SELECTION_INPUTS)))


def load_rows(runs: Path = RUNS) -> tuple[list[ResultRow], list[str]]:
    """The rows whose run file exists (in MODELS order), and the keys of the missing ones."""
    rows, missing = [], []
    for key, model in MODELS.items():
        path = runs / f"{key}.json"
        if path.is_file():
            rows.append(row_of(model, json.loads(path.read_text())))
        else:
            missing.append(key)
    return rows, missing


def _b(value) -> str:
    return "—" if value is None else f"{value:,}"


def _pct(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def _delta(winner, plain) -> str:
    if winner is None or plain is None:
        return "—"
    return f"{winner - plain:+,}"


def _yes_no(value: Optional[bool]) -> str:
    return "—" if value is None else ("**yes**" if value else "no")


def markdown(rows: list[ResultRow], missing: list[str], workers_note: str) -> str:
    lines = [
        "# tflm-kit benchmark: `tflm-kit optimize` on the MLPerf Tiny reference models", "",
        "Every row is one `tflm-kit optimize` search (command below the table, search file in "
        "`bench/optimize_runs/<model>.json`); nothing here is a hand-written variant. The winner is the "
        "trial with the smallest deployed flash among those that held every guard on the held-out "
        "selection set (judged against the float model on TFLM). \"Deployed image\" is what the MCU "
        "stores: the linked Cortex-M4 firmware image (text + data, built and run under QEMU) when the "
        "flash source says `linked image`, else the footprint-data estimate (flatbuffer + kernels' code "
        "+ TFLM core). Reference flatbuffer: the MLPerf file as shipped (it keeps names and metadata the "
        "kit strips from every candidate).", "",
        "| model | ref flatbuffer B | winner (trial) | winner flatbuffer B (x ref) | deployed image B: plain "
        "int8 -> winner (delta) | flash from | arena B: plain -> winner | arena from | instructions: "
        "plain -> winner | agreement | accuracy float -> winner | SQNR dB | goal | goal met | trials "
        "(passed/failed) | wall s |", "|" + "---|" * 16]
    for r in rows:
        ratio = f" ({r.ratio:.2f}x)" if r.ratio is not None else ""
        accuracy = (f"{_pct(r.accuracy_float)} -> {_pct(r.accuracy_winner)}"
                    if r.accuracy_float is not None else "—")
        sqnr = "—" if r.sqnr_db is None else f"{r.sqnr_db:.1f}"
        trial = "" if r.winner_trial is None else f" ({r.winner_trial})"
        lines.append(
            f"| {r.title} | {_b(r.reference_bytes)} | {r.winner}{trial} | {_b(r.winner_model_bytes)}{ratio} | "
            f"{_b(r.image_plain)} -> {_b(r.image_winner)} ({_delta(r.image_winner, r.image_plain)}) | "
            f"{r.flash_source} | {_b(r.arena_plain)} -> {_b(r.arena_winner)} | {r.arena_source} | "
            f"{_b(r.instructions_plain)} -> {_b(r.instructions_winner)} | {_pct(r.agreement)} | {accuracy} | "
            f"{sqnr} | {r.goal} | {_yes_no(r.goal_met)} | {r.trials} ({r.passed}/{r.failed}) | "
            f"{'—' if r.wall_seconds is None else r.wall_seconds} |")
    if missing:
        lines += ["", "Rows missing (no `bench/optimize_runs/<model>.json` yet): " + ", ".join(
            f"{MODELS[k].title} (`python -m bench.run --only {k}`)" for k in missing) + "."]
    lines += ["", "## Inputs each search judged on", ""]
    lines += [f"- {r.title}: {r.inputs}" for r in rows]
    notes = [f"- {r.title}: {MODELS[r.key].note}" for r in rows if MODELS[r.key].note] + \
        [f"- {r.title}: **warning**: {r.evidence}" for r in rows if r.evidence]
    if notes:
        lines += ["", "## Notes", ""] + notes
    lines += ["", "## How to read it", "",
              "- The budgets are small (4-6 trials per model, 1-2 fine-tuning epochs, 2 shared cores): a row says "
              "what this search found, not the best the space holds. `search.json` (here "
              "`bench/optimize_runs/<model>.json`) has every trial with its settings, status and reason.",
              "- A linked image holds the self-test program and the golden vectors too (the same for every "
              "candidate of a model; VWW's ten 96x96x3 inputs alone are 276 KB), so compare images by their delta.",
              "- Deployed figures of trials that failed a guard are the footprint-data estimate (only passing "
              "candidates are built and run on the emulated core); the winner's and plain int8's are measured.",
              "- The winner is chosen on flash; its instructions per inference can be higher than plain int8's "
              "(DECODE and int4 unpacking cost cycles): see the instructions column.",
              "- Inputs are real data, but not always the task's: VWW judges on photos without person labels, "
              "AD on speech (not machine sounds), SWW on about 22 windows."]
    lines += ["", "## Workers", "", workers_note, "", "## Commands (from the repository root)", ""]
    lines += [f"- {r.title}: `{r.command}`" if r.command else f"- {r.title}: (run file has no command)"
              for r in rows]
    return "\n".join(lines) + "\n"


def workers_note(path: Path = BENCH / "optimize_workers.json") -> str:
    """The 1-vs-2-worker figure, cited from bench/optimize_workers.json (bench.optimize)."""
    if not path.is_file():
        return "No 1-vs-2-worker measurement yet (`python -m bench.optimize --workers 1,2 --name optimize_workers`)."
    runs = json.loads(path.read_text())
    if len(runs) < 2:
        return "bench/optimize_workers.json holds a single run: no ratio."
    one, two = runs[0], runs[1]
    return (f"The same {one['trials']}-trial search of the demo took {one['seconds']} s on {one['workers']} "
            f"worker(s) and {two['seconds']} s on {two['workers']}: **{one['seconds'] / two['seconds']:.2f}x** "
            f"(bench/optimize_workers.md; 2 cores shared with other work, load {one['load']} and {two['load']}).")


def write_csv(rows: list[ResultRow], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def plot(rows: list[ResultRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [("MLPerf ref flatbuffer", "reference_bytes"), ("winner flatbuffer", "winner_model_bytes"),
            ("plain int8 image", "image_plain"), ("winner image", "image_winner")]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.2
    for i, (label, field) in enumerate(bars):
        values = [getattr(r, field) or 0 for r in rows]
        ax.bar([x + (i - 1.5) * width for x in range(len(rows))], values, width, label=label)
    ax.set_xticks(range(len(rows)), [r.key for r in rows])
    ax.set_ylabel("bytes")
    ax.set_title("tflm-kit optimize: flatbuffer vs deployed image (Cortex-M4)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def render(runs: Path = RUNS, out: Path = BENCH) -> list[ResultRow]:
    rows, missing = load_rows(runs)
    if not rows:
        raise SystemExit(f"error: no optimize runs in {runs} — fix: run python -m bench.run first")
    (out / "results.md").write_text(markdown(rows, missing, workers_note()))
    write_csv(rows, out / "results.csv")
    (out / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    plot(rows, out / "results.png")
    return rows


if __name__ == "__main__":
    render()
    print((BENCH / "results.md").read_text())
