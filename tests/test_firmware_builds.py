"""Firmware that really builds and runs: host, Cortex-M4 (mps2-an386) and Cortex-M7+FPU (mps2-an500)
under QEMU reproduce golden.npz bit for bit for the demo, the MLPerf IC model and a LUT-compressed
model; stm32 configures and links; the other boards compile against their own TFLM port's headers.

Needs TFLM_ROOT (`make test` points it at ../shared/tflm), arm-none-eabi-gcc and qemu-system-arm;
each test skips with the reason when one is missing. Builds are cached for the session.
"""
import json
import subprocess

import numpy as np
import pytest
import yaml

from converter.runtimes.device import DEVICE_FILE
from converter.flows.firmware import HOST_DEFINES, load_board, render_firmware
from converter.flows.flash import flash
from converter.tflm.tree import port_include_dirs

from .conftest import REPO, run_kit
from .firmware_tools import need_tools, sdk, tflm_root

EMULATED = ("cortex-m-qemu", "cortex-m7-qemu")


@pytest.fixture(scope="session")
def lut_dir(tmp_path_factory):
    """The default recipe plus `compress: {lut: true}`: a model with TFLM_DECODE."""
    folder = tmp_path_factory.mktemp("lut")
    recipe = yaml.safe_load((REPO / "models/recipes/default.yaml").read_text())
    # builders named by absolute path: the recipe is written outside models/recipes/
    recipe |= {part: {**recipe[part], "builder": f"{REPO / 'models/digits.py'}:{recipe[part]['builder'].split(':')[1]}"}
               for part in ("model", "data")} | {"compress": {"lut": True}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = run_kit("convert", folder / "recipe.yaml", "--out", folder / "digits_lut")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "digits_lut"


@pytest.fixture(scope="session")
def run_firmware(tmp_path_factory):
    """run(board, model_dir) -> flash() summary, built and run once per session."""
    cache = {}

    def run(board, model_dir):
        if (board, model_dir) not in cache:
            profile = load_board(board)
            root = tflm_root(profile["tflm_target"])
            need_tools("make", *(("arm-none-eabi-gcc", "qemu-system-arm") if board in EMULATED else ()))
            project = tmp_path_factory.mktemp(board) / "fw"
            record = render_firmware(board, model_dir, project)
            cache[(board, model_dir)] = (flash(project, str(root)), record, project)
        return cache[(board, model_dir)]
    return run


def _model(request, which):
    return request.getfixturevalue({"demo": "demo_dir", "ic": "ic_dir", "lut": "lut_dir"}[which])


@pytest.mark.parametrize("which", ["demo", "ic", "lut"])
@pytest.mark.parametrize("board", ["host", *EMULATED])
def test_firmware_is_bit_identical_to_golden(board, which, request, run_firmware):
    model_dir = _model(request, which)
    summary, record, project = run_firmware(board, model_dir)
    count = np.load(model_dir / "golden.npz")["output_0"].shape[0]
    assert summary["exit_status"] == 0, summary["failures"]
    assert (summary["passed"], summary["total"]) == (count, count) and summary["pass"]
    assert summary["golden_differences"] == []
    device = json.loads((project / DEVICE_FILE).read_text())
    assert device["bit_identical"] and 0 < device["arena_used_bytes"] <= device["arena_size_bytes"]
    assert json.loads((project / ".tflm-kit-firmware.json").read_text())["device"] == device


@pytest.mark.parametrize("which", ["demo", "ic", "lut"])
@pytest.mark.parametrize("board", EMULATED)
def test_emulated_device_numbers(board, which, request, run_firmware):
    """Flash/RAM from the linker, instructions per inference and per operator, and the budget estimate."""
    model_dir = _model(request, which)
    summary, record, project = run_firmware(board, model_dir)
    device = json.loads((project / DEVICE_FILE).read_text())
    image = device["image"]
    assert device["flash_bytes"] == image["text"] + image["data"] > record["model_bytes"]
    assert device["static_ram_bytes"] == image["data"] + image["bss"] >= device["arena_size_bytes"]
    # The budget (measured TFLM code + model + golden vectors + platform) must not undershoot the
    # real image, and the measured TFLM part must be close: within 10% of the linked image.
    assert device["flash_bytes"] <= device["flash_estimate_bytes"] <= device["flash_bytes"] * 1.10
    manifest = json.loads((model_dir / "manifest.json").read_text())
    profiled = {row["operator"] for row in device["profile"]}
    assert set(manifest["model"]["operators"]) <= profiled
    assert len(device["profile"]) >= sum(manifest["model"]["operators"].values())
    per_inference = device["instructions_per_inference"]
    assert sum(device["profile_by_operator"].values()) == pytest.approx(per_inference, rel=0.05)


def test_lut_trade_is_measured_not_hidden(demo_dir, lut_dir, run_firmware):
    """On the device the LUT model's image is larger (DECODE's code > the bytes saved) and so is its arena."""
    plain, _, plain_project = run_firmware("cortex-m-qemu", demo_dir)
    lut, record, lut_project = run_firmware("cortex-m-qemu", lut_dir)
    plain_device = json.loads((plain_project / DEVICE_FILE).read_text())
    lut_device = json.loads((lut_project / DEVICE_FILE).read_text())
    assert record["model_bytes"] < record["uncompressed_model_bytes"]
    assert lut_device["flash_bytes"] > plain_device["flash_bytes"]
    assert lut_device["arena_used_bytes"] > plain_device["arena_used_bytes"]
    # what `firmware` predicted before any build, from the measured per-kernel code sizes
    measured_delta = lut_device["flash_bytes"] - plain_device["flash_bytes"]
    assert record["lut_image_delta_bytes"] > 0 and abs(record["lut_image_delta_bytes"] - measured_delta) < 3000


def test_stm32_configures_and_links(demo_dir, tmp_path):
    root = tflm_root(load_board("stm32")["tflm_target"])
    cube = sdk("stm32cubef7")
    need_tools("cmake", "make", "arm-none-eabi-gcc")
    project = tmp_path / "stm32"
    render_firmware("stm32", demo_dir, project)
    configure = subprocess.run(["cmake", "-S", project, "-B", project / "build",
                                "-DCMAKE_TOOLCHAIN_FILE=cmake/arm-gcc-toolchain.cmake", f"-DTFLM_ROOT={root}",
                                f"-DSTM32CUBE_F7={cube}"], capture_output=True, text=True)
    assert configure.returncode == 0, configure.stdout[-2000:] + configure.stderr[-2000:]
    build = subprocess.run(["cmake", "--build", project / "build", "-j2"], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert (project / "build/digits_fw.elf").is_file() and (project / "build/digits_fw.bin").stat().st_size > 0


# Just enough of each platform's API for `g++ -fsyntax-only` to check the generated C++ against
# the headers of the TFLM copy the board really builds with; the SDKs themselves are not here.
PLATFORM_STUBS = {
    "Arduino.h": """#pragma once
        unsigned long millis(); void delay(unsigned long);
        struct SerialStub { explicit operator bool() const; }; extern SerialStub Serial;""",
    "TensorFlowLite.h": "#pragma once",
    "freertos/FreeRTOS.h": "#pragma once\n#define pdMS_TO_TICKS(ms) (ms)",
    "freertos/task.h": "#pragma once\nvoid vTaskDelay(unsigned);",
    "zephyr/kernel.h": "#pragma once\nint k_msleep(int);",
    "pico/stdlib.h": "#pragma once\nbool stdio_init_all(); void sleep_ms(unsigned);",
    "hardware/structs/systick.h": """#pragma once
        struct systick_hw_t { volatile unsigned csr, rvr, cvr, calib; }; extern systick_hw_t* systick_hw;""",
}
PORT_BOARDS = ("arduino", "platformio", "esp-idf", "zephyr", "pico")


@pytest.mark.parametrize("board", PORT_BOARDS)
def test_board_sources_compile_against_their_own_tflm_port(board, demo_dir, tmp_path):
    root = tflm_root()
    need_tools("g++")
    # pico: the pico-tflmicro fallback (its real build against TFLM_ROOT runs in test_pico_rp2040.py)
    profile = load_board(board)
    port = sdk(f"ports/{profile.get('fallback_port', profile['port'])}")
    stubs = tmp_path / "stubs"
    for rel, text in PLATFORM_STUBS.items():
        (stubs / rel).parent.mkdir(parents=True, exist_ok=True)
        (stubs / rel).write_text("\n".join(line.strip() for line in text.splitlines()) + "\n")
    record = render_firmware(board, demo_dir, tmp_path / "proj")
    includes = [f"-I{d}" for d in port_include_dirs(port, root)]
    # The sources that include TFLM (model_data and golden_vectors are plain arrays, compiled for
    # every bundled recipe in test_firmware.py).
    sources = [tmp_path / "proj" / rel for rel in record["files"]
               if rel.endswith((".cc", ".cpp")) and not rel.split("/")[-1].startswith(("model_data", "golden_vectors"))]
    assert sources
    for source in sources:
        cmd = ["g++", "-fsyntax-only", "-std=c++17", "-Wall", "-Werror", *HOST_DEFINES.split(),
               *profile.get("fallback_port_defines", profile.get("port_defines", "")).split(), f"-I{stubs}", *includes, "-x", "c++", str(source)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, f"{board}/{source.name} against {port.name}:\n{done.stderr[-3000:]}"


def test_flash_relays_a_missing_library_and_the_qemu_target_library(demo_dir, tmp_path):
    """Defects 2 and 5: the build's own `error: ... — fix: ...` reaches the user, not make's last line."""
    from converter.errors import KitError

    need_tools("make", "arm-none-eabi-gcc", "arm-none-eabi-ar")
    project = tmp_path / "qemu"
    render_firmware("cortex-m-qemu", demo_dir, project)
    empty_root = tmp_path / "tflm"
    empty_root.mkdir()
    with pytest.raises(KitError) as missing:
        flash(project, str(empty_root))
    assert "libtensorflow-microlite.a not found" in str(missing.value)
    assert "TARGET=cortex_m_generic" in missing.value.fix and "make: ***" not in str(missing.value)
    # A library without RegisterDebugLogCallback, as TFLM's own TARGET=cortex_m_qemu build makes.
    lib = empty_root / "gen" / load_board("cortex-m-qemu")["tflm_target"] / "lib"
    lib.mkdir(parents=True)
    (tmp_path / "x.c").write_text("void DebugLog(const char* s) { (void)s; }\n")
    subprocess.run(["arm-none-eabi-gcc", "-c", tmp_path / "x.c", "-o", tmp_path / "x.o"], check=True)
    subprocess.run(["arm-none-eabi-ar", "rc", lib / "libtensorflow-microlite.a", tmp_path / "x.o"], check=True)
    with pytest.raises(KitError) as qemu_target:
        flash(project, str(empty_root))
    assert "RegisterDebugLogCallback" in str(qemu_target.value) and "cortex_m_generic" in qemu_target.value.fix


@pytest.mark.parametrize("port_name", ["Arduino_TensorFlowLite", "pico-tflmicro", "esp-tflite-micro",
                                       "zephyr-tflite-micro"])
def test_port_table_agrees_with_the_ports_compiler(port_name, lut_dir, tmp_path):
    """Defect 3 at the source: a LUT model's model_ops.h compiles against exactly the ports the table says have DECODE."""
    from converter.tflm.ports import load_port

    root = tflm_root()
    need_tools("g++")
    port = sdk(f"ports/{port_name}")
    source = tmp_path / "ops.cc"
    source.write_text('#include "model_ops.h"\nint main() { digits_model::OpResolver r; '
                      'return digits_model::RegisterOps(r); }\n')
    defines = {"pico-tflmicro": ["-DARDUINO=1"], "Arduino_TensorFlowLite": ["-DARDUINO=10607"]}.get(port_name, [])
    done = subprocess.run(["g++", "-fsyntax-only", "-std=c++17", *HOST_DEFINES.split(), *defines, f"-I{lut_dir}",
                           *[f"-I{d}" for d in port_include_dirs(port, root)], str(source)],
                          capture_output=True, text=True)
    has_decode = "TFLM_DECODE" in load_port(port_name).operators
    assert (done.returncode == 0) == has_decode, done.stderr[-2000:]
    if not has_decode:
        assert "AddDecode" in done.stderr


@pytest.mark.slow  # compiles a resolver with every operator: about 20 s on an idle core
def test_code_size_data_is_what_the_tool_measures(tmp_path):
    """converter/tflm/data/code_size_cortex-m4.json is reproducible from the library it names."""
    import importlib.util

    from converter.tflm.footprint import code_size_table
    root = tflm_root("cortex_m_generic_cortex-m4_default_cmsis_nn_gcc")
    need_tools("arm-none-eabi-gcc", "arm-none-eabi-nm", "arm-none-eabi-size")
    spec = importlib.util.spec_from_file_location("regen_code_size", REPO / "tools/regen_code_size.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    measured = tool.measure_target(root, "cortex-m4", tool.all_methods(root), tmp_path,
                                   only=["AddReshape", "AddSoftmax", "AddConv2D/Register_CONV_2D_INT8"])
    committed = code_size_table("cortex-m4")
    assert measured["core_bytes"] == committed["core_bytes"]
    for op in ("RESHAPE", "SOFTMAX", "CONV_2D/INT8"):
        assert measured["kernels"][op]["bytes"] == committed["kernels"][op]["bytes"]


def test_firmware_command_shows_the_lut_trade(lut_dir, tmp_path):
    result = run_kit("firmware", "--board", "cortex-m-qemu", "--model-dir", lut_dir, "--out", tmp_path / "fw")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.strip().startswith("flash ") and "TFLM kernels" in line and "golden vectors" in line
               for line in lines)
    trade = next(line for line in lines if "LUT compression" in line)
    assert "DECODE kernel adds" in trade and "image +" in trade and "decoded weights" in trade
