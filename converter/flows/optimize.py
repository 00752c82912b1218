"""`tflm-kit optimize`: the smallest candidate that holds every quality guard, found by a search.

RECIPE's data is split (fine-tuning/calibration vs a held-out selection set); its train/distill
stages make the float model, the teacher every candidate is judged against; trials (Ray tasks) try
per-layer cluster counts stored as LUT indices, fine-tuned by distillation from the teacher (or, for a
model the kit cannot retrain, Keras 3 or PyTorch, the flatbuffer-level levers on its int8 model); the
winner is rebuilt by the convert flow into DIR/best/ with DIR/best/recipe.yaml; every trial and the
Pareto fronts go to DIR/search.{json,md,png}.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import yaml

from ..progress import Sink, notes, silent
from ..errors import KitError
from ..system.extras import require
from ..optimize.cost import device_available
from ..optimize.guards import Guards, evidence_note
from ..optimize.pareto import fronts, plot, render_markdown
from ..optimize.prepare import DATA, Prepared, prepare
from ..optimize.search import SearchPlan, run_search
from ..optimize.space import (BASE_MODEL, FLATBUFFER, FineTune, Space, candidate_recipe, describe,
                              flatbuffer_space, space_for)
from ..optimize.store import SearchStore, write_atomic
from ..optimize.trial import TrialResult, TrialSpec, judge_model, run_trial
from ..recipe import load_recipe, parse_recipe

RECIPE_HEADER = "# tflm-kit optimize: trial"   # first line of best/recipe.yaml: the search wrote it


@dataclass(frozen=True)
class Options:
    board: str
    objective: str = "flash"
    trials: int = 20
    min_agreement: Optional[float] = None
    max_accuracy_drop: Optional[float] = None
    min_sqnr: Optional[float] = None
    ray_address: Optional[str] = None
    workers: int = 0                 # 0: all CPUs of the machine (or cluster)
    cpus_per_trial: int = 1
    epochs: int = 2
    label_weight: float = 0.0
    device: Optional[bool] = None    # None: build and run on the emulated core when possible
    runtime: str = "tflm"            # whose deployed cost is minimized: tflm or aot (converter/runtimes)


@dataclass(frozen=True)
class Outcome:
    best: Optional[TrialResult]
    reference: Optional[TrialResult]
    store: SearchStore
    reproduced: Optional[bool]


def _check_out(out: Path, recipe, recipe_path: Path) -> None:
    """The one output guard (system.outdir): no recipe input inside --out, and a folder holding files is
    continued only when its search record (search.json) says it is a search; file names decide nothing."""
    from ..system.outdir import check_output_path

    check_output_path(out, force=False, inputs=recipe.input_paths() + (Path(recipe_path),), resumes="search")


def _use_device(options: Options, board: dict) -> bool:
    why_not = device_available(board, options.runtime)
    if options.device and why_not:
        raise KitError(f"cannot measure on the device: {why_not}", "drop --device, or install what is missing")
    if options.objective == "latency" and why_not:
        raise KitError(f"--objective latency needs instructions from the emulated core, but {why_not}",
                       "use --board cortex-m-qemu with TFLM_ROOT set and the Arm toolchain and QEMU installed")
    return why_not is None if options.device is None else options.device


def _rebuild_best(store: SearchStore, best: TrialResult, template: TrialSpec, out: Path,
                  log: Callable[[str], None]) -> bool:
    """DIR/best/: the convert flow run on the winner's recipe; True when it gave the same model bytes."""
    from .convert import convert

    mapping = candidate_recipe(template.base_recipe, best.params, template.fine_tune, template.loss,
                               template.selection_size, template.separate_calibration,
                               space_base=template.space_base)
    folder = out / "best"
    log(f"rebuilding the best candidate (trial {best.number}) with the convert flow into {folder}")
    previous = folder / "recipe.yaml"
    if previous.is_file() and previous.read_text().startswith(RECIPE_HEADER):
        previous.unlink()  # an earlier run of this search wrote it; convert replaces only what convert wrote
    # parsed as if it sat in trials/: the same ../ paths, and an --out that holds none of its inputs
    manifest = convert(parse_recipe(mapping, base_dir=out / "trials"), folder, force=True, log=log).manifest
    header = (f"{RECIPE_HEADER} {best.number} of the search in {out.name}/ ({describe(best.params)}).\n"
              f"# Rebuild: tflm-kit convert {folder.name}/recipe.yaml --out OUT "
              f"(needs ../{BASE_MODEL[template.space_base]}, ../{DATA}).\n")
    (folder / "recipe.yaml").write_text(header + yaml.safe_dump(mapping, sort_keys=False))
    same = manifest["model"]["sha256"] == best.model_sha256
    if not same:  # not bit-identical to the trial: judge the rebuilt model itself
        verdict = judge_model((folder / "model.tflite").read_bytes(), out, template.guards)
        store.summary["best_rebuilt_verdict"] = {"passed": verdict.passed, "failures": verdict.failures}
    return same


def search_space(prepared: Prepared, recipe, objective: str) -> Space:
    """The levers the prepared model can take: the Keras ones for a teacher the kit retrains, else those
    of its int8 flatbuffer (what the model is decides, see optimize/prepare.py)."""
    if prepared.base == FLATBUFFER:
        return flatbuffer_space(prepared.model, prepared.what, objective)
    return space_for(prepared.model, objective=objective, per_channel=recipe.quantize.per_channel)


def levers_line(what: str, searched: list[str], left_out: list[str]) -> str:
    """The one line at the start of a search: which levers it searches for this model, which it leaves out."""
    return (f"levers for {what}: {'; '.join(searched) or 'none but plain int8'}"
            + (f" -- left out: {'; '.join(left_out)}" if left_out else ""))


def _reference_delta(reference: Optional[TrialResult], best: TrialResult) -> str:
    if reference is None or not reference.cost or reference.number == best.number:
        return ""
    r, b = reference.cost, best.cost
    change = b["flash_bytes"] - r["flash_bytes"]
    return (f"Against plain int8 (trial {reference.number}): flash {r['flash_bytes']:,} -> {b['flash_bytes']:,} B "
            f"({'+' if change > 0 else ''}{change:,} B, {b['flash_source']}), model {r['model_bytes']:,} -> "
            f"{b['model_bytes']:,} B, arena {r['arena_bytes']:,} -> {b['arena_bytes']:,} B ({b['arena_source']}).")


def optimize(recipe_path: Path, out: Path, options: Options, events: Sink = silent) -> Outcome:
    """Search compression settings for the recipe's model; progress goes to `events` as Note lines."""
    log = notes(events)
    from ..flows.firmware import load_board

    require("optimize", "tflm-kit optimize")
    recipe = load_recipe(recipe_path)
    board = load_board(options.board)
    out = Path(out)
    _check_out(out, recipe, recipe_path)
    device = _use_device(options, board)
    claim = SearchStore.claim(out)  # the search record first: the folder is then recognised (and resumed) by it
    try:
        prepared = prepare(recipe, out, options.label_weight, log)
    except KitError:  # refused before anything but the record was written (a .tflite, a Keras 3 model with a
        claim.release_if_untouched()  # TF-MOT stage): leave no trace
        raise
    space = search_space(prepared, recipe, options.objective)
    guards = Guards.defaults(prepared.task, options.min_agreement, options.max_accuracy_drop, options.min_sqnr)
    fine_tune = FineTune(epochs=options.epochs)
    settings = {"recipe_name": recipe.name, "recipe": recipe.model_dump(mode="json"), "board": options.board,
                "objective": options.objective, "guards": guards.as_dict(), "space": space.as_dict(),
                "fine_tune": asdict(fine_tune), "label_weight": options.label_weight, "task": prepared.task,
                # a search resumes only with the settings it started with: tflm searches keep their old keys
                "device": device, **({"runtime": options.runtime} if options.runtime != "tflm" else {})}
    store = SearchStore.open(out, settings)
    store.summary.update({"splits": prepared.split_sizes, "split_note": prepared.split_note,
                          "float_accuracy": prepared.float_accuracy})
    template = TrialSpec(0, "", {}, str(out.resolve()), recipe, guards, fine_tune, prepared.loss,
                         prepared.selection_size, board, prepared.separate_calibration, device,
                         options.cpus_per_trial, options.runtime, space.base)
    searched, left_out = space.lever_lines()
    store.summary["levers"] = {"model": prepared.what, "searched": searched, "left_out": left_out}
    log(levers_line(prepared.what, searched, left_out))
    log(f"search space: {len(space.layers)} layers ({', '.join(space.layers)}); guards: {guards.describe()}; "
        f"selection set: {prepared.selection_size} held-out inputs")
    note = evidence_note(prepared.selection_size)
    store.summary["evidence_note"] = note
    if note:
        log(f"warning: {note}")
    plan = SearchPlan(space, options.trials, options.objective, options.workers, options.cpus_per_trial,
                      recipe.seed, template, options.ray_address)
    run_search(plan, store, run_trial, events)
    best = store.best(options.objective)
    references = store.done_phase("reference")
    reference = references[0] if references else None
    reproduced = None
    if best is not None:
        reproduced = _rebuild_best(store, best, template, out, log)
        store.summary.update({"best_trial": best.number, "best_reproduced_bit_exact": reproduced,
                              "reference_delta": _reference_delta(reference, best)})
    front = fronts(store.trials)
    store.summary["pareto"] = front
    store.save()
    write_atomic(out / "search.md", render_markdown(store, best, front))
    plot(store, front, out / "search.png")
    if best is None:
        raise KitError(f"no candidate held every guard in {len(store.trials)} trials (see {out / 'search.md'})",
                       "allow more --trials or --epochs, or loosen a guard (--min-agreement, --max-accuracy-drop, "
                       "--min-sqnr)")
    return Outcome(best, reference, store, reproduced)


def summary_lines(outcome: Outcome, out: Path) -> list[str]:
    """What the CLI prints after a search: the winner, its deployed figures against plain int8, its quality."""
    best, cost = outcome.best, outcome.best.cost
    lines = [f"best: trial {best.number} ({describe(best.params)}) -> {out / 'best'}/  "
             f"(rebuild: tflm-kit convert {out / 'best' / 'recipe.yaml'} --out OUT)",
             f"deployed flash: {cost['flash_bytes']:,} B ({cost['flash_source']})   arena: "
             f"{cost['arena_bytes']:,} B ({cost['arena_source']})"
             + (f"   instructions/inference: {cost['instructions']:,}" if cost.get("instructions") else "")]
    if outcome.store.summary.get("reference_delta"):
        lines.append(outcome.store.summary["reference_delta"])
    lines.append("quality vs float on the held-out set: " + ", ".join(
        f"{k} {best.metrics[k]:.4g}" for k in ("top1_agreement", "accuracy_float", "accuracy_quantized", "min_sqnr_db")
        if isinstance(best.metrics.get(k), float)))
    lines.append(f"search: {out / 'search.md'} ({len(outcome.store.trials)} trials)")
    if outcome.store.summary.get("evidence_note"):
        lines.append(f"warning: {outcome.store.summary['evidence_note']}")
    return lines
