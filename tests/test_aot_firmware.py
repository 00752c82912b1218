"""AOT firmware built and run: `firmware --runtime aot` + `flash` on the host (portable kernels), the Cortex-M4
(mps2-an386) and Cortex-M7 (mps2-an500) under QEMU with CMSIS-NN, and Armv6-M code (-mcpu=cortex-m0plus) on
mps2-an385, for the demo's model and the five MLPerf Tiny reference models. Every golden vector (TFLM's outputs
on the host) must come out byte for byte; device.json must hold the image's size and, under QEMU, the
instructions per inference.

The MLPerf models are their reference .tflite files (random inputs, as tests/test_tflite_source.py converts
them), converted once per module. CMSIS-NN is compiled once per core into CMSIS_NN_CACHE. Needs
arm-none-eabi-gcc, qemu-system-arm and CMSIS_NN_ROOT (../shared/sdk/cmsis-nn in CI); each test skips saying
which is missing. All five MLPerf models run in the default tier (issue 20: CI runs every core for each);
a Cortex-M case costs 1-2 s once the model is converted and the core's CMSIS-NN archive is built.
"""
import json
import os
import shutil

import pytest
import yaml

from converter import KitError
from converter.flows.firmware import render_firmware
from converter.flows.flash import flash
from converter.runtimes.boards import load_board
from converter.runtimes.device import DEVICE_FILE

from .conftest import REPO, run_kit
from .firmware_tools import need_tools, sdk

BOARDS = ("host", "cortex-m-qemu", "cortex-m7-qemu", "cortex-m0plus-qemu")
MLPERF = {"kws": "keyword_spotting/kws_ref_model.tflite",
          "ic": "image_classification/pretrainedResnet_quant.tflite",
          "vww": "visual_wake_words/vww_96_int8.tflite",
          "ad": "anomaly_detection/ad01_int8.tflite",
          "sww": "streaming_wakeword/str_ww_ref_model.tflite"}
GOLDEN_VECTORS = 4


@pytest.fixture(scope="module")
def cmsis_nn(tmp_path_factory):
    """CMSIS_NN_ROOT for the Arm builds, and one CMSIS-NN archive per core for the whole module."""
    root = os.environ.get("CMSIS_NN_ROOT") or str(sdk("cmsis-nn"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CMSIS_NN_ROOT", root)
        patch.setenv("CMSIS_NN_CACHE", str(tmp_path_factory.mktemp("cmsis-nn")))
        yield root


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, make_demo_run):
    """name -> converted model directory, converted on first use (the demo: `make demo`'s own conversion)."""
    made = {"demo": make_demo_run[0]}

    def get(name):
        if name not in made:
            folder = tmp_path_factory.mktemp(name)
            if name == "demo":
                recipe = REPO / "models/recipes/demo.yaml"
            elif name in ("lutprune", "floatio"):
                # lutprune: the kit's compress stage writes one LUT and one PRUNE tensor (DECODE);
                # floatio: float32 in (QUANTIZE) and out (DEQUANTIZE), int8 and int16 inputs dequantized
                from .aot_compressed import float_io_model, sparse_clustered_model

                (folder / "model.tflite").write_bytes(sparse_clustered_model() if name == "lutprune"
                                                      else float_io_model(0, 3))
                recipe = folder / "recipe.yaml"
                recipe.write_text(yaml.safe_dump({
                    "name": name, "model": {"path": str(folder / "model.tflite")},
                    "data": {"random": {"samples": 8, "low": -1.0, "high": 1.0}},
                    **({"compress": {"lut": True, "prune": True}} if name == "lutprune" else {}),
                    "golden": {"vectors": GOLDEN_VECTORS}}))
            else:
                shared = os.environ.get("TFLM_KIT_SHARED_DATA") or str(REPO.parent / "shared" / "data")
                source = os.path.join(shared, "mlperf_tiny", MLPERF[name])
                if not os.path.isfile(source):
                    pytest.skip(f"needs the MLPerf Tiny reference models at {shared}/mlperf_tiny (present in CI as "
                                "../shared/data; point TFLM_KIT_SHARED_DATA at a copy)")
                recipe = folder / "recipe.yaml"
                recipe.write_text(yaml.safe_dump({
                    "name": f"ref_{name}", "model": {"path": source},
                    "data": {"random": {"samples": 8, "low": -1.0, "high": 1.0}},
                    "compress": {"strip_metadata": True}, "golden": {"vectors": GOLDEN_VECTORS}}))
            result = run_kit("convert", recipe, "--out", folder / name)
            assert result.returncode == 0, result.stderr[-3000:]
            assert (folder / name / "aot" / "aot_model.h").is_file(), "convert wrote no aot/ (runtime: both)"
            made[name] = folder / name
        return made[name]
    return get


def _run(board, model_dir, project):
    need_tools("make", *(("arm-none-eabi-gcc", "qemu-system-arm") if board != "host" else ("cc",)))
    record = render_firmware(board, model_dir, project, runtime="aot")
    return record, flash(project)


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("model", ["demo", *MLPERF])
def test_aot_firmware_is_bit_identical_to_tflm(model, board, model_dirs, cmsis_nn, tmp_path):
    model_dir = model_dirs(model)
    record, ran = _run(board, model_dir, tmp_path / "fw")
    golden = json.loads((model_dir / "manifest.json").read_text())["summary"]["golden_vectors"]
    assert ran["pass"] and ran["passed"] == ran["total"] == golden, ran["failures"] + ran["golden_differences"]
    device = json.loads((tmp_path / "fw" / DEVICE_FILE).read_text())
    assert device["bit_identical"] and device["arena_used_bytes"] == record["buffer_bytes"]
    if board != "host":
        assert device["flash_bytes"] > 0 and device["instructions_per_inference"] > 0
        assert device["static_ram_bytes"] >= record["buffer_bytes"]
        assert record["kernels"] == "cmsis-nn" and (tmp_path / "fw" / "build/model/aot").is_dir()


@pytest.mark.parametrize("board", [pytest.param("host", marks=pytest.mark.slow), "cortex-m-qemu"])
def test_lut_and_prune_compressed_model_is_bit_identical_on_the_device(board, model_dirs, cmsis_nn, tmp_path):
    """A model whose weights the compress stage stored as LUT and PRUNE (TFLM runs them through DECODE): the
    AOT firmware keeps them compressed, decodes them before use and passes every golden vector."""
    model_dir = model_dirs("lutprune")
    manifest = json.loads((model_dir / "manifest.json").read_text())
    compress = next(s for s in manifest["stages"] if s["stage"] == "compress")
    assert compress["decode_operators"] == 2, compress
    source = (model_dir / "aot" / "aot_model.c").read_text()
    assert "aot_decode_lut(" in source and "aot_decode_prune(" in source
    record, ran = _run(board, model_dir, tmp_path / "fw")
    assert ran["pass"] and ran["passed"] == ran["total"] == GOLDEN_VECTORS, ran["failures"] + ran["golden_differences"]


@pytest.mark.slow
@pytest.mark.parametrize("board", ["cortex-m-qemu", "cortex-m7-qemu"])
def test_float_interfaces_are_bit_identical_on_the_device(board, model_dirs, cmsis_nn, tmp_path):
    """QUANTIZE float32 -> int8 and DEQUANTIZE -> float32 (int8_io: false) on the emulated Cortex-M4 (soft float)
    and Cortex-M7 (single-precision FPU): the float outputs' bytes equal TFLM's on the host."""
    record, ran = _run(board, model_dirs("floatio"), tmp_path / "fw")
    assert ran["pass"] and ran["passed"] == ran["total"] == GOLDEN_VECTORS, ran["failures"] + ran["golden_differences"]


def test_a_changed_golden_byte_fails_the_aot_self_test(model_dirs, tmp_path):
    """The check can fail: one output byte of the C golden vectors flipped gives FAIL and names the vector."""
    need_tools("make", "cc")
    project = tmp_path / "fw"
    render_firmware("host", model_dirs("demo"), project, runtime="aot")
    golden_c = project / "model" / "golden_vectors_c.c"
    text = golden_c.read_text()
    start = text.index("golden_output_0")
    first = text.index("0x", start)
    flipped = f"0x{int(text[first + 2:first + 4], 16) ^ 1:02x}"
    golden_c.write_text(text[:first] + flipped + text[first + 4:])
    ran = flash(project)
    assert not ran["pass"] and ran["passed"] == ran["total"] - 1
    assert any(line.startswith("FAIL vector 0 output 0 byte 0") for line in ran["failures"])


def test_an_arm_board_without_cmsis_nn_names_the_setting(model_dirs, tmp_path, monkeypatch):
    need_tools("make", "arm-none-eabi-gcc")
    monkeypatch.delenv("CMSIS_NN_ROOT", raising=False)
    render_firmware("cortex-m-qemu", model_dirs("demo"), tmp_path / "fw", runtime="aot")
    with pytest.raises(KitError, match="CMSIS_NN_ROOT is not set.*git clone https://github.com/ARM-software/CMSIS-NN"):
        flash(tmp_path / "fw")


def test_firmware_command_renders_aot_and_refuses_an_unknown_runtime(model_dirs, tmp_path):
    model_dir = model_dirs("demo")
    done = run_kit("firmware", "--board", "cortex-m-qemu", "--runtime", "aot", "--model-dir", model_dir,
                   "--out", tmp_path / "fw")
    assert done.returncode == 0, done.stderr
    assert "cortex-m-qemu project (aot runtime)" in done.stdout
    assert "AOT buffer" in done.stdout and "footprint data (cortex-m4, AOT cmsis-nn" in done.stdout
    refused = run_kit("firmware", "--board", "cortex-m-qemu", "--runtime", "tvm", "--model-dir", model_dir,
                      "--out", tmp_path / "other")
    assert refused.returncode == 2 and "'tvm' is not one of" in refused.stderr and "aot" in refused.stderr
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("board", ["cortex-m0plus-qemu"])
def test_tflm_runs_armv6m_code_on_mps2_an385(board, model_dirs, tmp_path):
    """The Cortex-M0+ profile is a TFLM board too: TFLM's Cortex-M0+ library, the same golden vectors."""
    from .firmware_tools import tflm_root

    root = tflm_root(load_board(board)["tflm_target"])
    need_tools("make", "arm-none-eabi-gcc", "qemu-system-arm")
    render_firmware(board, model_dirs("demo"), tmp_path / "fw")
    ran = flash(tmp_path / "fw", str(root))
    assert ran["pass"] and ran["passed"] == ran["total"] == 10
    assert ran["instructions_per_inference"] > 0
    assert shutil.which("qemu-system-arm")
