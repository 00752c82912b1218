"""The device's arena and bytes, not the PC's (issue 19, and issue 18's device check during convert).

`convert --device-check cortex-m4` builds the golden self-test for the Cortex-M4 and runs it under QEMU
before anything is written: its outputs must equal TFLM-on-host's, and the arena it used is the one
model_settings.h reserves (+ the recipe's margin). The CI check: on the demo and the MLPerf IC model the
reserved arena is >= the arena the target used and <= used + margin + 16 B, and the rendered board
project passes its self-test under QEMU with exactly that reservation; without the device check the
reservation is the Cortex-M4 arena derived from the model (converter/tflm/derived_arena.py), equal to
what QEMU measures.

Needs TFLM_ROOT, arm-none-eabi-gcc and qemu-system-arm (each test skips saying which is missing).
"""
import json
import re

import numpy as np
import pytest

from converter.errors import KitError
from converter.flows.firmware import render_firmware
from converter.flows.flash import flash
from converter.tflm.derived_arena import derive

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


def _check_reservation(project, needed: int, margin: float, root) -> None:
    """The reservation is the target's arena + margin (within 16 B), and the firmware passes with exactly it.
    `needed`: the smallest arena that allocates and invokes on the core (>= its arena_used_bytes())."""
    reserved = _reserved(project)
    assert needed <= reserved <= needed + needed * margin + 16
    summary = flash(project, str(root))
    assert summary["pass"], summary["failures"] or summary["golden_differences"]
    assert summary["arena_used_bytes"] <= needed
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
    # what a fresh clone writes without the tools, derived from the model, is what QEMU measured, to the byte
    derived = derive((out / "model.tflite").read_bytes(), "cortex-m4")
    assert (derived.needed, derived.used) == (target["bytes"], manifest["device_check"]["arena_used_bytes"])


def test_ic_reserves_the_derived_arena_which_is_what_the_cortex_m4_needs(ic_dir, tmp_path):
    """ic_dir was converted without the device check (the suite turns it off): model_settings.h reserves the
    Cortex-M4 arena derived from the model; QEMU measures the same smallest arena, and the board project passes
    its self-test with the reservation (>= the measured need, <= it + margin + 16 B)."""
    from converter.runtimes.device_check import measure_model_dir
    from converter.runtimes.facts import read_model_dir

    root = _tools()
    manifest = json.loads((ic_dir / "manifest.json").read_text())
    target = manifest["arena"]["target"]
    assert target["kind"] == "derived" and target["core"] == "cortex-m4"
    assert target["bytes"] < manifest["arena"]["host"]["bytes"]
    assert "derived for Cortex-M4 (32-bit)" in (ic_dir / "model_settings.h").read_text()
    measured = measure_model_dir("cortex-m4", ic_dir, read_model_dir(ic_dir))
    assert measured.kind == "measured" and measured.bytes == target["bytes"]
    project = tmp_path / "fw"
    record = render_firmware("cortex-m-qemu", ic_dir, project)
    assert record["arena_source"].startswith("derived for Cortex-M4")
    _check_reservation(project, measured.bytes, manifest["arena"]["margin"], root)


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
        run_device_check("cortex-m4", (out / "model.tflite").read_bytes(), sources, golden.inputs, wrong,
                         read_model_dir(out))
    assert "vector 3 output 0" in str(failed.value) and "cortex-m4" in str(failed.value)


@pytest.mark.slow  # converts the MLPerf AD model (about a minute) and builds its firmware
def test_ad_reservation_covers_what_kernels_take_while_preparing(shared_data, tmp_path):
    """arena_used_bytes() says 15,956 B for the MLPerf AD model on the Cortex-M4, but AllocateTensors fails
    below 20,512 B (its FULLY_CONNECTED takes more while it prepares): the device check searches the smallest
    arena that allocates and invokes, and the board project passes with it + margin."""
    root = _tools()
    out = tmp_path / "ad"
    result = run_kit("convert", REPO / "models/recipes/mlperf_ad.yaml", "--out", out, "--device-check", "cortex-m4")
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    check = manifest["device_check"]
    assert check["arena_bytes"] > check["arena_used_bytes"] and manifest["arena_bytes"] == check["arena_bytes"]
    project = tmp_path / "fw"
    render_firmware("cortex-m-qemu", out, project)
    _check_reservation(project, check["arena_bytes"], manifest["arena"]["margin"], root)
