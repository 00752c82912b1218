"""The device's arena and bytes, not the PC's (issue 19, and issue 18's device check during convert).

`convert --device-check cortex-m4` builds the golden self-test for the Cortex-M4 and runs it under QEMU
before anything is written: its outputs must equal TFLM-on-host's, and the arena it used is the one
model_settings.h reserves (+ the recipe's margin). The CI check: on the demo and the MLPerf IC model the
reserved arena is >= the arena the target used and <= used + margin + 16 B, and the rendered board
project passes its self-test under QEMU with exactly that reservation.

Needs TFLM_ROOT, arm-none-eabi-gcc and qemu-system-arm (each test skips saying which is missing).
"""
import json
import re

import numpy as np
import pytest

from converter.errors import KitError
from converter.flows.firmware import render_firmware
from converter.flows.flash import flash

from .conftest import REPO, run_kit
from .firmware_tools import need_tools, tflm_root

M4_LIB = "cortex_m_generic_cortex-m4_default_cmsis_nn_gcc"


def _tools():
    root = tflm_root(M4_LIB)
    need_tools("make", "arm-none-eabi-gcc", "qemu-system-arm")
    return root


def _reserved(project) -> int:
    text = (project / "model" / "model_settings.h").read_text()
    return int(re.search(r"kTensorArenaSize = (\d+);", text).group(1))


def _check_reservation(project, used: int, margin: float, root) -> None:
    """The reservation is the target's arena + margin (within 16 B), and the firmware passes with exactly it."""
    reserved = _reserved(project)
    assert used <= reserved <= used + used * margin + 16
    summary = flash(project, str(root))
    assert summary["pass"], summary["failures"] or summary["golden_differences"]
    assert summary["arena_used_bytes"] == used  # the same build's arena: nothing reserved for nothing
    assert summary["device"].arena_size_bytes == reserved


@pytest.fixture(scope="module")
def demo_checked(tmp_path_factory):
    """make demo's recipe converted with the device check on the Cortex-M4."""
    _tools()
    out = tmp_path_factory.mktemp("demo_checked") / "digits"
    result = run_kit("convert", REPO / "models/recipes/demo.yaml", "--out", out, "--device-check", "cortex-m4")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout, result.stderr


def test_demo_reserves_the_cortex_m4_arena_and_prints_its_source(demo_checked, tmp_path):
    out, stdout, progress = demo_checked
    manifest = json.loads((out / "manifest.json").read_text())
    target, host = manifest["arena"]["target"], manifest["arena"]["host"]
    assert target["kind"] == "measured" and target["core"] == "cortex-m4"
    assert manifest["arena_bytes"] == target["bytes"] < host["bytes"]  # 15,332 B on the M4, 27,856 B on x86-64
    assert manifest["device_check"]["core"] == "cortex-m4" and manifest["device_check"]["vectors"] == 10
    settings = (out / "model_settings.h").read_text()
    assert f"kArenaMeasuredBytes = {target['bytes']};" in settings and "measured on cortex-m4 under QEMU" in settings
    deployed = manifest["deployed"]
    assert deployed["arena"] == target["bytes"] and deployed["arena_on_device"]
    line = next(text for text in stdout.splitlines() if text.startswith("deployed"))
    assert "measured on cortex-m4 under QEMU" in line and f"host {host['core']}, not the device's" in line
    assert "device check: building the golden self-test for cortex-m4" in progress  # the progress line while it runs
    project = tmp_path / "fw"
    render_firmware("cortex-m-qemu", out, project)
    _check_reservation(project, target["bytes"], manifest["arena"]["margin"], _tools())


def test_ic_board_project_reserves_the_arena_firmware_measures_for_its_core(ic_dir, tmp_path, monkeypatch):
    """ic_dir was converted without the device check (host figure): `firmware --board` measures the M4's now."""
    root = _tools()
    monkeypatch.setenv("TFLM_KIT_DEVICE_CHECK", "auto")  # the suite turns QEMU runs off elsewhere
    manifest = json.loads((ic_dir / "manifest.json").read_text())
    assert manifest["arena"]["target"]["kind"] == "host"
    project = tmp_path / "fw"
    record = render_firmware("cortex-m-qemu", ic_dir, project)
    assert "measured on cortex-m4 under QEMU" in record["arena_source"]
    assert record["arena_measured_bytes"] < manifest["arena"]["host"]["bytes"]
    _check_reservation(project, record["arena_measured_bytes"], manifest["arena"]["margin"], root)


def test_a_device_that_computes_other_bytes_fails_the_conversion_naming_the_vector(demo_checked):
    """What the device check does when the device parts from TFLM on the host: golden outputs that the
    firmware cannot reproduce (one byte of vector 3 changed) fail, naming the vector and output."""
    from converter.compare.golden_format import load_vectors
    from converter.runtimes.device_check import run_device_check
    from converter.runtimes.facts import MODEL_SOURCES, read_model_dir

    _tools()
    out, _, _ = demo_checked
    golden = load_vectors(out / "golden.npz")
    wrong = [y.copy() for y in golden.outputs]
    wrong[0][3].reshape(-1)[0] ^= np.array(1, dtype=wrong[0].dtype)
    sources = {name: (out / name).read_text() for name in MODEL_SOURCES}
    with pytest.raises(KitError) as failed:
        run_device_check("cortex-m4", "digits", (out / "model.tflite").read_bytes(), sources, golden.inputs, wrong,
                         read_model_dir(out))
    assert "vector 3 output 0" in str(failed.value) and "cortex-m4" in str(failed.value)
