"""Build and run trials of an optimize search on the emulated Cortex-M4, also those that failed a guard
(the search builds only passing ones), to state what each would deploy: linked image, arena, instructions.

    TFLM_ROOT=../shared/tflm python -P -m bench.optimize_ic_device build/bench-optimize/ic 0001 0002 0003

Uses the same `device_cost` the search calls for passing trials; prints one JSON line per trial.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(search_dir: str, trials: list[str]) -> None:
    from converter import DeployedCost, device_cost

    for trial in trials:
        folder = Path(search_dir) / "trials" / trial
        manifest = json.loads((folder / "manifest.json").read_text())
        host = DeployedCost(manifest["model"]["bytes"], manifest["model"]["bytes"], "flatbuffer only (estimate)",
                            manifest["arena_bytes"], "host estimate")
        cost = device_cost(host, folder, "cortex-m-qemu")
        print(trial, json.dumps({k: v for k, v in cost.as_dict().items() if v is not None}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: python -P -m bench.optimize_ic_device SEARCH_DIR TRIAL [TRIAL...]")
    main(sys.argv[1], sys.argv[2:])
