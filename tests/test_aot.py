"""The AOT runtime (converter/aot) against TFLM: per-operator fuzz on tiny flatbuffer models (random
shapes, channel counts not divisible by 4, zero points at the edges, power-of-two scales for rounding
ties, extreme multipliers, every fused activation, int4 filters), built with the host C compiler on the
portable kernels and, when CMSIS_NN_ROOT is set, on CMSIS-NN's C path; every output byte must match.

The slow tier runs many more seeds (`-m slow`)."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from converter.aot import generate
from converter.aot.validate import validate_on_host
from tests.aot_models import ADDERS, break_maxpool_kernel, random_inputs, random_model

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                reason="needs a host C compiler (gcc) to build the AOT code")
KINDS = list(ADDERS)


def cmsis_root() -> Path | None:
    root = os.environ.get("CMSIS_NN_ROOT") or str(Path(__file__).resolve().parents[2] / "shared/sdk/cmsis-nn")
    return Path(root) if (Path(root) / "Include" / "arm_nnfunctions.h").exists() else None


def _check(seed: int, kinds: list[str], count: int, vectors: int, cmsis: Path | None) -> None:
    model = random_model(kinds, count, seed)
    result = validate_on_host(model, generate(model), random_inputs(model, vectors, seed), cmsis_root=cmsis)
    assert result.passed, f"seed {seed}: {result.line()}"


@pytest.mark.parametrize("seed", range(2))
def test_every_operator_bit_identical_to_tflm_portable(seed):
    _check(seed, KINDS, 32, 6, None)


def test_every_operator_bit_identical_to_tflm_cmsis_nn():
    root = cmsis_root()
    if root is None:
        pytest.skip("needs CMSIS-NN sources (set CMSIS_NN_ROOT to a clone of ARM-software/CMSIS-NN)")
    _check(100, KINDS, 32, 6, root)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(200, 240))
def test_fuzz_many_seeds(seed):
    _check(seed, KINDS, 40, 8, cmsis_root() if seed % 2 else None)


def test_a_wrong_kernel_is_caught_and_named(monkeypatch):
    """The check can fail: with the max-pool kernel taking the minimum, the validation fails and the
    trace build names that operator (not the convolution before it)."""
    break_maxpool_kernel(monkeypatch)
    model = random_model(["CONV_2D", "MAX_POOL_2D"], 2, 7)
    result = validate_on_host(model, generate(model), random_inputs(model, 3, 7))
    assert not result.passed
    assert "operator 1 MAX_POOL_2D (aot_maxpool_s8)" in result.divergence


def test_outside_the_set_is_refused_with_the_way_out():
    from converter.errors import KitError
    from tests.aot_models import ModelBuilder

    b = ModelBuilder()
    x, y = b.activation((1, 4), 0.1, 0), b.activation((1, 4), 0.1, 0)
    b.op("EXP", (x,), (y,))
    b.io((x,), (y,))
    with pytest.raises(KitError) as error:
        generate(b.to_bytes())
    assert "operator 0 EXP (int8)" in str(error.value) and "runtime: tflm" in str(error.value)


def test_reshape_is_an_alias_and_the_buffer_is_planned():
    model = random_model(["CONV_2D", "RESHAPE"], 2, 3)
    program = generate(model)
    source = program.files["aot_model.c"]
    assert "RESHAPE, an alias (no code)" in source or "aot_copy" in source
    assert program.buffer_bytes("host") == program.plans["portable"].buffer_bytes
    assert program.buffer_bytes("cortex-m4") >= program.buffer_bytes("host")
    assert "offset" in program.memory_plan()
    assert np.int32(program.buffer_bytes("cortex-m0plus")) >= 0


MLPERF = ("image_classification/pretrainedResnet_quant.tflite", "keyword_spotting/kws_ref_model.tflite",
          "visual_wake_words/vww_96_int8.tflite", "anomaly_detection/ad01_int8.tflite",
          "streaming_wakeword/str_ww_ref_model.tflite")


@pytest.mark.slow
@pytest.mark.parametrize("path", MLPERF)
def test_mlperf_models_bit_identical_and_within_tflms_arena(shared_data, path):
    """The five MLPerf Tiny int8 models: saturating and random inputs identical to TFLM on both back-ends,
    and the static buffer plus the caller's input and output arrays never above TFLM's measured arena."""
    from converter.tflite.model import read_model
    from converter.tflm.arena import measure_arena

    model = (shared_data / "mlperf_tiny" / path).read_bytes()
    program = generate(model)
    inputs = random_inputs(model, 4, 9)
    for root in (None, cmsis_root()):
        result = validate_on_host(model, program, inputs, cmsis_root=root)
        assert result.passed, result.line()
    io = sum(int(np.prod(t.shape)) for t in (*program.inputs, *program.outputs))
    arena = measure_arena(model, [np.zeros(t.shape, np.int8) for t in read_model(model).inputs])
    assert max(program.buffer_bytes(core) for core in ("host", "cortex-m4", "cortex-m55")) + io <= arena
