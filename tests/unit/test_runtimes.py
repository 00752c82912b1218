"""The runtime interface (converter/runtimes/): the registry, the boards each runtime renders for, how each one
prices a model, and the pieces the aot projects are made of (golden vectors in C, the code-size data)."""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from converter.emit.sources import golden_vectors_c
from converter.errors import KitError
from converter.runtimes import aot, tflm
from converter.runtimes.base import Deployed, Figure
from converter.runtimes.boards import TEMPLATES_DIR, all_boards, load_board
from converter.runtimes.facts import ModelFacts
from converter.runtimes.registry import RUNTIMES, get_runtime, runtime_names
from converter.tflm.footprint import code_size_targets, model_flash

FACTS = ModelFacts(name="m", model_bytes=1000, arena_bytes=2048, arena_measured_bytes=1800, input_count=1,
                   output_count=1, golden_count=2, golden_bytes=20, operators=["CONV_2D", "SOFTMAX"])


def test_every_runtime_is_registered_once_and_unknown_names_say_the_choices():
    assert runtime_names() == ["tflm", "aot"]
    assert all(get_runtime(name).name == name for name in runtime_names())
    with pytest.raises(KitError, match="unknown runtime 'tvm'.*tflm, aot"):
        get_runtime("tvm")


@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_each_board_template_of_each_runtime_exists(runtime):
    chosen = get_runtime(runtime)
    able = [name for name, board in all_boards().items() if runtime == "tflm" or "aot" in board]
    assert able, f"no board renders {runtime}"
    for name in able:
        folder, files = chosen.template(load_board(name))
        for template in files:
            path = TEMPLATES_DIR / (template if "/" in template else f"{folder}/{template}")
            assert path.is_file(), f"{name} ({runtime}): {path} missing"


@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_every_runtime_has_partition_pair_mains_over_its_own_main(runtime):
    """`partition --pair` replaces the runtime's cortex-m-qemu main with part0/part1 mains named after it; a runtime
    without them could not run the pair. TFLM adds no sources to a model directory, the others do."""
    from converter.partition.qemu import pair_template

    _, files = get_runtime(runtime).template(load_board("cortex-m-qemu"))
    for role in ("part0", "part1"):
        template, main = pair_template(runtime, role)
        assert (TEMPLATES_DIR / template).is_file() and main in files.values() and Path(main).stem == "main"
    assert pair_template("tflm", "part0") == ("cortex-m-qemu-pair/part0_main.cc.j2", "main.cc")
    assert pair_template("aot", "part1") == ("cortex-m-qemu-pair/part1_main.c.j2", "main.c")
    assert get_runtime("tflm").model_sources(b"", [], []).files == {}


def test_every_board_renders_the_aot_runtime_with_cmsis_nn_on_arm_where_its_build_can_reach_it():
    boards = all_boards()
    assert all("aot" in board for board in boards.values())
    portable = sorted(name for name, board in boards.items() if board["aot"]["kernels"] == "portable")
    # host and ESP32 (Xtensa): no CMSIS-NN; Arduino's builder cannot reach a CMSIS_NN_ROOT (nor, yet, PlatformIO's)
    assert portable == ["arduino", "esp-idf", "host", "platformio"]
    assert {boards[name]["aot"]["kernels"] for name in boards if name not in portable} == {"cmsis-nn"}
    assert load_board("cortex-m0plus-qemu")["qemu_machine"] == "mps2-an385"
    assert "-mcpu=cortex-m0plus" in load_board("cortex-m0plus-qemu")["arch_flags"]
    # every board's core has a buffer plan (cortex-m4f boards plan as cortex-m4, the ESP32-S3 as xtensa)
    assert {aot.aot_core(board) for board in boards.values()} <= set(aot.AOT_CORES.values())
    assert aot.aot_core(load_board("esp-idf")) == "xtensa" and aot.aot_core(load_board("zephyr")) == "cortex-m4"


def test_a_board_without_an_aot_template_is_refused_naming_the_ones_that_have_it(tmp_path):
    bare = {key: value for key, value in load_board("stm32").items() if key != "aot"}
    with pytest.raises(KitError, match="stm32 has no project template for the aot runtime.*--runtime tflm.*host"):
        get_runtime("aot").check(bare, FACTS, tmp_path, all_boards())


@pytest.mark.parametrize("board", ["arduino", "platformio"])
def test_aot_needs_no_tflm_port_so_a_port_gap_refuses_only_tflm(board, tmp_path):
    """Arduino_TensorFlowLite (2023) lacks DECODE, BATCH_MATMUL, ...: `firmware --runtime tflm` refuses such a
    model on its boards; the aot runtime compiles the model itself (its generator names what it cannot)."""
    gap = ModelFacts(**{**FACTS.__dict__, "operators": ["CONV_2D", "BATCH_MATMUL"]})
    with pytest.raises(KitError, match="BATCH_MATMUL"):
        get_runtime("tflm").check(load_board(board), gap, tmp_path, all_boards())
    get_runtime("aot").check(load_board(board), gap, tmp_path, all_boards())


def test_a_model_dir_without_the_generated_c_names_the_recipe_setting(tmp_path):
    with pytest.raises(KitError, match="has no aot/aot_model.h.*aot runtime"):
        aot.aot_folder(tmp_path)


def test_aot_on_an_arm_board_needs_cmsis_nn_and_says_so():
    needs = get_runtime("aot").needs(load_board("cortex-m-qemu"))
    assert needs.settings == ("CMSIS_NN_ROOT",) and "-DAOT_CMSIS_NN" in needs.defines
    assert get_runtime("aot").needs(load_board("host")).settings == ()
    assert get_runtime("tflm").needs(load_board("host")).settings == ("TFLM_ROOT",)


@pytest.mark.parametrize("target", code_size_targets())
def test_tflm_price_is_the_footprint_data_with_the_kernels_shared_once(target):
    model = _small_model()
    found = model_flash(model, target)
    priced = tflm.price(model, Figure(1800, "measured on cortex-m4 under QEMU"), target)
    assert priced.flash.bytes == found.total and priced.ram == Figure(1800, "measured on cortex-m4 under QEMU")
    assert sum(priced.parts.values()) == found.total and target in priced.flash.source


def test_deployed_line_says_where_each_figure_comes_from():
    line = Deployed("aot", "cortex-m4", Figure(5000, "footprint data"), Figure(900, "planned buffer"),
                    {"model data": 3000, "kernels": 2000}).line()
    assert line == ("aot on cortex-m4: flash 5,000 B (model data 3,000 + kernels 2,000; footprint data), "
                    "RAM 900 B (planned buffer)")


def test_constant_bytes_counts_the_arrays_the_generator_writes():
    source = ("static const int8_t aot_w3[20] AOT_ALIGN16 = {\n 1,\n};\n"
              "static const int32_t aot_m3[5] = {\n 1,\n};\nstatic const uint8_t aot_w4[33] AOT_ALIGN16 = {0};\n")
    assert aot.constant_bytes(source) == 32 + 20 + 48


def test_golden_vectors_in_c_hold_the_same_bytes():
    inputs = [np.arange(-3, 3, dtype=np.int8).reshape(2, 3), np.array([[1000], [-1]], dtype=np.int16)]
    outputs = [np.array([[5, -5], [7, 8]], dtype=np.int8)]
    files = golden_vectors_c("m", inputs, outputs)
    header, source = files["golden_vectors_c.h"], files["golden_vectors_c.c"]
    assert "#define GOLDEN_COUNT 2" in header and "#define GOLDEN_INPUT_BYTES_1 2" in header
    assert 'extern "C"' in header and "namespace" not in header
    arrays = dict(re.findall(r"const unsigned char (\w+)\[[^\]]*\] = \{\n(.*?)\n\};", source, re.S))
    as_bytes = {name: bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", text)) for name, text in arrays.items()}
    assert as_bytes == {"golden_input_0": inputs[0].tobytes(), "golden_input_1": inputs[1].astype("<i2").tobytes(),
                        "golden_output_0": outputs[0].tobytes()}


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a host C compiler (cc)")
def test_golden_vectors_in_c_compile_as_c99_and_as_cxx(tmp_path):
    files = golden_vectors_c("m", [np.zeros((2, 4), np.int8)], [np.ones((2, 3), np.int8)])
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "use.c").write_text('#include "golden_vectors_c.h"\nint main(void) { return golden_output_0[5] - 1; }\n')
    built = subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", "-pedantic", "golden_vectors_c.c", "use.c", "-o", "t"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert subprocess.run([str(tmp_path / "t")]).returncode == 0


def test_aot_code_size_data_names_every_kernel_the_generator_ships():
    kernels_dir = Path(aot.__file__).resolve().parent.parent / "aot" / "kernels"
    if not (kernels_dir / "aot_kernels.h").is_file():
        pytest.skip("converter/aot/ (the generator) is not on this branch yet")
    declared = set(re.findall(r"^void (aot_\w+)\(", (kernels_dir / "aot_kernels.h").read_text(), re.M))
    tables = sorted(aot.DATA_DIR.glob("aot_code_size_*.json"))
    assert tables, "no AOT code-size data: run tools/regen_aot_code_size.py"
    for path in tables:
        table = aot.code_size_table(path.stem.removeprefix("aot_code_size_"))
        for backend, data in table["backends"].items():
            assert set(data["kernels"]) == declared, f"{path.name} ({backend}) is stale: run tools/regen_aot_code_size.py"


def _small_model() -> bytes:
    from tests.aot_models import random_model

    return random_model(["CONV_2D", "FULLY_CONNECTED", "SOFTMAX"], 3, 5)


def test_optimize_prices_a_candidate_through_the_runtime_it_asks_for():
    from converter.optimize.cost import host_cost
    from converter.tflite.model import read_model

    model = _small_model()
    operators = read_model(model).operators
    manifest = {"model": {"bytes": len(model), "operators": {op: 1 for op in operators}}, "arena_bytes": 4096}
    board = load_board("cortex-m-qemu")
    tflm_cost, aot_cost = host_cost(manifest, board, model, "tflm"), host_cost(manifest, board, model, "aot")
    assert tflm_cost.flash_bytes == model_flash(model, "cortex-m4").total
    assert tflm_cost.arena_bytes == 4096 and tflm_cost.arena_source == "host estimate"
    expected = get_runtime("aot").price(model, Figure(4096, "host estimate"), "cortex-m4")
    assert aot_cost.flash_bytes == expected.flash.bytes < tflm_cost.flash_bytes
    assert aot_cost.arena_bytes == expected.ram.bytes and "planned" in aot_cost.arena_source


def test_price_all_gives_every_runtime_side_by_side_or_says_why_not():
    from converter.runtimes.registry import price_all

    figures, notes = price_all(_small_model(), Figure(4096, "host"), "cortex-m4")
    assert [f.runtime for f in figures] == ["tflm", "aot"] and notes == []
    figures, notes = price_all(_small_model(), Figure(4096, "host"), "riscv32")
    assert figures == [] and len(notes) == 2 and all("no deployed figure on riscv32" in n for n in notes)


def test_optimize_refuses_to_price_a_candidate_the_runtime_cannot_run():
    """A candidate with an operator outside the AOT set was priced by its flatbuffer alone ("flatbuffer only
    (estimate)", smaller than every real AOT price) under `optimize --runtime aot` without --device, so it could
    win a search the AOT runtime cannot deploy; now the trial fails with the operator named."""
    from converter.errors import KitError
    from converter.optimize.cost import host_cost
    from tests.aot_models import ModelBuilder

    b = ModelBuilder()
    x, y = b.activation((1, 4), 0.5, 0), b.activation((1, 4), 0.5, 0)
    b.op("LEAKY_RELU", (x,), (y,))
    b.io((x,), (y,))
    model = b.to_bytes()
    manifest = {"model": {"bytes": len(model), "operators": {"LEAKY_RELU": 1}}, "arena_bytes": 64}
    with pytest.raises(KitError, match="LEAKY_RELU"):
        host_cost(manifest, load_board("cortex-m-qemu"), model, "aot")
