"""The Cortex-M arena derived from the model (converter/tflm/derived_arena.py): its pieces, pinned.

The figures pinned here for tests/aot_models.chain_model are the ones QEMU measured on the Cortex-M4
(mps2-an386: `ARENA used 1732`, `ARENA min 1920`, the device check's build; tests/test_derived_arena.py
compares derivation and measurement for the demo, the MLPerf models and random models). The pieces follow
TFLM 90b983c2's allocator with 32-bit struct sizes (docs/firmware.md, "The arena without a toolchain").
"""
from types import SimpleNamespace

import pytest

from converter.tflm import derived_arena as da
from converter.tflm.target_arena import ArenaFigure
from tests.aot_models import ModelBuilder, chain_model, s


def test_persistent_allocations_align_down_from_the_end_of_the_arena():
    arena = da._Arena()
    arena.persistent("a", 5, 1)
    arena.persistent("b", 4)            # 5 -> 9, aligned down to 12 from the end
    arena.persistent("c", 60, 16)       # 12 -> 72, aligned to 80
    assert arena.tail == 80 and arena.pieces == {"a": 5, "b": 7, "c": 68}
    arena.reach(100)
    assert arena.peak == 180


def test_chain_model_on_the_cortex_m4_piece_by_piece():
    d = da.derive(chain_model(0), "cortex-m4")
    # 6 operators, 14 tensors; OpData of CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, FULLY_CONNECTED, SOFTMAX (16-aligned)
    assert d.pieces["allocator objects"] == 36 + 44 + 36 + 8
    assert d.pieces["TfLiteEvalTensors"] == 12 * 14 and d.pieces["node and registration array"] == 32 * 6
    assert d.pieces["builtin options"] == 28 + 28 + 40 + 36 + 5 + 3 + 4   # FC's 5 bytes pad SOFTMAX's to 4
    assert d.pieces["kernel OpData"] == 64 + 64 + 48 + 80 + 64 + 4        # + the padding to the first 16
    assert d.pieces["per-channel multipliers and shifts"] == 2 * 16 + 2 * 32   # 4 and 8 channels
    assert d.scratch == (2 * 28 * 2,)   # CONV_2D 3x3x3 im2col (27 columns, aligned to 28); the 3x3 DW asks for none
    assert sum(d.pieces.values()) == d.persistent
    # measured under QEMU: arena_used_bytes() 1,732, smallest arena 1,920 (the planning peak binds, not the plan)
    assert (d.used, d.needed, d.prepare_peak) == (1732, 1920, 1920)


def test_int4_filters_need_no_unpacking_scratch_on_cmsis_nn():
    """The host's reference kernels unpack int4 filters into the arena; CMSIS-NN's im2col is unaligned instead."""
    assert da.derive(chain_model(0, int4=True), "cortex-m4").scratch == (2 * 27 * 2,)


def _dw_model(k: int, in_c: int = 4) -> bytes:
    b = ModelBuilder()
    x = b.activation((1, 9, 9, in_c), 0.1, 0)
    w = b.tensor((1, k, k, in_c), "INT8", [0.1] * in_c, 0, bytes(k * k * in_c), axis=3)
    bias = b.tensor((in_c,), "INT32", [0.01] * in_c, 0, bytes(4 * in_c))
    y = b.activation((1, 9, 9, in_c), 0.1, 0)
    o = s.DepthwiseConv2DOptionsT()
    o.padding, o.strideH, o.strideW, o.depthMultiplier = s.Padding.SAME, 1, 1, 1
    o.dilationHFactor = o.dilationWFactor = 1
    b.op("DEPTHWISE_CONV_2D", (x, w, bias), (y,), o, "DepthwiseConv2DOptions")
    b.io((x,), (y,))
    return b.to_bytes()


def test_depthwise_scratch_follows_cmsis_nn_per_core():
    """arm_depthwise_conv_wrapper_s8_get_buffer_size: 3x3 with padding <= 1 has its own kernel (no buffer); other
    sizes take in_c * k * k int16 on DSP cores, nothing on Armv6-M (plain C)."""
    assert da.derive(_dw_model(3), "cortex-m4").scratch == ()
    assert da.derive(_dw_model(5), "cortex-m4").scratch == (4 * 25 * 2,)
    assert da.derive(_dw_model(5), "cortex-m0plus").scratch == ()


def test_padding_is_tflms():
    same = SimpleNamespace(strideH=2, strideW=1, dilationHFactor=1, dilationWFactor=2)
    # height: (5 - 1) * 2 + 3 - 10 = 1 -> 0; width: (10 - 1) * 1 + (3 - 1) * 2 + 1 - 10 = 4 -> 2
    assert da._padding(same, 10, 10, 3, 3, 5, 10) == (0, 2)


def test_a_model_the_derivation_does_not_model_keeps_no_figure():
    b = ModelBuilder()
    x = b.activation((1, 4), 0.1, 0)
    y = b.activation((1, 4), 0.1, 0)
    b.op("ABS", (x,), (y,))
    b.io((x,), (y,))
    with pytest.raises(da.NotDerivable, match="ABS"):
        da.derive(b.to_bytes())
    assert da.derived_figure(b.to_bytes()) is None


def test_mean_takes_reduce_ccs_op_data_three_scratch_buffers_and_six_temporaries():
    """MEAN (Keras's GlobalAveragePooling2D) has no CMSIS-NN kernel: reduce.cc's OpDataReduce (44 B), a
    TfLiteReducerParams (1 B), and PrepareMeanOrSumHelper's requests: an int32 per output element, an int per
    input dimension, an int per axis. QEMU measured this model at 2,336 / 1,264 B on the Cortex-M4."""
    from tests.aot_models import random_model

    model = random_model(["MEAN"], 4, 0)   # (1,4,3,2) over [1]; (1,1,2,5) over [1,3]; (1,1,1) over [2]; (1,1,3,4)
    d = da.derive(model, "cortex-m4")
    assert d.scratch == (4 * 6, 4 * 4, 4 * 1, 4 * 2, 4 * 4, 4 * 2, 4 * 1, 4 * 3, 4 * 1, 4 * 4, 4 * 4, 4 * 1)
    assert d.pieces["kernel OpData"] == 4 * 48 + 8 and d.pieces["builtin options"] == 4
    assert (d.needed, d.used) == (2336, 1264)


@pytest.mark.parametrize("count, seed, measured", [(22, 0, (6560, 5976)), (66, 1, (18960, 17288)),
                                                   (66, 2, (18752, 17112)), (66, 3, (18912, 17304))])
def test_the_reference_kernel_operators_as_qemu_measured_them(count, seed, measured):
    """Random models of MEAN, PAD, MUL, CONCATENATION, LOGISTIC, TANH, RELU, RELU6, HARD_SWISH, QUANTIZE,
    LEAKY_RELU, STRIDED_SLICE, TRANSPOSE, SUB, MAXIMUM, MINIMUM, RESIZE_NEAREST_NEIGHBOR, EXPAND_DIMS, SQUEEZE, SUM,
    REDUCE_MAX, PRELU:
    (smallest arena, arena_used_bytes()) as the device check's build measured them on mps2-an386, mps2-an500
    and mps2-an385 (tests/test_derived_arena.py re-measures them)."""
    from tests.test_derived_arena import MORE_KINDS, random_model

    model = random_model(MORE_KINDS, count, seed)
    for core in ("cortex-m4", "cortex-m7", "cortex-m0plus"):
        d = da.derive(model, core)
        assert (d.needed, d.used) == measured


def test_the_derived_figure_says_it_is_derived_and_for_which_core():
    figure = da.derived_figure(chain_model(0), "cortex-m0plus")
    assert figure == ArenaFigure(1920, "cortex-m0plus", "derived",
                                 "derived for Cortex-M0+ (32-bit) from the model's plan, not measured")
    assert figure.on_device


def test_firmware_for_a_core_neither_measured_nor_derived_derives_it(tmp_path, monkeypatch):
    """A conversion derived the Cortex-M4's arena; `firmware --board` for an Armv6-M board (pico) without QEMU
    derives the Cortex-M0+'s from model.tflite (plain-C CMSIS-NN: the 5x5 depthwise asks for no buffer)."""
    from converter.runtimes.facts import ModelFacts
    from converter.runtimes.tflm import board_arena

    monkeypatch.setenv("TFLM_KIT_DEVICE_CHECK", "off")
    model = _dw_model(5)
    (tmp_path / "model.tflite").write_bytes(model)
    m4 = da.derived_figure(model, "cortex-m4")
    facts = ModelFacts(name="m", model_bytes=len(model), arena_bytes=m4.bytes + 16, arena_measured_bytes=m4.bytes,
                       input_count=1, output_count=1, golden_count=1, golden_bytes=0, arena_source=m4.source,
                       arena={"target": m4.as_dict(), "host": None})
    same = board_arena({"core": "cortex-m4"}, facts, tmp_path)
    assert same.arena_measured_bytes == m4.bytes and same.arena_source == m4.source
    m0 = board_arena({"core": "cortex-m0plus"}, facts, tmp_path)
    expected = da.derive(model, "cortex-m0plus").needed
    assert m0.arena_measured_bytes == expected < m4.bytes   # no 200-byte im2col buffer without DSP
    assert m0.arena_source == "derived for Cortex-M0+ (32-bit) from the model's plan, not measured"


def test_model_settings_names_a_derived_arena_and_the_hosts_as_an_extra():
    from converter.emit.sources import arena_comment
    from converter.tflm.target_arena import derived, host

    text = arena_comment(15344, 0.1, "x86_64", derived(15344, "cortex-m4"), host(27856, "x86_64"))
    assert "15344 bytes derived for Cortex-M4 (32-bit) from the model's plan, not measured" in text
    assert "Not the host's figure" in text and "27856" in text and "NOT a device" not in text


def test_offline_planned_tensors_keep_their_offsets_and_the_rest_fit_around_them():
    """TFLM's greedy planner places a model's OfflineMemoryAllocation offsets first, then the online buffers
    (here a scratch buffer) largest first at the lowest offset that fits."""
    from converter.tflite.memory_placement import Buffer, greedy

    a, b, scratch = Buffer(0, 64, 0, 1), Buffer(1, 32, 1, 2), Buffer(2, 48, 2, 2)
    plan = greedy([a, b, scratch], fixed={0: 0, 1: 64})
    assert plan.offsets == {0: 0, 1: 64, 2: 0} and plan.arena == 96
    assert greedy([a, b, scratch], fixed={0: 32, 1: 96}).offsets == {0: 32, 1: 96, 2: 0}  # below a fixed one


def test_the_device_checks_probe_build_keeps_its_probe(tmp_path):
    """The tflm runtime rewrites model_settings.h with the board's arena; the device check's probe build must keep
    its generous arena and TFLM_KIT_ARENA_PROBE, else the check reports arena_used_bytes() instead of the smallest
    arena that invokes (the MLPerf AD model: 2,580 B used, 3,024 B needed)."""
    from converter.emit.sources import with_arena
    from converter.runtimes.device_check import probe_settings
    from converter.runtimes.facts import ModelFacts
    from converter.runtimes.tflm import _settings_for_board

    plain = with_arena("// Tensor arena: x\nconstexpr int kArenaMeasuredBytes = 1;\nconstexpr int kTensorArenaSize = 2;\n",
                       1, 2, "// Tensor arena: 1 bytes")
    probe = probe_settings(plain, 70000)
    (tmp_path / "model_settings.h").write_text(probe)
    facts = ModelFacts(name="m", model_bytes=1, arena_bytes=70000, arena_measured_bytes=70000, input_count=1,
                       output_count=1, golden_count=1, golden_bytes=0, arena_source="probe")
    _settings_for_board(facts, tmp_path)
    assert (tmp_path / "model_settings.h").read_text() == probe and "#define TFLM_KIT_ARENA_PROBE 1" in probe
