"""`firmware --runtime aot` on the real boards, as far as this machine can check each one:
- pico: built with the real pico-sdk (CMSIS-NN's plain C paths) and run on an emulated RP2040 (rp2040js), bit-identical
  to TFLM (golden.npz holds TFLM's outputs) — tests/test_pico_rp2040.py runs the TFLM build of the same model there;
- stm32: configured and linked against STM32CubeF7 with CMSIS-NN (slow: CMSIS-NN is compiled for the Cortex-M7);
- zephyr, arduino, platformio (Cortex-M4F): every C file compiled with arm-none-eabi-gcc against stub platform headers;
- esp-idf: the portable kernels and main.c compiled with the host's gcc as a stand-in for ESP-IDF's Xtensa compiler.
Each test skips naming what is missing (../shared/sdk, CMSIS-NN, node and rp2040js, the cross compiler).
"""
import json
import shutil
import subprocess

import pytest

from converter.aot import generate
from converter.flows.flash import flash
from converter.runtimes import rp2040
from converter.runtimes.boards import load_board
from converter.runtimes.device import DEVICE_FILE
from converter.runtimes.render import render_project

from .firmware_tools import need_tools, sdk
from .test_pico_rp2040 import pico_tools  # noqa: F401  (fixture)


@pytest.fixture(scope="session")
def aot_demo_dir(demo_dir, tmp_path_factory):
    """The demo's model directory with its interpreter-free C (aot/), as `convert` writes it when it emits both
    runtimes; generated here from model.tflite when this convert does not write it yet."""
    if (demo_dir / "aot" / "aot_model.h").is_file():
        return demo_dir
    folder = tmp_path_factory.mktemp("aot_demo") / "digits"
    shutil.copytree(demo_dir, folder)
    generate((folder / "model.tflite").read_bytes()).write(folder / "aot")
    return folder


@pytest.fixture
def cmsis_nn(monkeypatch):
    root = sdk("cmsis-nn")
    monkeypatch.setenv("CMSIS_NN_ROOT", str(root))
    return root


def test_pico_aot_runs_on_an_emulated_rp2040_bit_identical_to_tflm(pico_tools, cmsis_nn, aot_demo_dir,  # noqa: F811
                                                                    tmp_path):
    project = tmp_path / "pico-aot"
    render_project("pico", aot_demo_dir, project, runtime="aot")
    summary = flash(project)
    assert summary["emulator"] == "rp2040js" and summary["stop"] == "selftest"
    assert summary["pass"] and summary["passed"] == summary["total"] == 10, summary["failures"]
    device = json.loads((project / DEVICE_FILE).read_text())
    assert device["bit_identical"] and device["core"] == "cortex-m0plus"
    # no TFLM in the image: the generated C, CMSIS-NN and the pico-sdk only
    assert not any("tflite" in line for line in (project / "build" / "digits_fw.elf.map").read_text().splitlines()
                   if line.startswith(" .text"))
    assert device["cycles_per_inference"] > 0 and device["arena_used_bytes"] == device["arena_size_bytes"]


@pytest.mark.slow
def test_stm32_aot_configures_and_links_against_stm32cube(cmsis_nn, aot_demo_dir, tmp_path):
    cube = sdk("stm32cubef7")
    need_tools("cmake", "arm-none-eabi-gcc")
    project = tmp_path / "stm32-aot"
    render_project("stm32", aot_demo_dir, project, runtime="aot")
    configure = subprocess.run(["cmake", "-S", project, "-B", project / "build",
                                "-DCMAKE_TOOLCHAIN_FILE=cmake/arm-gcc-toolchain.cmake", f"-DCMSIS_NN_ROOT={cmsis_nn}",
                                f"-DSTM32CUBE_F7={cube}"], capture_output=True, text=True)
    assert configure.returncode == 0, configure.stdout[-2000:] + configure.stderr[-2000:]
    build = subprocess.run(["cmake", "--build", project / "build", "-j2"], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    symbols = subprocess.run(["arm-none-eabi-nm", project / "build/digits_fw.elf"], capture_output=True, text=True)
    # each layer calls the CMSIS-NN kernel its wrapper would choose (not the wrapper itself)
    assert "aot_model_invoke" in symbols.stdout and " T arm_convolve_" in symbols.stdout


# Just enough of each platform's API for the generated C to compile; the SDKs themselves are not here.
STUBS = {
    "zephyr/kernel.h": "#pragma once\n#include <stdint.h>\nint32_t k_msleep(int32_t ms);\nuint32_t k_cycle_get_32(void);",
    "freertos/FreeRTOS.h": "#pragma once\n#define pdMS_TO_TICKS(ms) (ms)",
    "freertos/task.h": "#pragma once\nvoid vTaskDelay(unsigned ticks);",
    "Arduino.h": "#pragma once\nunsigned long millis(); void delay(unsigned long);\n"
                 "struct SerialStub { void begin(long); void print(const char*); explicit operator bool() const; };\n"
                 "extern SerialStub Serial;",
}
CORTEX_M4F = ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb"]


def _stubs(folder):
    for rel, text in STUBS.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text + "\n")
    return folder


@pytest.mark.parametrize("board", ["zephyr", "arduino", "platformio", "esp-idf"])
def test_board_aot_sources_compile_with_stub_platform_headers(board, aot_demo_dir, tmp_path):
    xtensa_stand_in = board == "esp-idf"   # no Xtensa compiler here: the host's gcc compiles the portable C
    need_tools("gcc" if xtensa_stand_in else "arm-none-eabi-gcc")
    profile = load_board(board)
    project = tmp_path / "proj"
    record = render_project(board, aot_demo_dir, project, runtime="aot")
    model = project / profile["model_dir"]
    includes = [f"-I{_stubs(tmp_path / 'stubs')}", f"-I{model}", f"-I{model / 'aot'}", f"-I{project}"]
    defines = []
    if profile["aot"]["kernels"] == "cmsis-nn":
        cmsis = sdk("cmsis-nn")
        includes.append(f"-I{cmsis / 'Include'}")
        defines.append("-DAOT_CMSIS_NN")
    cc = ["gcc"] if xtensa_stand_in else ["arm-none-eabi-gcc", *CORTEX_M4F]
    # arduino compiles aot/ through aot_unity.c (its builder skips subfolders); elsewhere every .c is compiled
    sources = [project / rel for rel in record["files"] if rel.endswith(".c")
               and not (board == "arduino" and rel.startswith("aot/"))]
    assert any(s.name in ("main.c", "aot_main.c") for s in sources)
    for source in sources:
        done = subprocess.run([*cc, "-std=c99", "-Os", "-Wall", "-Werror", *defines, *includes, "-c", str(source),
                               "-o", str(tmp_path / f"{source.stem}.o")], capture_output=True, text=True)
        assert done.returncode == 0, f"{board}/{source.name}:\n{done.stderr[-3000:]}"
    if board == "arduino":   # the unity file covers every .c the generator wrote
        unity = (project / "aot_unity.c").read_text()
        assert all(f'"aot/{c.name}"' in unity for c in (project / "aot").glob("*.c"))
    bridges = [project / rel for rel in record["files"] if rel.endswith((".ino", ".cpp"))]
    for bridge in bridges:   # the Arduino side: setup()/loop() and printf to Serial, C++
        cxx = ["g++"] if shutil.which("g++") else []
        if cxx:
            done = subprocess.run([*cxx, "-fsyntax-only", "-std=c++17", "-Wall", "-Werror", *includes, "-x", "c++",
                                   str(bridge)], capture_output=True, text=True)
            assert done.returncode == 0, f"{board}/{bridge.name}:\n{done.stderr[-3000:]}"


def test_rp2040_tools_are_found_only_when_complete(monkeypatch, tmp_path):
    monkeypatch.setenv("PICO_SDK_PATH", str(tmp_path / "no-sdk"))
    tools, missing = rp2040.find_tools()
    assert tools is None and "pico-sdk" in missing and "boot ROM" in missing
