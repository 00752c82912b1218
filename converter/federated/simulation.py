"""Many clients on one machine (or a Ray cluster): Flower's simulation engine on Ray.

Each client gets `cpus_per_client` CPUs and TensorFlow is told to use no more threads, so with
`workers` CPUs at most `workers / cpus_per_client` clients train at once and a 2-core machine is
not oversubscribed. With `ray_address` the run joins an existing cluster instead.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .server import FederatedOutcome, ServerPlan, run_server

OBJECT_STORE_BYTES = 200 * 2**20
PACKAGE_ROOT = Path(__file__).resolve().parents[2]   # the folder that holds converter/


def _worker_env(cpus_per_client: float) -> dict:
    threads = str(max(1, int(cpus_per_client)))
    path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": threads}


def _start_ray(plan: ServerPlan) -> bool:
    """Start (or join) Ray; True when this call started it and must shut it down."""
    # keep Ray's current behaviour (no accelerators here) without its warning about a future change
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    import ray

    if ray.is_initialized():
        return False
    s = plan.settings
    runtime_env = {"env_vars": _worker_env(s.cpus_per_client)}
    if s.ray_address:
        # a cluster's workers do not share this file system: ship the kit's package to them
        ray.init(address=s.ray_address, runtime_env=runtime_env | {"py_modules": [str(PACKAGE_ROOT / "converter")]},
                 logging_level=logging.ERROR, log_to_driver=False)
    else:
        ray.init(num_cpus=s.workers, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                 runtime_env=runtime_env, logging_level=logging.ERROR, log_to_driver=False)
    return True


def simulate(plan: ServerPlan, shards: list[tuple[np.ndarray, np.ndarray]]) -> FederatedOutcome:
    import ray
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from .client import RayShards, build_client_app

    started_here = _start_ray(plan)
    outcomes: list[FederatedOutcome] = []
    server_app = ServerApp()

    @server_app.main()
    def main(grid, _context):
        outcomes.append(run_server(grid, plan))

    try:
        client_app = build_client_app(RayShards(ray.put(shards)))
        resources = {"num_cpus": plan.settings.cpus_per_client, "num_gpus": 0.0}
        run_simulation(server_app=server_app, client_app=client_app, num_supernodes=plan.settings.clients,
                       backend_config={"client_resources": resources})
    finally:
        if started_here:
            ray.shutdown()
    if not outcomes:
        from .server import FederationError

        raise FederationError("the Flower simulation ended without a result (see Flower's log above)")
    return outcomes[0]
