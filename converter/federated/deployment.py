"""Real Flower clients: the ServerApp a SuperLink runs, and the files a deployment needs.

`prepare()` writes, into one folder, the Flower app (pyproject.toml naming this module's
`server_app` and `client.app`), the server's plan (model, initial weights, held-out set,
settings, seed) and one shard file per client. Each device then runs a SuperNode with its own
shard; `flwr run <folder> <superlink>` starts the rounds; the result lands in `result.npz`.
See docs/federated.md for the commands.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.serverapp import ServerApp

from ..system import tf_env  # noqa: F401  (Keras 2 before TensorFlow loads)
from .server import FederatedOutcome, ServerPlan, run_server
from .settings import FederatedSettings

APP_TOML = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "tflm-kit-federated"
version = "1.0.0"
description = "tflm-kit federated fine-tuning"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "tflm-kit"

[tool.flwr.app.components]
serverapp = "converter.federated.deployment:server_app"
clientapp = "converter.federated.client:app"

[tool.flwr.app.config]
plan-file = {plan}
result-file = {result}
"""


@dataclass(frozen=True)
class Deployment:
    app_dir: Path
    client_files: list[Path]
    result_file: Path


def prepare(folder: Path, plan: ServerPlan, shards: list[tuple[np.ndarray, np.ndarray]]) -> Deployment:
    app_dir = folder / "app"   # only the app's pyproject.toml: Flower bundles this folder and sends it out
    app_dir.mkdir(parents=True, exist_ok=True)
    plan_file, result_file = folder / "plan.npz", folder / "result.npz"
    weights = {f"weight_{i}": w for i, w in enumerate(plan.initial_weights)}
    np.savez(plan_file, model_json=np.array(plan.model_json), settings=np.array(plan.settings.model_dump_json()),
             seed=np.array(plan.seed), x_eval=plan.x_eval, y_eval=plan.y_eval, **weights)
    client_files = []
    for partition_id, (x, y) in enumerate(shards):
        client_files.append(folder / f"client_{partition_id}.npz")
        np.savez(client_files[-1], x=x, y=y)
    (app_dir / "pyproject.toml").write_text(APP_TOML.format(plan=json.dumps(str(plan_file.resolve())),
                                                           result=json.dumps(str(result_file.resolve()))))
    return Deployment(app_dir, client_files, result_file)


def load_plan(path: str) -> ServerPlan:
    with np.load(path, allow_pickle=False) as archive:
        count = sum(1 for name in archive.files if name.startswith("weight_"))
        return ServerPlan(settings=FederatedSettings.model_validate_json(str(archive["settings"])),
                          model_json=str(archive["model_json"]),
                          initial_weights=[archive[f"weight_{i}"] for i in range(count)],
                          x_eval=archive["x_eval"], y_eval=archive["y_eval"], seed=int(archive["seed"]))


def save_outcome(path: str, outcome: FederatedOutcome) -> None:
    report = {"initial": outcome.initial, "rounds": outcome.rounds, "seconds": outcome.seconds}
    partial = Path(f"{path}.partial")
    with open(partial, "wb") as file:
        np.savez(file, report=np.array(json.dumps(report)), **{f"weight_{i}": w for i, w in enumerate(outcome.weights)})
    os.replace(partial, path)  # whoever waits for the result never reads half a file


def load_outcome(path: Path) -> FederatedOutcome:
    with np.load(path, allow_pickle=False) as archive:
        report = json.loads(str(archive["report"]))
        count = sum(1 for name in archive.files if name.startswith("weight_"))
        return FederatedOutcome(weights=[archive[f"weight_{i}"] for i in range(count)], **report)


server_app = ServerApp()


@server_app.main()
def main(grid, context) -> None:
    # TensorFlow (for scoring the global model) loads while the clients answer the roster query.
    threading.Thread(target=tf_env.keras, daemon=True).start()
    outcome = run_server(grid, load_plan(str(context.run_config["plan-file"])))
    save_outcome(str(context.run_config["result-file"]), outcome)
