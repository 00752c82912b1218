"""The pico project built with the real pico-sdk and run on an emulated RP2040 (npm rp2040js): `tflm-kit flash`
prints PASS n/n bit-identical to golden.npz and writes device.json with the image size and rp2040js's cycles.

Needs ../shared/sdk/pico (pico-sdk 2.2.0, picotool, the RP2040 boot ROM), TFLM_ROOT with the Cortex-M0+ library,
arm-none-eabi-gcc, cmake, node and rp2040js in the kit's npm cache (`.ci/run` installs it; by hand:
`npm install --prefix ~/.cache/tflm-kit/npm rp2040js@1.4.1`); each test skips naming what is missing.
"""
import json
import shutil

import pytest

from converter.flows.flash import flash
from converter.runtimes import rp2040
from converter.runtimes.boards import load_board
from converter.runtimes.device import DEVICE_FILE
from converter.runtimes.render import render_project

from .conftest import run_kit
from .firmware_tools import need_tools, sdk, tflm_root


@pytest.fixture
def pico_tools(monkeypatch):
    """The emulated RP2040's tools, from ../shared/sdk/pico unless the environment names others."""
    pico = sdk("pico")
    need_tools("cmake", "arm-none-eabi-gcc")
    if shutil.which("node") is None:
        pytest.skip("needs node (apt-get install nodejs)")
    monkeypatch.setenv("PICO_SDK_PATH", str(pico / "pico-sdk"))
    monkeypatch.setenv("picotool_DIR", str(pico / "picotool/lib/cmake/picotool"))
    tools, missing = rp2040.find_tools()
    if tools is None:
        pytest.skip(f"needs {missing}")
    return tools


def _flash_on_rp2040js(model_dir, project):
    root = tflm_root(load_board("pico")["tflm_target"])
    render_project("pico", model_dir, project)
    return flash(project, str(root))


def test_pico_runs_the_demo_on_an_emulated_rp2040(pico_tools, demo_dir, tmp_path):
    summary = _flash_on_rp2040js(demo_dir, tmp_path / "pico")
    assert summary["emulator"] == "rp2040js" and summary["stop"] == "selftest"
    assert summary["pass"], summary["failures"] + summary["golden_differences"]
    assert summary["passed"] == summary["total"] == json.loads((demo_dir / "manifest.json").read_text())[
        "summary"]["golden_vectors"]
    device = json.loads((tmp_path / "pico" / DEVICE_FILE).read_text())
    assert device["core"] == "cortex-m0plus" and device["bit_identical"]
    # the image as linked: flash (XIP code + .data's copy) and static RAM holding the tensor arena
    assert device["flash_bytes"] > device["image"]["data"] > 0
    assert device["static_ram_bytes"] > device["arena_size_bytes"]
    # per-inference cycles from SysTick, below the emulator's count for the whole run (boot and 10 inferences)
    assert 0 < device["cycles_per_inference"] * summary["total"] < summary["total_cycles"]
    assert "emulator estimate" in device["how"]


def test_flash_names_what_the_emulator_lacks(demo_dir, tmp_path, monkeypatch):
    """Without rp2040js (or node, the SDK, the boot ROM) a pico project is flashed with picotool as before, and
    the user learns what running it here would take."""
    monkeypatch.setenv("TFLM_KIT_RP2040JS", str(tmp_path / "no-rp2040js"))
    monkeypatch.setenv("PATH", "/nonexistent")  # no picotool either
    render_project("pico", demo_dir, tmp_path / "pico")
    summary = flash(tmp_path / "pico")
    assert not summary["ran"] and summary["missing_tool"] == "picotool"
    assert "rp2040js" in summary["emulator_missing"] and "npm install" in summary["emulator_missing"]


def test_runner_refuses_a_file_that_is_not_uf2(pico_tools, tmp_path):
    bogus = tmp_path / "fw.uf2"
    bogus.write_bytes(b"\0" * 512)
    with pytest.raises(rp2040.KitError, match="not a UF2 block"):
        rp2040.run_uf2(bogus, pico_tools)


@pytest.fixture(scope="module")
def ref_kws(shared_data, tmp_path_factory):
    """MLPerf Tiny KWS, its reference int8 .tflite (random inputs, 3 golden vectors), converted once."""
    import yaml

    folder = tmp_path_factory.mktemp("ref_kws")
    recipe = folder / "kws.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "ref_kws", "model": {"path": str(shared_data / "mlperf_tiny/keyword_spotting/kws_ref_model.tflite")},
        "data": {"random": {"samples": 8, "low": -1.0, "high": 1.0}}, "golden": {"vectors": 3}}))
    converted = run_kit("convert", recipe, "--out", folder / "kws")
    assert converted.returncode == 0, converted.stderr[-3000:]
    return folder / "kws"


def _passed_on_rp2040js(summary: dict, project) -> None:
    assert summary["emulator"] == "rp2040js" and summary["stop"] == "selftest"
    assert summary["pass"] and summary["passed"] == summary["total"] == 3, summary["failures"]
    assert json.loads((project / DEVICE_FILE).read_text())["cycles_per_inference"] > 0


def test_pico_runs_kws_with_the_aot_runtime_on_an_emulated_rp2040(pico_tools, ref_kws, tmp_path, monkeypatch):
    """MLPerf Tiny KWS on the emulated RP2040: the AOT C with CMSIS-NN's plain C paths, PASS bit-identical (the demo
    runs both runtimes there in the default tier; KWS's TFLM build is the slow test below)."""
    monkeypatch.setenv("CMSIS_NN_ROOT", str(sdk("cmsis-nn")))
    render_project("pico", ref_kws, tmp_path / "pico-aot", runtime="aot")
    _passed_on_rp2040js(flash(tmp_path / "pico-aot"), tmp_path / "pico-aot")


@pytest.mark.slow
def test_pico_runs_kws_with_tflm_on_an_emulated_rp2040(pico_tools, ref_kws, tmp_path):
    """The same KWS model through TFLM_ROOT's Cortex-M0+ library on the same emulated board."""
    _passed_on_rp2040js(_flash_on_rp2040js(ref_kws, tmp_path / "pico"), tmp_path / "pico")
