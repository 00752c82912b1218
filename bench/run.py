"""`make bench`: one `tflm-kit optimize` search per MLPerf Tiny model (and the demo), then
bench/results.{md,csv,json,png} rendered from the searches (bench/results_render.py).

    python -m bench.run [--only vww,ad] [--trials N] [--workers 1] [--no-device] [--render-only]

For each model (bench/mlperf_models.py: recipe, budget, goal) it runs the CLI as a user does, into a
fresh build/bench/<model>/ folder, and copies the search's search.json to
bench/optimize_runs/<model>.json with a "bench" entry (the command, wall seconds, machine load).
Rows without a run file are listed as missing. Needs TFLM_KIT_SHARED_DATA (make bench sets it); the
deployed image and arena come from the Cortex-M4 firmware under QEMU when TFLM_ROOT, the cross
compiler and qemu-system-arm are there (--device), else from the footprint data.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .mlperf_models import MODELS, BenchModel
from .optimize import REPO, run_search
from .results_render import RUNS, reference_bytes, render


def bench_model(model: BenchModel, out: Path, trials: int, workers: int, device: bool, board: str) -> Path:
    recipe = REPO / model.recipe
    if not recipe.is_file():
        raise SystemExit(f"error: {model.recipe} does not exist — fix: add it (see bench/mlperf_models.py) or "
                         f"leave {model.key} out of --only")
    run = run_search(recipe, out / model.key, trials or model.trials, workers, model.epochs, device, board,
                     list(model.options))
    search = run["search"]
    search["bench"] = {"command": run["command"], "wall_seconds": run["seconds"], "workers": workers,
                       "load": f"{run['load_before']} -> {run['load_after']}",
                       # kept with the run, so re-rendering needs no shared data
                       "reference_bytes": reference_bytes(model)}
    RUNS.mkdir(exist_ok=True)
    path = RUNS / f"{model.key}.json"
    path.write_text(json.dumps(search, indent=1, default=str) + "\n")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated model keys: " + ",".join(MODELS))
    parser.add_argument("--trials", type=int, default=0, help="override every model's budget")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--board", default="cortex-m-qemu")
    parser.add_argument("--no-device", dest="device", action="store_false")
    parser.add_argument("--out", default=str(REPO / "build" / "bench"))
    parser.add_argument("--render-only", action="store_true", help="re-render from bench/optimize_runs/")
    args = parser.parse_args(argv)
    if not args.render_only:
        if "TFLM_KIT_SHARED_DATA" not in os.environ:
            raise SystemExit("error: TFLM_KIT_SHARED_DATA is not set — fix: export it (make bench sets ../shared/data)")
        keys = [k for k in (args.only.split(",") if args.only else MODELS) if k]
        unknown = sorted(set(keys) - set(MODELS))
        if unknown:
            raise SystemExit(f"error: unknown model(s) {unknown} — fix: use some of {', '.join(MODELS)}")
        for key in keys:
            print(f"[{key}] tflm-kit optimize {MODELS[key].recipe}", flush=True)
            path = bench_model(MODELS[key], Path(args.out), args.trials, args.workers, args.device, args.board)
            print(f"[{key}] -> {path}", flush=True)
    rows = render()
    print(f"wrote bench/results.md, results.csv, results.json, results.png ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
