"""The AOT runtime's pure logic (no TensorFlow, no compiler): the recipe's runtime key, TFLM's Prepare
arithmetic in quant.py, the planner's aliasing and lifetimes, the core -> back-end mapping."""
import pytest

from converter.aot import quant
from converter.errors import KitError
from converter.recipe import parse_recipe

BASE = {"name": "m", "model": {"path": "m.tflite"}, "data": {"random": {"samples": 4}}}


def test_runtime_key_defaults_to_unset_and_takes_three_values():
    assert parse_recipe(BASE).runtime is None           # unset: both, AOT skipped with a note if it cannot
    for value in ("tflm", "aot", "both"):
        assert parse_recipe({**BASE, "runtime": value}).runtime == value
    with pytest.raises(KitError, match="runtime"):
        parse_recipe({**BASE, "runtime": "interpreter"})


def test_quantize_multiplier_rounds_half_away_and_renormalises():
    tie = (1 + 2.0 ** -16) * (1 + 2.0 ** -15)          # q * 2^31 ends in exactly .5
    assert quant.quantize_multiplier(tie) == ((1 << 30) + 3 * (1 << 14) + 1, 1)
    assert quant.quantize_multiplier(-tie)[0] == -((1 << 30) + 3 * (1 << 14) + 1)
    assert quant.quantize_multiplier(1 - 2.0 ** -40) == (1 << 30, 1)
    assert quant.quantize_multiplier(2.0 ** -33) == (0, 0)
    m, s = quant.quantize_multiplier(0.3)
    assert abs(m * 2.0 ** (s - 31) - 0.3) < 1e-9


def test_activation_clamps_divide_in_float32():
    assert quant.activation_range(0, 0.1, 5) == (-128, 127)
    assert quant.activation_range(1, 0.1, 5) == (5, 127)
    assert quant.activation_range(3, 0.1, -128) == (-128, -68)       # 6 / 0.1 = 60
    assert quant.activation_range(2, 0.01, 0) == (-100, 100)


def test_padding_and_output_sizes_follow_tflm():
    assert quant.out_size(True, 28, 3, 2) == 14 and quant.out_size(False, 28, 3, 2) == 13
    assert quant.padding(2, 1, 28, 3, 14) == 0          # total 1: the odd pixel goes to the far side
    assert quant.padding(1, 2, 10, 3, 10) == 2


def test_softmax_parameters():
    # beta * scale * 2^26 = 2^22: multiplier 0.5 in Q31, left shift 23; radius floor(31 * 2^26 / 2^23) = 248
    assert quant.softmax_params(1.0, 1 / 16) == (1 << 30, 23, -248)
    # capped at 2^31 - 1 before QuantizeMultiplier (double rounding build)
    assert quant.softmax_params(1.0, 1e6)[:2] == quant.quantize_multiplier((1 << 31) - 1.0)


def test_fc_per_tensor_product_follows_the_chosen_tflm():
    triples = [(a, b, c) for a in (0.0123, 0.003, 0.0071) for b in (0.0456, 0.07, 0.0093) for c in (0.789, 0.02, 0.31)]
    differing = [t for t in triples
                 if quant.fc_per_tensor_multiplier(*t) != quant.fc_per_tensor_multiplier(*t, product="float32")]
    assert differing, "the float32 and double products should differ for some scale triples"
    for a, b, c in triples:   # the default (the golden interpreter's) is CONV_2D's double formula
        multipliers, shifts = quant.conv_multipliers(a, [b], c, 1)
        assert quant.fc_per_tensor_multiplier(a, b, c) == (multipliers[0], shifts[0])
    with pytest.raises(ValueError):
        quant.fc_per_tensor_multiplier(0.1, 0.1, 0.1, product="half")


def test_plan_aliases_reshape_and_never_overlaps_live_tensors():
    from converter.aot import NO_INPLACE, generate
    from converter.aot.graph import read_graph
    from converter.aot.lower import lower
    from converter.aot.plan import storage_roots
    from converter.aot.scratch import scratch_sizes
    from tests.aot_models import chain_model

    model = chain_model(5)
    program = generate(model, plan=NO_INPLACE)   # in-place overlaps: tests/unit/test_aot_inplace.py
    graph = read_graph(model)
    steps = [scratch_sizes(s) for s in lower(graph)]
    reshape = next(s for s in steps if s.kind == "RESHAPE")
    assert storage_roots(graph, steps)[reshape.writes] == reshape.reads[0]
    for variant, plan in program.plans.items():
        assert plan.locations[reshape.writes] == plan.locations[reshape.reads[0]]
        assert not plan.overlaps
        entries = plan.entries
        for i, a in enumerate(entries):
            for b in entries[i + 1:]:
                live_together = not (a.first > b.last or b.first > a.last)
                disjoint = a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
                assert not live_together or disjoint, (variant, a, b)
    assert program.buffer_bytes("cortex-m4") == program.plans["cmsis-dsp"].buffer_bytes
    assert program.buffer_bytes("cortex-m0plus") == program.plans["cmsis-c"].buffer_bytes
    with pytest.raises(KitError, match="unknown core"):
        program.buffer_bytes("z80")
