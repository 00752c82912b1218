"""`tflm-kit optimize` measured: the winner's deployed figures against plain int8, and wall time per
worker count for the same search.

    python -m bench.optimize [--recipe models/recipes/default.yaml] [--trials 8] [--workers 1,2]
                             [--epochs 2] [--no-device] [--out build/bench-optimize]

For each worker count it runs the CLI as a user does (a fresh search directory each), times it,
and reads the search's search.json. Writes bench/optimize.md (and bench/optimize.json): one row per
run, then the wall-time ratio of the first worker count to each other one. The machine's load is
recorded, because other work on the same cores changes the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"


def run_search(recipe: Path, out: Path, trials: int, workers: int, epochs: int, device: bool, board: str,
               extra: list[str] | None = None) -> dict:
    """One `tflm-kit optimize` run in a fresh folder; `extra`: more CLI options (e.g. guards)."""
    if out.exists():
        shutil.rmtree(out)  # a fresh search each time: an existing one would resume
    command = [sys.executable, "-P", "-m", "converter", "optimize", str(recipe), "--board", board, "--out", str(out),
               "--trials", str(trials), "--workers", str(workers), "--epochs", str(epochs),
               "--device" if device else "--no-device", *(extra or [])]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"optimize failed ({done.returncode}):\n{done.stderr[-3000:]}")
    search = json.loads((out / "search.json").read_text())
    return {"workers": workers, "seconds": round(seconds, 1), "load_before": round(load_before, 1),
            "load_after": round(os.getloadavg()[0], 1), "stdout": done.stdout,
            "command": " ".join(["tflm-kit"] + [_shown(part) for part in command[command.index("converter") + 1:]]),
            "search": search}


def _shown(part: str) -> str:
    """A path inside the repository as a relative path, as a user would type it."""
    return part.removeprefix(str(REPO) + "/")


def _row(run: dict) -> dict:
    search = run["search"]
    trials = {t["number"]: t for t in search["trials"]}
    best = trials[search["summary"]["best_trial"]]
    reference = next(t for t in search["trials"] if t["phase"] == "reference")
    quality = best["metrics"]
    return {
        "workers": run["workers"], "seconds": run["seconds"], "trials": len(trials),
        "passed": sum(t["status"] == "passed" for t in trials.values()),
        "failed": sum(t["status"] in ("error", "crashed") for t in trials.values()),
        "best_trial": best["number"], "best_params": best["params"], "best": best["cost"],
        "reference": reference["cost"], "agreement": quality.get("top1_agreement"),
        "accuracy_float": quality.get("accuracy_float"), "accuracy_candidate": quality.get("accuracy_quantized"),
        "min_sqnr_db": quality.get("min_sqnr_db"), "reproduced": search["summary"].get("best_reproduced_bit_exact"),
        "load": f"{run['load_before']} -> {run['load_after']}", "command": run["command"],
    }


def _settings_text(params: dict) -> str:
    chosen = [f"{k.split(':', 1)[1]}:{v}" for k, v in params.items() if k.startswith("clusters:") and v]
    return " ".join(chosen) or "plain int8"


def _bytes(value) -> str:
    return "—" if value is None else f"{value:,}"


def render(rows: list[dict], recipe: str) -> str:
    lines = [f"# `tflm-kit optimize` on {recipe}", "",
             f"Measured on {platform.machine()} with {os.cpu_count()} cores shared with other work (load average "
             "before -> after each run in the table). Command per row below the table.", "",
             "| workers | wall s | trials (passed/failed) | best settings | deployed flash B (plain int8) | from "
             "| arena B (plain int8) | from | instructions (plain int8) | agreement | accuracy float -> candidate "
             "| rebuilt bit-exact | load |", "|" + "---|" * 13]
    for r in rows:
        b, ref = r["best"], r["reference"]
        accuracy = (f"{r['accuracy_float']:.1%} -> {r['accuracy_candidate']:.1%}"
                    if r["accuracy_float"] is not None else "—")
        agreement = "—" if r["agreement"] is None else f"{r['agreement']:.1%}"
        lines.append(
            f"| {r['workers']} | {r['seconds']} | {r['trials']} ({r['passed']}/{r['failed']}) | "
            f"{_settings_text(r['best_params'])} | {_bytes(b['flash_bytes'])} ({_bytes(ref['flash_bytes'])}) | "
            f"{b['flash_source']} | {_bytes(b['arena_bytes'])} ({_bytes(ref['arena_bytes'])}) | {b['arena_source']} | "
            f"{_bytes(b.get('instructions'))} ({_bytes(ref.get('instructions'))}) | "
            f"{agreement} | {accuracy} | "
            f"{r['reproduced']} | {r['load']} |")
    if len(rows) > 1:
        first = rows[0]
        for other in rows[1:]:
            lines += ["", f"Wall time, {first['workers']} worker(s) / {other['workers']} worker(s): "
                      f"{first['seconds']} s / {other['seconds']} s = **{first['seconds'] / other['seconds']:.2f}x**."]
    lines += ["", "Commands (from the repository root):", ""]
    lines += [f"- `{r['command']}`" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="models/recipes/default.yaml")
    parser.add_argument("--board", default="cortex-m-qemu")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-device", dest="device", action="store_false")
    parser.add_argument("--out", default="build/bench-optimize")
    parser.add_argument("--name", default="optimize", help="bench/<name>.md and .json")
    args = parser.parse_args()
    runs = []
    for workers in (int(w) for w in args.workers.split(",")):
        out = REPO / args.out / f"workers{workers}"
        print(f"optimize with {workers} worker(s) -> {out}", flush=True)
        runs.append(run_search(REPO / args.recipe, out, args.trials, workers, args.epochs, args.device, args.board))
    rows = [_row(run) for run in runs]
    (BENCH / f"{args.name}.json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    (BENCH / f"{args.name}.md").write_text(render(rows, args.recipe))
    print((BENCH / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
