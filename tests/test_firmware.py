"""Firmware projects: every board renders, refuses what its TFLM port cannot run or what does not fit,
and the generated C++ is valid for every bundled recipe (builds and runs: test_firmware_builds.py)."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from converter.emit.sources import c_float
from converter.errors import KitError
from converter.flows.firmware import (HOST_DEFINES, RECORD_NAME, TEMPLATES_DIR, list_boards, load_board,
                                      render_firmware)
from converter.runtimes.run import build_error
from converter.runtimes.selftest import compare_with_golden, parse_selftest
from converter.tflm.footprint import code_size_targets, deployed_flash
from converter.tflm.ports import known_ports, load_port
from converter.tflm.resolver_header import find_resolver_header, operators_of, resolver_methods
from converter.tflm.tree import include_dirs

from .conftest import REPO, run_kit
from .firmware_tools import need_tools, sdk, tflm_root

RUNNABLE = ("host", "cortex-m-qemu", "cortex-m7-qemu", "cortex-m0plus-qemu")


@pytest.mark.parametrize("board", list_boards())
def test_board_profile_is_complete(board):
    profile = load_board(board)
    for key in ("name", "description", "mcu", "core", "fpu", "flash_bytes", "ram_bytes", "clock_hz",
                "toolchain", "model_dir", "files", "port"):
        assert key in profile, f"{board}.yaml lacks {key}"
    assert profile["name"] == board and profile["port"] in known_ports()
    for template in profile["files"]:
        assert (TEMPLATES_DIR / profile["template"] / template).is_file(), f"{board}/{template} missing"
    if profile.get("flash_bytes"):
        assert profile["code_size"] in code_size_targets()
    if board in RUNNABLE:
        assert profile["runs_on"] in ("host", "qemu")
    else:
        assert {"tool", "command", "install"} <= set(profile["flash"])


def test_emulated_cores_are_profiles_of_one_template():
    m4, m7 = load_board("cortex-m-qemu"), load_board("cortex-m7-qemu")
    assert m4["template"] == m7["template"] == "cortex-m-qemu"
    assert (m4["qemu_machine"], m7["qemu_machine"]) == ("mps2-an386", "mps2-an500")
    assert "-mfloat-abi=soft" in m4["arch_flags"] and "-mfloat-abi=hard" in m7["arch_flags"]


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
    for banned in ("AllOpsResolver", "ErrorReporter", "{{", "{%"):
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


def _with_manifest(demo_dir, tmp_path, change):
    copy = tmp_path / "model"
    shutil.copytree(demo_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_render_refuses_a_model_that_does_not_fit(demo_dir, tmp_path):
    big = _with_manifest(demo_dir, tmp_path, lambda m: m.update(tensor_arena_size=300000))
    with pytest.raises(KitError) as error:
        render_firmware("pico", big, tmp_path / "out")
    need = 300000 + load_board("pico")["reserve_ram_bytes"]
    assert f"{need - load_board('pico')['ram_bytes']} bytes too many" in str(error.value)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_flash_budget_is_measured_tflm_code_plus_model_plus_golden(demo_dir, tmp_path):
    record = render_firmware("stm32", demo_dir, tmp_path / "p")
    manifest = json.loads((demo_dir / "manifest.json").read_text())
    footprint = deployed_flash(manifest["model"]["bytes"], manifest["model"]["operators"], "cortex-m7+fp",
                               manifest["model"]["kernels"])  # the specialised kernels model_ops.h registers
    assert record["flash_needed_bytes"] == (footprint.total + record["golden_bytes"]
                                            + load_board("stm32")["platform_flash_bytes"])
    assert {key.split("/")[0] for key in record["footprint"]["kernels"]} == set(manifest["model"]["operators"])
    assert "CONV_2D/INT8" in record["footprint"]["kernels"]
    huge = _with_manifest(demo_dir, tmp_path, lambda m: m["model"].update(bytes=1_000_000))
    with pytest.raises(KitError, match=r"does not fit flash on stm32.*TFLM kernels \d+ \+ TFLM core \d+"):
        render_firmware("stm32", huge, tmp_path / "out")


def test_footprint_counts_shared_kernel_code_once():
    ops = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    for target in code_size_targets():
        together = deployed_flash(1000, ops, target)
        alone = [deployed_flash(0, [op], target) for op in ops]
        assert together.shared > 0
        assert together.total == 1000 + together.core + sum(f.total - f.core for f in alone) - together.shared
        assert deployed_flash(1000, ops + ops, target) == together
    with pytest.raises(KitError, match="NOT_AN_OP.*regenerate"):
        deployed_flash(1000, ["NOT_AN_OP"])
    with pytest.raises(KitError, match="cortex-m4"):
        deployed_flash(1000, ops, "risc-v")


@pytest.mark.parametrize("board", ["arduino", "platformio"])
def test_lut_model_is_refused_for_ports_without_decode(board, demo_dir, tmp_path):
    lut = _with_manifest(demo_dir, tmp_path, lambda m: m["model"]["operators"].update(TFLM_DECODE=1))
    result = run_kit("firmware", "--board", board, "--model-dir", lut, "--out", tmp_path / "out")
    assert result.returncode == 2 and not (tmp_path / "out").exists()
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: 'digits' uses TFLM_DECODE")
    assert load_board(board)["port"] in line and "uncompressed model" in line
    assert "zephyr" in line.split("another board:")[1] and "arduino" not in line.split("another board:")[1]


# pico builds against TFLM_ROOT's Cortex-M0+ library (its pico-tflmicro fallback refuses DECODE at configure time)
@pytest.mark.parametrize("board", ["esp-idf", "zephyr", "cortex-m-qemu", "cortex-m7-qemu", "stm32", "host", "pico"])
def test_lut_model_renders_for_ports_with_decode(board, demo_dir, tmp_path):
    """A port whose TFLM has the DECODE kernel takes a LUT model: the project is written whole, its flash
    budget counts the DECODE kernel's code, and the model it carries is the converted one."""
    lut = _with_manifest(demo_dir, tmp_path, lambda m: m["model"]["operators"].update(TFLM_DECODE=1))
    out = tmp_path / "out"
    record = render_firmware(board, lut, out)
    assert record["port"] == load_board(board)["port"] and "TFLM_DECODE" in record["operators"]
    assert json.loads((out / RECORD_NAME).read_text()) == record
    assert record["files"] and all((out / name).is_file() for name in record["files"])
    if record.get("footprint"):
        assert record["footprint"]["kernels"].get("TFLM_DECODE", 0) > 0
    carried = [name for name in record["files"] if name.rsplit("/", 1)[-1].startswith("model_data.")]
    assert carried, record["files"]
    assert (out / carried[0]).read_text() == (demo_dir / "model_data.cc").read_text()


def test_port_operator_table_matches_the_ports_headers():
    """The committed table is what tools/regen_port_ops.py reads from ../shared/sdk/ports today."""
    ports, root = sdk("ports"), tflm_root()
    for name in known_ports():
        folder = root if name == "tflite-micro" else ports / name
        methods = resolver_methods(find_resolver_header(folder).read_text())
        assert set(operators_of(methods)) == load_port(name).operators, name
    assert "TFLM_DECODE" not in load_port("pico-tflmicro").operators
    assert "TFLM_DECODE" in load_port("esp-tflite-micro").operators


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


def test_pico_project_builds_only_what_it_links_and_can_print(demo_dir, tmp_path):
    """Defect 4: pico-tflmicro's examples and tests out of `all`, bounded -j, picotool and TinyUSB said, UART on."""
    record = render_firmware("pico", demo_dir, tmp_path / "pico")
    cmake = (tmp_path / "pico/CMakeLists.txt").read_text()
    readme = (tmp_path / "pico/README.md").read_text()
    assert "pico-tflmicro EXCLUDE_FROM_ALL)" in cmake   # the fallback without a TFLM tree
    # first choice: the TFLM the kit validates with, its Cortex-M0+ library, and MicroPrintf routed to stdio
    assert "gen/${TFLM_TARGET}/lib/libtensorflow-microlite.a" in cmake and "TFLM_KIT_DEBUG_LOG_CALLBACK" in cmake
    assert "TFLM_ROOT" in readme and "rp2040js" in readme
    assert f"pico_enable_stdio_uart({record['name']}_fw 1)" in cmake and "lib/tinyusb" in cmake
    assert "git clone --recurse-submodules https://github.com/raspberrypi/pico-sdk" in readme
    assert "picotool" in readme and "--build build -j4" in readme
    assert " -j " not in load_board("pico")["flash"]["command"] + " "


def test_unknown_board_lists_the_known_ones(demo_dir, tmp_path):
    with pytest.raises(KitError, match="cortex-m-qemu"):
        render_firmware("esp8266", demo_dir, tmp_path / "x")


def test_parse_selftest_reassembles_chunked_outputs_and_the_profile(tmp_path):
    data = bytes(range(70))
    lines = [f"OUT 0 0 {o} {data[o:o + 32].hex()}\r" for o in range(0, 70, 32)]
    text = "\n".join(["boot noise", *lines, "PASS 1/1\r", "ARENA used 1234 of 2000 bytes\r", "TICKS 0 100",
                      "PROFILE 0 CONV_2D 60", "PROFILE 1 SOFTMAX 39", "PROFILE events 2 dropped 0",
                      "PROFILE total 100"])
    result = parse_selftest(text)
    assert result.ok and (result.passed, result.total) == (1, 1)
    assert result.outputs[(0, 0)] == data and result.arena_used == 1234
    assert result.instructions_per_inference == 4000 and result.profiled_instructions == 4000
    assert [(c.operator, c.instructions) for c in result.profile] == [("CONV_2D", 2400), ("SOFTMAX", 1560)]
    np.savez(tmp_path / "g.npz", input_0=np.zeros((1, 1), np.int8),
             output_0=np.frombuffer(data, np.uint8).reshape(1, 70))
    assert compare_with_golden(result, tmp_path / "g.npz") == []
    result.outputs[(0, 0)] = data[:5] + b"\xff" + data[6:]
    assert compare_with_golden(result, tmp_path / "g.npz") == ["vector 0 output 0: first differing byte 5"]
    bad = parse_selftest("FAIL vector 2 output 0 index 3 expected 5 actual 6\nFAIL 3/4 passed")
    assert not bad.ok and bad.passed == 3 and bad.failures


def test_build_errors_are_relayed_with_their_cause():
    """Defect 2: make's last line says nothing; the line that names the problem and the fix must get through."""
    make_output = ("arm-none-eabi-g++ ... -c main.cc -o build/main.o\n"
                   "error: /t/gen/x/lib/libtensorflow-microlite.a not found — fix: cd /t && make -f "
                   "tensorflow/lite/micro/tools/make/Makefile TARGET=cortex_m_generic microlite\n"
                   "make: *** [Makefile:27: /t/gen/x/lib/libtensorflow-microlite.a] Error 1\n")
    error = build_error("/p", make_output)
    assert error.problem.endswith("libtensorflow-microlite.a not found") and "TARGET=cortex_m_generic" in error.fix
    compiler_output = ("In file included from main.cc:20:\n"
                       "model/model_settings.h:24:34: error: unable to find numeric literal operator 'operator\"\"f'\n"
                       "model/model_settings.h:30:1: error: something that follows\n"
                       "make: *** [Makefile:37: build/main.o] Error 1\n")
    assert "model_settings.h:24:34: error: unable to find numeric literal" in build_error("/p", compiler_output).problem


@pytest.mark.parametrize("value, literal", [(1.0, "1.0f"), (256.0, "256.0f"), (1e-9, "1e-09f"), (1e30, "1e+30f"),
                                            (0.00390625, "0.00390625f"), (-2.0, "-2.0f"), (None, "0.0f")])
def test_float_literals_are_cxx(value, literal):
    assert c_float(value) == literal


def test_float_literals_refuse_inf_and_nan_and_compile(tmp_path):
    for bad in (float("inf"), float("-inf"), float("nan")):
        with pytest.raises(KitError, match="cannot represent"):
            c_float(bad)
    need_tools("g++")
    values = [1.0, 256.0, 1e-9, 1e30, 0.00390625, 3.4e38, 1.17549435e-38]
    source = tmp_path / "floats.cc"
    source.write_text(f"constexpr float kScales[] = {{{', '.join(c_float(v) for v in values)}}};\n"
                      f"static_assert(kScales[0] == 1.0f && kScales[1] == 256.0f, \"\");\n")
    done = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-Werror", str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _recipe_params():
    params = []
    for recipe in sorted((REPO / "models/recipes").glob("*.yaml")):
        fixture = {"default": "demo_dir", "mlperf_ic": "ic_dir"}.get(recipe.stem)
        params.append(pytest.param(recipe, fixture, id=recipe.stem,
                                   marks=() if fixture else pytest.mark.slow))
    return params


@pytest.mark.parametrize("recipe, fixture", _recipe_params())
def test_every_bundled_recipe_output_compiles(recipe, fixture, request, tmp_path):
    """Defect 1: only the demo's headers used to be compiled; the IC model's `1f` broke every board."""
    root = tflm_root()
    need_tools("g++")
    if "${TFLM_KIT_SHARED_DATA}" in recipe.read_text():
        request.getfixturevalue("shared_data")  # skips with the reason when the data is absent
    if fixture:
        out = request.getfixturevalue(fixture)
    else:
        out = tmp_path / recipe.stem
        result = run_kit("convert", recipe, "--out", out)
        assert result.returncode == 0, result.stderr[-3000:]
    includes = [f"-I{d}" for d in include_dirs(root)]
    main = tmp_path / "all_headers.cc"
    main.write_text("".join(f'#include "{h}"\n' for h in ("model_data.h", "model_ops.h", "model_settings.h",
                                                           "golden_vectors.h")))
    for source in (main, out / "model_data.cc", out / "golden_vectors.cc"):
        done = subprocess.run(["g++", "-fsyntax-only", "-std=c++17", "-Wall", "-Werror", *HOST_DEFINES.split(),
                               f"-I{out}", *includes, str(source)], capture_output=True, text=True)
        assert done.returncode == 0, f"{recipe.name} {source.name}:\n{done.stderr[-3000:]}"
