"""Firmware projects: every board renders; the host and QEMU builds reproduce golden.npz bit for bit.

Build tests need a TFLM checkout with the library built, named by TFLM_ROOT; without it (or
without the cross toolchain / QEMU) they skip and say what is missing.
"""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from converter.errors import KitError
from converter.flows.firmware import (HOST_DEFINES, RECORD_NAME, TEMPLATES_DIR, list_boards,
                                load_board, render_firmware)
from converter.flows.flash import compare_with_golden, flash, parse_selftest

HOST_LIB = "gen/linux_x86_64_default_gcc/lib/libtensorflow-microlite.a"
RUNNABLE = ("host", "cortex-m-qemu")

# Just enough of each platform's API for `g++ -fsyntax-only` to check the generated C++
# against the real TFLM headers; the SDKs themselves are not installed here.
PLATFORM_STUBS = {
    "Arduino.h": """#pragma once
        unsigned long millis(); void delay(unsigned long);
        struct SerialStub { explicit operator bool() const; }; extern SerialStub Serial;""",
    "TensorFlowLite.h": "#pragma once",
    "freertos/FreeRTOS.h": "#pragma once\n#define pdMS_TO_TICKS(ms) (ms)",
    "freertos/task.h": "#pragma once\nvoid vTaskDelay(unsigned);",
    "zephyr/kernel.h": "#pragma once\nint k_msleep(int);",
    "pico/stdlib.h": "#pragma once\nbool stdio_init_all(); void sleep_ms(unsigned);",
    "stm32f7xx.h": """#pragma once
        #include <cstdint>
        struct RCC_T { volatile uint32_t AHB1ENR, APB1ENR; }; extern RCC_T* RCC;
        struct GPIO_T { volatile uint32_t MODER, AFR[2]; }; extern GPIO_T* GPIOD;
        struct USART_T { volatile uint32_t BRR, CR1, ISR, TDR; }; extern USART_T* USART3;
        extern uint32_t SystemCoreClock; void SCB_EnableICache(); void SCB_EnableDCache();
        #define RCC_AHB1ENR_GPIODEN 8u
        #define RCC_APB1ENR_USART3EN 1u
        #define USART_CR1_TE 8u
        #define USART_CR1_UE 1u
        #define USART_ISR_TXE 128u""",
}


def tflm_root(lib: str | None = None) -> Path:
    """TFLM_ROOT, with `lib` built under it, or skip saying exactly what is missing."""
    root = os.environ.get("TFLM_ROOT")
    if not root:
        pytest.skip("needs TFLM_ROOT=<tflite-micro checkout with `make -f tensorflow/lite/micro/tools/make/Makefile microlite` built>")
    if lib and not (Path(root) / lib).is_file():
        pytest.skip(f"needs {Path(root) / lib}; build TFLM's microlite target first")
    return Path(root)


@pytest.mark.parametrize("board", list_boards())
def test_board_profile_is_complete(board):
    profile = load_board(board)
    for key in ("name", "description", "mcu", "core", "fpu", "flash_bytes", "ram_bytes", "clock_hz",
                "toolchain", "model_dir", "files"):
        assert key in profile, f"{board}.yaml lacks {key}"
    assert profile["name"] == board
    for template in profile["files"]:
        assert (TEMPLATES_DIR / board / template).is_file(), f"{board}/{template} missing"
    if board not in RUNNABLE:
        assert {"tool", "command", "install"} <= set(profile["flash"])


@pytest.mark.parametrize("board", list_boards())
def test_every_board_renders(board, demo_dir, tmp_path):
    out = tmp_path / "proj"
    record = render_firmware(board, demo_dir, out)
    assert record["name"] == "digits" and record["golden_count"] > 0
    for rel in record["files"]:
        assert (out / rel).is_file(), rel
    assert (out / RECORD_NAME).is_file()
    sources = "".join((out / f).read_text() for f in record["files"]
                      if f.endswith((".cc", ".cpp")) and "model" not in f and "golden" not in f)
    for needed in ("tflite::GetModel", "RegisterOps(resolver)", "tflite::MicroInterpreter",
                   "AllocateTensors", "arena_used_bytes", "Inference loop"):
        assert needed in sources, f"{board}: {needed} missing"
    for banned in ("AllOpsResolver", "ErrorReporter"):
        assert banned not in sources
    for rel in record["files"]:
        if rel.endswith((".yml", ".yaml")):
            yaml.safe_load((out / rel).read_text())


@pytest.mark.parametrize("board", list_boards())
def test_every_board_renders_the_mlperf_resnet(board, ic_dir, tmp_path):
    record = render_firmware(board, ic_dir, tmp_path / "proj")
    assert record["name"] == "mlperf_ic" and record["golden_count"] == 10
    main_sources = [f for f in record["files"] if f.endswith((".cc", ".cpp", ".ino")) and "golden" not in f]
    assert any("namespace model = mlperf_ic_model;" in (tmp_path / "proj" / f).read_text() for f in main_sources)


def test_render_refuses_a_model_that_does_not_fit(demo_dir, tmp_path):
    big = tmp_path / "big"
    shutil.copytree(demo_dir, big)
    settings = big / "model_settings.h"
    text = settings.read_text()
    arena = int(text.split("constexpr int kTensorArenaSize = ")[1].split(";")[0])
    settings.write_text(text.replace(f"kTensorArenaSize = {arena};", "kTensorArenaSize = 300000;"))
    with pytest.raises(KitError) as error:
        render_firmware("pico", big, tmp_path / "out")
    need = 300000 + load_board("pico")["reserve_ram_bytes"]
    assert f"{need - load_board('pico')['ram_bytes']} bytes too many" in str(error.value)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_render_needs_force_to_replace(demo_dir, tmp_path):
    out = tmp_path / "proj"
    render_firmware("host", demo_dir, out)
    with pytest.raises(KitError, match="--force"):
        render_firmware("host", demo_dir, out)
    render_firmware("zephyr", demo_dir, out, force=True)
    assert (out / "prj.conf").is_file() and not (out / "Makefile").exists()
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(KitError, match="not a tflm-kit firmware project"):
        render_firmware("host", demo_dir, stranger, force=True)
    assert (stranger / "notes.txt").exists()


def test_unknown_board_lists_the_known_ones(demo_dir, tmp_path):
    with pytest.raises(KitError, match="cortex-m-qemu"):
        render_firmware("esp8266", demo_dir, tmp_path / "x")


def test_parse_selftest_reassembles_chunked_outputs(tmp_path):
    data = bytes(range(70))
    lines = [f"OUT 0 0 {o} {data[o:o + 32].hex()}\r" for o in range(0, 70, 32)]
    text = "\n".join(["boot noise", *lines, "PASS 1/1\r", "ARENA used 1234 of 2000 bytes\r"])
    result = parse_selftest(text)
    assert result.ok and (result.passed, result.total) == (1, 1)
    assert result.outputs[(0, 0)] == data and result.arena_used == 1234
    np.savez(tmp_path / "g.npz", input_0=np.zeros((1, 1), np.int8),
             output_0=np.frombuffer(data, np.uint8).reshape(1, 70))
    assert compare_with_golden(result, tmp_path / "g.npz") == []
    result.outputs[(0, 0)] = data[:5] + b"\xff" + data[6:]
    assert compare_with_golden(result, tmp_path / "g.npz") == ["vector 0 output 0: first differing byte 5"]
    bad = parse_selftest("FAIL vector 2 output 0 index 3 expected 5 actual 6\nFAIL 3/4 passed")
    assert not bad.ok and bad.passed == 3 and bad.failures


@pytest.mark.parametrize("board", [b for b in list_boards() if b not in RUNNABLE])
def test_generated_cxx_compiles_against_tflm_headers(board, demo_dir, tmp_path):
    """Hardware boards can't be built here; check their C++ with g++ -fsyntax-only."""
    root = tflm_root()
    compiler = shutil.which("g++") or pytest.skip("needs g++ (build-essential)")
    stubs = tmp_path / "stubs"
    for rel, text in PLATFORM_STUBS.items():
        (stubs / rel).parent.mkdir(parents=True, exist_ok=True)
        (stubs / rel).write_text("\n".join(line.strip() for line in text.splitlines()) + "\n")
    out = tmp_path / "proj"
    record = render_firmware(board, demo_dir, out)
    downloads = root / "tensorflow/lite/micro/tools/make/downloads"
    for rel in record["files"]:
        if not rel.endswith((".cc", ".cpp")):
            continue
        cmd = [compiler, "-fsyntax-only", "-std=c++17", "-Wall", "-Werror", *HOST_DEFINES.split(),
               f"-I{stubs}", f"-I{root}", f"-I{downloads / 'flatbuffers/include'}",
               f"-I{downloads / 'gemmlowp'}", "-x", "c++", str(out / rel)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, f"{board}/{rel}:\n{done.stderr[-3000:]}"


def _assert_bit_exact(summary, demo_dir):
    golden = np.load(demo_dir / "golden.npz")
    count = golden["output_0"].shape[0]
    assert summary["exit_status"] == 0, summary
    assert (summary["passed"], summary["total"]) == (count, count), summary["failures"]
    assert summary["golden_differences"] == [] and summary["pass"]
    assert 0 < summary["arena_used_bytes"]


def test_host_firmware_is_bit_exact(demo_dir, tmp_path):
    root = tflm_root(HOST_LIB)
    shutil.which("make") or pytest.skip("needs GNU make")
    project = tmp_path / "host"
    render_firmware("host", demo_dir, project)
    _assert_bit_exact(flash(project, str(root)), demo_dir)


def test_cortex_m_qemu_firmware_is_bit_exact(demo_dir, tmp_path):
    profile = load_board("cortex-m-qemu")
    root = tflm_root(f"gen/{profile['tflm_target']}/lib/libtensorflow-microlite.a")
    for tool, how in (("arm-none-eabi-gcc", "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                       "libstdc++-arm-none-eabi-newlib"), ("qemu-system-arm", "apt-get install qemu-system-arm")):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} ({how})")
    project = tmp_path / "qemu"
    render_firmware("cortex-m-qemu", demo_dir, project)
    summary = flash(project, str(root))
    _assert_bit_exact(summary, demo_dir)
    # Reported, not asserted against a budget: the instruction count comes from SysTick under -icount.
    assert summary["instructions_per_inference"] > 0
