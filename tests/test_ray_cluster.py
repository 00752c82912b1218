"""The `--ray-address` path: a real Ray cluster (a head node started with `ray start` on this
machine), joined by the federated stage and by `tflm-kit optimize` as a user would join a cluster.

The head runs in its own process session with its own temp dir, and teardown ends exactly that
session's processes (never `ray stop`, which would stop every Ray on the machine), even when a
test fails. Skipped with the reason when `ray start` cannot run here.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO, run_kit

RAY = Path(sys.executable).with_name("ray")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _end_session(head: subprocess.Popen) -> None:
    """SIGTERM to the head's process group (GCS, raylet, workers), SIGKILL to what is left."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            return
        try:
            head.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(1)  # the group's other members exit after the leader


def _wait_until_up(head: subprocess.Popen, port: int, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if head.poll() is not None:
            pytest.skip(f"`ray start --head` exited with {head.returncode}: {head.stdout.read()[-500:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(2)  # the GCS listens before the raylet has registered
                return
        time.sleep(0.5)
    pytest.skip(f"the Ray head did not listen on port {port} within {seconds:.0f} s")


@pytest.fixture(scope="module")
def ray_cluster():
    """'127.0.0.1:<port>' of a 2-CPU Ray head started for these tests; stopped afterwards."""
    if not RAY.exists():
        pytest.skip(f"no `ray` command next to {sys.executable}")
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="rc")  # short: Ray's socket paths must stay under 108 characters
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--num-cpus", "2", "--num-gpus", "0", "--port", str(port),
         "--node-ip-address", "127.0.0.1", "--include-dashboard", "false", "--disable-usage-stats",
         "--object-store-memory", str(200 * 2**20), "--temp-dir", temp_dir],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_until_up(head, port)
        yield f"127.0.0.1:{port}"
    finally:
        _end_session(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _tiny_digits_recipe(folder: Path, stages: str) -> Path:
    """A recipe on 400 training / 100 test digits with the digit CNN and the given stages (YAML lines)."""
    digits = np.load(REPO / "models/data/digits_subset.npz")
    pixels = lambda key, n: (digits[key][:n] / 255.0)[..., None].astype(np.float32)  # noqa: E731
    np.savez(folder / "tiny.npz", x_train=pixels("x_train", 400), y_train=digits["y_train"][:400].astype(np.int64),
             x_test=pixels("x_test", 100), y_test=digits["y_test"][:100].astype(np.int64))
    (folder / "tiny.yaml").write_text(
        f"name: tiny\nmodel:\n  builder: {REPO / 'models/digits.py:build_model'}\ndata:\n  npz: tiny.npz\n"
        f"stages:\n{stages}quantize: {{calibration_samples: 50}}\ngolden: {{vectors: 4}}\n")
    return folder / "tiny.yaml"


def test_federated_stage_runs_on_a_ray_cluster(ray_cluster, tmp_path):
    """`convert --ray-address`: the federated stage's clients run on the cluster's workers (the kit's
    package shipped to them), and the record names the cluster."""
    recipe = _tiny_digits_recipe(tmp_path, "  - federated: {clients: 4, rounds: 2, fraction_fit: 0.5, "
                                           "learning_rate: 0.05}\n")
    out = tmp_path / "out"
    run = run_kit("convert", recipe, "--out", out, "--ray-address", ray_cluster)
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    federated = manifest["stages"][0]
    assert federated["stage"] == "federated" and federated["engine"]["ray_address"] == ray_cluster
    assert len(federated["rounds"]) == federated["settings"]["rounds"]
    assert manifest["summary"]["bit_exact_on_tflm"]


def test_optimize_runs_its_trials_on_a_ray_cluster(ray_cluster, tmp_path):
    """`tflm-kit optimize --ray-address`: a 2-trial search whose trials are Ray tasks on the cluster."""
    recipe = _tiny_digits_recipe(tmp_path, "  - train: {epochs: 2, batch_size: 64, learning_rate: 0.005}\n")
    out = tmp_path / "search"
    run = run_kit("optimize", recipe, "--board", "cortex-m-qemu", "--out", out, "--trials", 2,
                  "--epochs", 1, "--no-device", "--ray-address", ray_cluster)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "running trials as Ray tasks: 2 at a time" in run.stdout + run.stderr
    trials = json.loads((out / "search.json").read_text())["trials"]
    assert len(trials) == 2 and all(t["status"] in ("passed", "failed guard") for t in trials), trials
