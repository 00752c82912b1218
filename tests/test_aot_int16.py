"""int16x8 models (int16 activations, int8 weights, int64 biases) through the AOT runtime, against TFLM.

Per-operator fuzz on tiny flatbuffers (tests/aot_int16_models.py) on the portable kernels and CMSIS-NN's C path;
SOFTMAX's two lookup tables, computed in Python (converter/aot/quant.softmax16_tables), against TFLM's own
LUTPopulate compiled from TFLM's headers, and a sweep that reaches every segment of both tables; a broken int16
kernel and a wrong table entry are caught; the kit's int16x8 conversion of a small Keras model with
`runtime: aot`, golden vectors identical on the host and (with the Arm tools) on the emulated Cortex-M4.
The slow tier adds fuzz seeds and the Cortex-M7."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from converter.aot import generate
from converter.aot import emit
from converter.aot.quant import softmax16_tables
from converter.aot.validate import validate_on_host
from converter.errors import KitError
from tests.aot_int16_models import (ADDERS16, chain16, random_inputs16, random_model16, softmax_sweep,
                                    softmax_sweep_model)
from tests.aot_models import ModelBuilder

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                reason="needs a host C compiler (gcc) to build the AOT code")
KINDS = list(ADDERS16)
REPO = Path(__file__).resolve().parent.parent


def cmsis_root() -> Path | None:
    root = os.environ.get("CMSIS_NN_ROOT") or str(REPO.parent / "shared/sdk/cmsis-nn")
    return Path(root) if (Path(root) / "Include" / "arm_nnfunctions.h").exists() else None


def _check(seed: int, cmsis: Path | None, count: int = 27) -> None:
    model = random_model16(KINDS, count, seed)
    result = validate_on_host(model, generate(model), random_inputs16(model, 6, seed), cmsis_root=cmsis)
    assert result.passed, f"seed {seed}: {result.line()}"


def test_int16_operators_bit_identical_to_tflm_portable():
    _check(0, None)


def test_int16_operators_bit_identical_to_tflm_cmsis_nn():
    root = cmsis_root()
    if root is None:
        pytest.skip("needs CMSIS-NN sources (set CMSIS_NN_ROOT to a clone of ARM-software/CMSIS-NN)")
    _check(1, root)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(300, 320))
def test_int16_fuzz_many_seeds(seed):
    _check(seed, cmsis_root() if seed % 2 else None, 32)


def test_softmax_tables_equal_tflms_own_computation(tmp_path):
    """The tables TFLM's Prepare builds (InitializeLutForInt16: LUTPopulate<int16_t> with std::exp and
    1/(1+x) in float), compiled from TFLM's header with the host C++ compiler, entry for entry."""
    tflm = Path(os.environ.get("TFLM_ROOT") or REPO.parent / "shared/tflm")
    header = tflm / "tensorflow/lite/kernels/internal/common.h"
    if not header.is_file() or shutil.which("g++") is None:
        pytest.skip("needs TFLM's headers (TFLM_ROOT) and g++")
    downloads = tflm / "tensorflow/lite/micro/tools/make/downloads"
    (tmp_path / "probe.cc").write_text(PROBE)
    subprocess.run(["g++", "-std=c++17", "-O2", f"-I{tflm}", f"-I{downloads / 'flatbuffers/include'}",
                    f"-I{downloads / 'gemmlowp'}", f"-I{downloads / 'ruy'}", str(tmp_path / "probe.cc"), "-o",
                    str(tmp_path / "probe")], check=True, capture_output=True, timeout=300)
    lines = subprocess.run([str(tmp_path / "probe")], check=True, capture_output=True, text=True).stdout.splitlines()
    theirs = [[int(v) for v in line.split()] for line in lines]
    exp_table, reciprocal = softmax16_tables()
    assert exp_table == theirs[0] and reciprocal == theirs[1]
    assert len(exp_table) == 513 and exp_table[-1] == 32767 and reciprocal[0] == 32767 and reciprocal[-1] == 16384


PROBE = r"""
#include <cmath>
#include <cstdio>
#include <limits>
#include "tensorflow/lite/kernels/internal/common.h"
// softmax_common.cc's InitializeLutForInt16, the same calls
int main() {
  int16_t exp_lut[513], one_lut[513];
  const int32_t range = std::numeric_limits<int16_t>::max() - std::numeric_limits<int16_t>::min();
  tflite::LUTPopulate<int16_t>(10.0f / range, std::numeric_limits<int16_t>::max(), 2.0f / range, 0,
                               [](float value) { return std::exp(value); }, exp_lut);
  tflite::LUTPopulate<int16_t>(1.0f / range, std::numeric_limits<int16_t>::min(), 2.0f / range, 0,
                               [](float value) { return 1.0f / (1.0f + value); }, one_lut);
  for (int i = 0; i < 513; ++i) printf("%d ", exp_lut[i]);
  printf("\n");
  for (int i = 0; i < 513; ++i) printf("%d ", one_lut[i]);
  printf("\n");
}
"""


@pytest.mark.parametrize("backend", ["portable", "cmsis-nn"])
def test_softmax_sweep_reaches_every_table_segment_bit_identical(backend):
    root = cmsis_root() if backend == "cmsis-nn" else None
    if backend == "cmsis-nn" and root is None:
        pytest.skip("needs CMSIS-NN sources (CMSIS_NN_ROOT)")
    model = softmax_sweep_model()
    result = validate_on_host(model, generate(model), [softmax_sweep()], cmsis_root=root)
    assert result.passed and result.vectors == 1552, result.line()


def test_a_wrong_table_entry_is_caught(monkeypatch):
    """One exp table entry off by one: the sweep finds it (the table is data the device trusts)."""
    from converter.aot import quant

    right = quant.softmax16_tables

    def wrong():
        exp_table, reciprocal = right()
        return [v + (i == 300) for i, v in enumerate(exp_table)], reciprocal

    monkeypatch.setattr(quant, "softmax16_tables", wrong)
    model = softmax_sweep_model()
    result = validate_on_host(model, generate(model), [softmax_sweep()])
    assert not result.passed and "operator 0 SOFTMAX (aot_softmax_s16)" in result.divergence


def test_a_broken_int16_kernel_is_caught_and_named(monkeypatch):
    """The 64-bit requantization without its rounding term (a plausible slip): the int16 convolution's
    output differs and the trace names it."""
    right = emit.kernel_sources

    def broken() -> dict[str, str]:
        files = dict(right())
        good = "x = x * (int64_t)reduced + ((int64_t)1 << (total_shift - 1));"
        assert good in files["aot_fixedpoint.h"]
        files["aot_fixedpoint.h"] = files["aot_fixedpoint.h"].replace(good, "x = x * (int64_t)reduced;")
        return files

    monkeypatch.setattr(emit, "kernel_sources", broken)
    model = random_model16(["CONV_2D", "MAX_POOL_2D"], 2, 5)
    result = validate_on_host(model, generate(model), random_inputs16(model, 4, 5))
    assert not result.passed and "operator 0 CONV_2D (aot_conv_s16)" in result.divergence


@pytest.mark.parametrize("seed", [1, 7])
def test_int16_chains_planned_in_place_are_bit_identical(seed):
    """int16 chains (tests/aot_int16_models.chain16) whose plan puts convolution, depthwise, pool and ADD outputs
    over their dying inputs at twice the int8 distances (2-byte elements), on both back-ends."""
    from converter.aot import NO_INPLACE

    model = chain16(seed)
    program, without = generate(model), generate(model, plan=NO_INPLACE)
    assert len(program.plans["cmsis-dsp"].overlaps) >= 5
    assert program.buffer_bytes("cortex-m4") < without.buffer_bytes("cortex-m4")
    for root in (None, cmsis_root()):
        result = validate_on_host(model, program, random_inputs16(model, 4, seed), cmsis_root=root)
        assert result.passed, f"seed {seed} ({'CMSIS-NN' if root else 'portable'}): {result.line()}"


def test_int16_overlap_at_the_int8_distance_fails(monkeypatch):
    """The element width is what keeps int16 overlaps right: planned at the int8 (byte) distance, a convolution, a
    depthwise convolution and both pools of these chains read bytes they already overwrote."""
    from converter.aot import inplace

    real = inplace.window_delta
    monkeypatch.setattr(inplace, "window_delta", lambda p, flight, element=1: real(p, flight))
    for seed, kind in ((1, "MAX_POOL_2D (aot_maxpool_s16)"), (3, "DEPTHWISE_CONV_2D (aot_dwconv_s16)"),
                       (7, "CONV_2D (aot_conv_s16)"), (8, "AVERAGE_POOL_2D (aot_avgpool_s16)")):
        model = chain16(seed)
        result = validate_on_host(model, generate(model), random_inputs16(model, 3, seed))
        assert not result.passed and kind in result.divergence, result.line()


def test_float_interface_into_int16_is_bit_identical():
    """int8_io: false on an int16x8 model: float32 -> QUANTIZE -> int16 -> DEQUANTIZE -> float32, on rounding
    ties ((n + 1/2) * scale), values far outside the int16 range (saturating) and random ones."""
    from tests.aot_compressed import typed_inputs
    from tests.aot_models import Random

    b, r = ModelBuilder(), Random(4)
    for _ in range(3):
        shape = (1, r.int(1, 5), r.int(1, 7))
        x, y = b.tensor(shape, "FLOAT32"), b.tensor(shape, "FLOAT32")
        middle = b.tensor(shape, "INT16", r.scale(r.rng.random() < 0.5) / 256, 0)
        b.op("QUANTIZE", (x,), (middle,))
        b.op("DEQUANTIZE", (middle,), (y,))
        b.io((x,), (y,))
    model = b.to_bytes()
    inputs = typed_inputs(model, 8, 4)
    for x in inputs:
        x[1] *= 1000.0             # far beyond +-32767 steps: saturates
    program = generate(model)
    assert [o.function for o in program.operators][:2] == ["aot_quantize_f32_s16", "aot_dequantize_s16"]
    result = validate_on_host(model, program, inputs)
    assert result.passed, result.line()


def _one_op_model(kind: str, bias_type: str = "INT64", groups: int = 1) -> bytes:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    b = ModelBuilder()
    x = b.tensor((1, 4, 4, 4), "INT16", 0.01, 0)
    y = b.tensor((1, 4, 4, 4), "INT16", 0.02, 0)
    if kind == "MUL":
        b.op("MUL", (x, x), (y,))
    else:
        w = b.tensor((4, 1, 1, 4 // groups), "INT8", [0.1] * 4, 0, bytes(16 // groups), axis=0)
        bias = b.tensor((4,), bias_type, [0.001] * 4, 0, bytes(4 * (8 if bias_type == "INT64" else 4)))
        o = s.Conv2DOptionsT()
        o.strideH = o.strideW = o.dilationHFactor = o.dilationWFactor = 1
        b.op("CONV_2D", (x, w, bias), (y,), o, "Conv2DOptions")
    b.io((x,), (y,))
    return b.to_bytes()


@pytest.mark.parametrize("kind, bias, groups, words", [
    ("MUL", "INT64", 1, ("operator 0 MUL (int16/int16)", "int16 activations: ADD, AVERAGE_POOL_2D")),
    ("CONV_2D", "INT32", 1, ("operator 0 CONV_2D (int16/int8/int32)", "int64")),
    ("CONV_2D", "INT64", 2, ("grouped int16 convolution",))])
def test_int16_outside_the_set_is_refused_on_one_line(kind, bias, groups, words):
    with pytest.raises(KitError) as error:
        generate(_one_op_model(kind, bias, groups))
    message = str(error.value)
    assert "\n" not in message and "runtime: tflm" in message and all(w in message for w in words), message


@pytest.fixture(scope="module")
def converted16(tmp_path_factory):
    """tests' small Keras classifier (conv, dense, dense) converted by the kit as int16x8 with runtime: aot."""
    from converter import TrainSettings
    from converter.flows.convert import convert
    from converter.recipe import parse_recipe
    from converter.stages import run_stage
    from converter import tf_env
    from tests.conftest import tiny_classifier, tiny_dataset

    tf_env.reseed(0)
    data = tiny_dataset()
    folder = tmp_path_factory.mktemp("int16aot")
    run_stage("train", tiny_classifier(), TrainSettings(epochs=3, learning_rate=0.01), data).model.save(
        folder / "model.h5")
    np.savez(folder / "data.npz", x_train=data.x_train, y_train=data.y_train, x_test=data.x_eval, y_test=data.y_eval)
    recipe = parse_recipe({"name": "tiny16", "model": {"path": "model.h5"}, "data": {"npz": "data.npz"},
                           "quantize": {"mode": "int16x8"}, "golden": {"vectors": 6}, "runtime": "aot"},
                          base_dir=folder)
    convert(recipe, folder / "out", log=lambda _: None)
    return folder / "out"


def test_int16x8_conversion_with_runtime_aot_is_bit_identical_on_the_host(converted16):
    manifest = json.loads((converted16 / "manifest.json").read_text())
    aot = manifest["aot"]
    assert aot["bit_exact"], aot["validated"]
    assert all(v["golden"] == v["golden_identical"] == 6 for v in aot["validated"])
    assert [o["kernel"] for o in aot["operators"]] == ["aot_conv_s16", None, "aot_fc_s16_per_channel",
                                                        "aot_fc_s16_per_channel"]
    assert [t["dtype"] for t in aot["inputs"] + aot["outputs"]] == ["int16", "int16"]


@pytest.mark.parametrize("runtime", ["aot", pytest.param("tflm", marks=pytest.mark.slow)])
def test_the_device_check_stops_only_the_runtime_the_device_refuses(converted16, runtime, tmp_path):
    """TFLM's Cortex-M library refuses this model at Prepare: with runtime: aot the conversion goes on (the
    generated C ships, checked against the host's TFLM) and says why the check was skipped; with tflm it fails
    in one line naming the refusal and runtime: aot, not as a golden mismatch."""
    from converter.errors import KitError
    from converter.flows.convert import convert
    from converter.recipe import parse_recipe
    from tests.firmware_tools import need_tools

    need_tools("make", "arm-none-eabi-gcc", "qemu-system-arm")
    if not os.environ.get("TFLM_ROOT"):
        pytest.skip("TFLM_ROOT is not set: the device check builds TFLM's firmware library (CI has ../shared/tflm)")
    folder, said = converted16.parent, []
    recipe = parse_recipe({"name": "tiny16", "model": {"path": "model.h5"}, "data": {"npz": "data.npz"},
                           "quantize": {"mode": "int16x8"}, "golden": {"vectors": 6}, "runtime": runtime,
                           "device_check": "cortex-m4"}, base_dir=folder)
    if runtime == "tflm":
        with pytest.raises(KitError, match=r"TFLM's cortex-m4 build cannot run the model.*FULLY_CONNECTED") as err:
            convert(recipe, tmp_path / "out", log=said.append)
        assert "runtime: aot" in err.value.fix and not (tmp_path / "out").exists()
        return
    convert(recipe, tmp_path / "out", log=said.append)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["aot"]["bit_exact"] and manifest["device_check"] == {"ran": False}
    assert manifest["arena"]["target"]["kind"] != "measured"   # int16 is not derived yet: the host figure, labelled
    assert any("device check skipped: TFLM's cortex-m4 build cannot run the model" in line for line in said), said


@pytest.mark.parametrize("board", ["cortex-m-qemu", pytest.param("cortex-m7-qemu", marks=pytest.mark.slow)])
def test_int16x8_aot_firmware_passes_the_golden_vectors_on_cortex_m(converted16, board, tmp_path, monkeypatch):
    """TFLM's own Cortex-M build refuses this model (its cmsis_nn FULLY_CONNECTED takes int16 per tensor only);
    the AOT firmware runs it with TFLM's reference arithmetic there and gives the golden (host TFLM) bytes."""
    from converter.flows.firmware import render_firmware
    from converter.flows.flash import flash
    from tests.firmware_tools import need_tools, sdk

    need_tools("make", "arm-none-eabi-gcc", "qemu-system-arm")
    monkeypatch.setenv("CMSIS_NN_ROOT", os.environ.get("CMSIS_NN_ROOT") or str(sdk("cmsis-nn")))
    render_firmware(board, converted16, tmp_path / "fw", runtime="aot")
    ran = flash(tmp_path / "fw")
    assert ran["pass"] and ran["passed"] == ran["total"] == 6, ran["failures"] + ran["golden_differences"]


@pytest.mark.slow
@pytest.mark.parametrize("board", ["cortex-m-qemu", "cortex-m7-qemu"])
def test_tflm_on_cortex_m_builds_the_same_softmax_tables(board, tmp_path, monkeypatch):
    """TFLM's own firmware builds the tables on the device in Prepare (newlib's expf; soft float on the
    Cortex-M4, the FPU on the Cortex-M7): on the sweep, which reads all 513 entries of both tables, it gives the
    golden (host) bytes, as the AOT firmware with the host-computed tables does. About 40 s per core."""
    from converter.flows.convert import convert
    from converter.flows.firmware import render_firmware
    from converter.flows.flash import flash
    from converter.recipe import parse_recipe
    from converter.aot.graph import read_graph
    from tests.firmware_tools import need_tools, sdk

    need_tools("make", "arm-none-eabi-gcc", "qemu-system-arm")
    monkeypatch.setenv("CMSIS_NN_ROOT", os.environ.get("CMSIS_NN_ROOT") or str(sdk("cmsis-nn")))
    model = softmax_sweep_model()
    (tmp_path / "m.tflite").write_bytes(model)
    graph = read_graph(model)
    scale = np.float32(graph.tensor(graph.inputs[0]).scale)
    rows = softmax_sweep().reshape(-1, 1, 64)
    x = (rows.astype(np.float32) * scale).astype(np.float32)     # quantizes back to exactly the sweep
    labels = np.zeros(len(x), np.int64)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=labels, x_test=x, y_test=labels)
    # LiteRT's reference SOFTMAX parts from TFLM by 1 LSB on one of these rows (not the runtime under test)
    recipe = parse_recipe({"name": "sweep", "model": {"path": "m.tflite"}, "data": {"npz": "d.npz"},
                           "golden": {"vectors": len(x)}, "validation": {"accept_litert_differences": ["SOFTMAX"]}},
                          base_dir=tmp_path)
    convert(recipe, tmp_path / "out", log=lambda _: None)
    with np.load(tmp_path / "out" / "golden.npz") as golden:
        assert (golden["input_0"].reshape(-1, 64) == rows.reshape(-1, 64)).all()
    for runtime in ("tflm", "aot"):
        render_firmware(board, tmp_path / "out", tmp_path / runtime, runtime=runtime)
        ran = flash(tmp_path / runtime)
        assert ran["pass"] and ran["passed"] == ran["total"] == len(x), (runtime, ran["failures"][:3])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ic", "kws"])
def test_mlperf_models_as_int16x8_run_on_the_cortex_m4(name, shared_data, tmp_path, monkeypatch):
    """The MLPerf Tiny IC (ADD, AVERAGE_POOL_2D) and KWS (DEPTHWISE_CONV_2D) recipes converted as int16x8 with
    runtime: aot: bit-identical on the host and 10/10 in the Cortex-M4 firmware (TFLM's own Cortex-M build fails to
    prepare their per-channel int16 FULLY_CONNECTED). About 1 min each."""
    import yaml

    from converter.flows.firmware import render_firmware
    from converter.flows.flash import flash
    from tests.conftest import run_kit
    from tests.firmware_tools import need_tools, sdk

    need_tools("make", "arm-none-eabi-gcc", "qemu-system-arm")
    monkeypatch.setenv("CMSIS_NN_ROOT", os.environ.get("CMSIS_NN_ROOT") or str(sdk("cmsis-nn")))
    recipe = yaml.safe_load((REPO / f"models/recipes/mlperf_{name}.yaml").read_text())
    recipe["quantize"] = {**recipe.get("quantize", {}), "mode": "int16x8", "calibration_samples": 100}
    recipe.update(runtime="aot", name=f"mlperf_{name}16")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = run_kit("convert", tmp_path / "recipe.yaml", "--out", tmp_path / "out", "--device-check", "off")
    assert result.returncode == 0, result.stderr[-3000:]
    aot = json.loads((tmp_path / "out" / "manifest.json").read_text())["aot"]
    assert aot["bit_exact"] and {"aot_conv_s16", "aot_fc_s16_per_channel"} <= {o["kernel"] for o in aot["operators"]}
    render_firmware("cortex-m-qemu", tmp_path / "out", tmp_path / "fw", runtime="aot")
    ran = flash(tmp_path / "fw")
    assert ran["pass"] and ran["passed"] == ran["total"] == 10, ran["failures"]


@pytest.mark.slow
@pytest.mark.parametrize("board", ["cortex-m-qemu", "cortex-m7-qemu"])
def test_int16_fuzz_model_on_cortex_m(board, tmp_path, monkeypatch):
    """The host builds run CMSIS-NN's plain C paths; this runs its DSP paths of every int16 kernel (convolution,
    depthwise, per-tensor FULLY_CONNECTED, pools, ADD) on the emulated cores: a 27-operator fuzz model converted
    by the kit (golden inputs: random_inputs16's integers, given as floats), AOT firmware, every vector identical.
    About 30 s per core."""
    from converter.flows.convert import convert
    from converter.flows.firmware import render_firmware
    from converter.flows.flash import flash
    from converter.recipe import parse_recipe
    from converter.aot.graph import read_graph
    from tests.firmware_tools import need_tools, sdk

    need_tools("make", "arm-none-eabi-gcc", "qemu-system-arm")
    monkeypatch.setenv("CMSIS_NN_ROOT", os.environ.get("CMSIS_NN_ROOT") or str(sdk("cmsis-nn")))
    model = random_model16(KINDS, 27, 11)
    (tmp_path / "m.tflite").write_bytes(model)
    graph = read_graph(model)
    arrays = {}
    for i, (t, q) in enumerate(zip(graph.inputs, random_inputs16(model, 8, 11))):
        x = (q[:, 0].astype(np.float32) * np.float32(graph.tensor(t).scale)).astype(np.float32)
        arrays[f"x_train_{i}"] = arrays[f"x_test_{i}"] = x
    labels = np.zeros(8, np.int64)
    np.savez(tmp_path / "d.npz", y_train=labels, y_test=labels, **arrays)
    recipe = parse_recipe({"name": "fuzz16", "model": {"path": "m.tflite"}, "data": {"npz": "d.npz"},
                           "golden": {"vectors": 8}, "runtime": "aot"}, base_dir=tmp_path)
    convert(recipe, tmp_path / "out", log=lambda _: None)
    render_firmware(board, tmp_path / "out", tmp_path / "fw", runtime="aot")
    ran = flash(tmp_path / "fw")
    assert ran["pass"] and ran["passed"] == ran["total"] == 8, ran["failures"][:3]
