"""The one door to child processes (converter/tflm/child.py): isolation from the working directory,
structured errors, crashes, time limits, and no temporary folder left behind."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from converter.errors import KitError
from converter.tflm import child
from converter.tflm.isolation import check_runs_safely, model_array, outputs_task, run_isolated
from converter.tflm.runners import time_limit

from .conftest import REPO, run_kit

TINY = REPO / "tests" / "data" / "not_this_model.tflite"
NO_ARENA = REPO / "tests" / "fuzz_corpus" / "tflite" / "case012.tflite"  # TFLM fails to allocate: a KitError
HOSTILE_MODULES = ("__init__.py", "__main__.py", "isolation.py", "validation.py", "arena.py", "runtimes.py",
                   "tflm/__init__.py", "tflm/child.py", "tflm/isolation.py", "tflm/arena.py", "flows/__init__.py",
                   "flows/validate.py", "flows/golden.py")


def leftover_folders() -> set:
    return set(Path(tempfile.gettempdir()).glob(f"{child.FOLDER_PREFIX}{os.getpid()}-*"))


def hostile_folder(root: Path) -> tuple[Path, Path]:
    """A working directory holding a `converter/` package whose every module writes a marker."""
    marker = root / "MARKER"
    for name in HOSTILE_MODULES:
        path = root / "converter" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n")
    return root, marker


def kit_from(cwd: Path, *args):
    """The CLI as the `tflm-kit` console script runs it (run_kit: -P, the kit on PYTHONPATH), from `cwd`."""
    return run_kit(*args, cwd=cwd)


def test_hostile_converter_package_in_the_working_directory_never_runs(tmp_path):
    cwd, marker = hostile_folder(tmp_path / "work")
    np.savez(cwd / "d.npz", x=np.zeros((3, 12), np.float32))
    result = kit_from(cwd, "validate", TINY, "--data", "d.npz", "--vectors", 3)
    assert result.returncode == 0, result.stderr[-2000:]
    result = kit_from(cwd, "golden", "record", TINY, "--out", "goldens", "--vectors", 3)
    assert result.returncode == 0, result.stderr[-2000:]
    result = kit_from(cwd, "golden", "check", "goldens")
    assert result.returncode == 0 and "PASS: 3 vectors" in result.stdout, result.stderr[-2000:]
    assert not marker.exists(), marker.read_text()


def test_hostile_converter_package_does_not_run_during_convert(tmp_path):
    """convert's children (the arena bisection) start from the same door."""
    cwd, marker = hostile_folder(tmp_path / "work")
    recipe = {"name": "tiny", "model": {"builder": f"{REPO / 'models/digits.py'}:build_model"},
              "data": {"builder": f"{REPO / 'models/digits.py'}:load_data"},
              "quantize": {"calibration_samples": 8}, "golden": {"vectors": 2}}
    (cwd / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = kit_from(cwd, "convert", "recipe.yaml", "--out", "out")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (cwd / "out" / "model.tflite").is_file() and not marker.exists()


def test_a_kit_error_in_the_child_keeps_its_problem_and_fix():
    before = leftover_folders()
    with pytest.raises(KitError) as error:
        check_runs_safely(NO_ARENA.read_bytes())
    assert error.value.problem.startswith("TFLM failed to run the model: ")
    assert error.value.fix == "check that every operator is supported by TFLM"
    assert leftover_folders() == before


def test_results_come_back_as_arrays():
    model = TINY.read_bytes()
    x = np.random.default_rng(0).integers(-128, 128, (5, 12)).astype(np.int8)
    from converter.tflm.runners import run_tflm

    outputs = run_isolated(model, [x])
    assert len(outputs) == 1 and np.array_equal(outputs[0], run_tflm(model, [x])[0])


def test_a_kit_bug_in_the_child_comes_back_with_its_traceback():
    with pytest.raises(child.ChildFailed, match=r"(?s)Traceback.*unknown runtime 'nonsense'"):
        child.run_in_child(outputs_task, {"inputs": 0, "runtime": "nonsense"}, {"model": model_array(b"x")},
                           what="a test", timeout=60)


def test_only_kit_functions_run_in_a_child():
    with pytest.raises(ValueError, match="kit functions"):
        child.run_in_child(print, {}, what="a test", timeout=60)


def test_the_time_limit_kills_the_child_and_cleans_up(monkeypatch):
    monkeypatch.setenv(child.TIMEOUT_VARIABLE, "0.01")
    before = leftover_folders()
    with pytest.raises(child.ChildTimedOut, match=rf"took over 0.01 s \(hang\?\).*{child.TIMEOUT_VARIABLE}"):
        check_runs_safely(TINY.read_bytes())
    assert leftover_folders() == before


@pytest.mark.parametrize("value", ["soon", "-3", "0", "inf"])
def test_a_bad_time_limit_setting_is_a_kit_error(monkeypatch, value):
    monkeypatch.setenv(child.TIMEOUT_VARIABLE, value)
    with pytest.raises(KitError, match=f"{child.TIMEOUT_VARIABLE}=.* is not a positive number of seconds"):
        check_runs_safely(TINY.read_bytes())


def test_the_time_limit_scales_with_the_model_and_the_work(shared_data):
    tiny = TINY.read_bytes()
    resnet = (shared_data / "mlperf_tiny/image_classification/pretrainedResnet_quant.tflite").read_bytes()
    assert time_limit(tiny, 100) < time_limit(tiny, 1000)
    assert time_limit(resnet, 100) - time_limit(resnet, 0) > 10 * (time_limit(tiny, 100) - time_limit(tiny, 0))


def test_a_crashed_child_is_reported_and_its_folder_removed(tmp_path, monkeypatch):
    crasher = tmp_path / "crasher"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(0o755)
    monkeypatch.setattr(child.sys, "executable", str(crasher))
    before = leftover_folders()
    with pytest.raises(KitError, match=r"loading crashed \(SIGSEGV\) on this model"):
        check_runs_safely(TINY.read_bytes())
    assert leftover_folders() == before


def test_folders_of_killed_kit_runs_are_swept(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = Path(tempfile.mkdtemp(prefix=f"{child.FOLDER_PREFIX}{gone.pid}-"))
    (stale / "model.tflite").write_bytes(b"left by a SIGKILLed run")
    check_runs_safely(TINY.read_bytes())
    assert not stale.exists()
