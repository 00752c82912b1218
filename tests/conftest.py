import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import converter.system.tf_env  # noqa: F401  (Keras 2 before TensorFlow loads)

REPO = Path(__file__).resolve().parent.parent
# Every convert here would otherwise build and run its golden self-test under QEMU when the tools are there
# (about 10-20 s each, docs/firmware.md): the suite converts dozens of models, so only the tests that check
# the device check (tests/test_device_check.py) turn it on, with --device-check or this variable.
os.environ.setdefault("TFLM_KIT_DEVICE_CHECK", "off")
SHARED_DATA = Path(os.environ.get("TFLM_KIT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "mlperf_tiny").is_dir():
        pytest.skip(f"needs the shared MLPerf Tiny models and data at {SHARED_DATA} "
                    "(present in CI; point TFLM_KIT_SHARED_DATA at a copy to run locally)")
    os.environ["TFLM_KIT_SHARED_DATA"] = str(SHARED_DATA)
    return SHARED_DATA


@pytest.fixture
def tflm_root() -> Path:
    """The TFLM tree the firmware tests build against (tests/firmware_tools.tflm_root: TFLM_ROOT, else
    ../shared/tflm), or a skip naming what is missing."""
    from . import firmware_tools

    return firmware_tools.tflm_root()


def tiny_classifier(input_shape=(8, 8, 4), classes=3):
    import tf_keras as keras

    return keras.Sequential([
        keras.layers.Input(input_shape),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(classes, name="logits"),
    ])


def tiny_dataset(samples=256, input_shape=(8, 8, 4), classes=3, seed=0):
    """Learnable synthetic data: the class is which third of the image is brightest."""
    from converter.inputs.dataset import Dataset

    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, samples)
    x = rng.uniform(0, 0.3, (samples, *input_shape)).astype(np.float32)
    band = input_shape[0] // classes
    for i, label in enumerate(y):
        x[i, label * band:(label + 1) * band] += 0.7
    split = samples * 3 // 4
    return Dataset(x_train=x[:split], y_train=y[:split], x_calibration=x[:split],
                   x_eval=x[split:], y_eval=y[split:], labels=[f"class{i}" for i in range(classes)])


def run_kit(*args, cwd=REPO, env=None):
    """The CLI as a user runs it, in a fresh process."""
    # -P: like the `tflm-kit` console script, nothing in the working directory is importable;
    # the kit under test is found first on PYTHONPATH
    merged = {**os.environ, **(env or {})}
    merged["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), merged.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-P", "-m", "converter", *map(str, args)], cwd=cwd, env=merged,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """default.yaml (the digits CNN through prune + cluster + LUT) converted once for the whole session; `make demo`'s
    own recipe, demo.yaml, is tested in tests/test_demo.py."""
    out = tmp_path_factory.mktemp("demo") / "digits"
    result = run_kit("convert", REPO / "models/recipes/default.yaml", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def make_demo_run(tmp_path_factory):
    """`make demo`'s conversion (models/recipes/demo.yaml, int4 filters) as a fresh clone runs it (no TFLM_ROOT),
    once for the session: (its --out folder, the finished process). tests/test_demo.py checks what it prints;
    tests/test_aot_firmware.py deploys it."""
    out = tmp_path_factory.mktemp("make_demo") / "digits"
    result = run_kit("convert", REPO / "models/recipes/demo.yaml", "--out", out, env={"TFLM_ROOT": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="session")
def ic_dir(shared_data, tmp_path_factory) -> Path:
    """The MLPerf Tiny IC ResNet-8, converted once with PTQ calibrated on real CIFAR-10."""
    out = tmp_path_factory.mktemp("ic") / "mlperf_ic"
    result = run_kit("convert", REPO / "models/recipes/mlperf_ic.yaml", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def cxx() -> str:
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("needs a host C++ compiler (g++); install build-essential")
    return compiler
