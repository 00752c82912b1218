"""In-place execution in the AOT buffer plan (converter/aot/inplace.py), against TFLM: random chains of
depthwise and ordinary convolutions (3x3, strided, 1x1 expanding and shrinking, int4 filters), residual ADDs
and a RESHAPE, whose outputs the plan places over their dying inputs, built with the host compiler on the
portable kernels and on CMSIS-NN's C path: every output byte must match TFLM's. The same chains planned too
close (one output pixel less than the rule allows) must fail, so the check can fail. The Cortex-M4/M7 builds
run in tests/test_aot_firmware.py (the MLPerf models' plans overlap there)."""
import shutil

import pytest

from converter.aot import NO_INPLACE, PlanOptions, generate
from converter.aot import inplace as inplace_rules
from converter.aot.validate import validate_on_host
from tests.aot_chain_models import chain
from tests.aot_models import random_inputs
from tests.test_aot import cmsis_root

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                reason="needs a host C compiler (gcc) to build the AOT code")

# every in-place change, 1x1 slicing included (off by default: it costs instructions); the default plan runs in
# tests/test_aot_firmware.py
ALL = PlanOptions(slice_pointwise=True)


def _overlapping(program) -> int:
    return sum(len(p.overlaps) for p in program.plans.values())


@pytest.mark.parametrize("seed", range(3))
def test_chains_planned_in_place_are_bit_identical_to_tflm(seed):
    model = chain(seed)
    program = generate(model, plan=ALL)
    without = generate(model, plan=NO_INPLACE)
    assert _overlapping(program) > 0, program.memory_plan()
    for variant, plan in program.plans.items():
        assert plan.buffer_bytes <= without.plans[variant].buffer_bytes == plan.baseline_bytes
    inputs = random_inputs(model, 4, seed)
    for root in (None, cmsis_root()):
        result = validate_on_host(model, program, inputs, cmsis_root=root)
        assert result.passed, f"seed {seed} ({'CMSIS-NN' if root else 'portable'}): {result.line()}"


def test_naive_in_place_convolution_fails(monkeypatch):
    """The distance is what keeps the bytes right: with every convolution's output placed exactly over its
    dying input (the naive in-place depthwise convolution; the plan's own check off), outputs differ from TFLM's."""
    from converter.aot import plan as planner

    monkeypatch.setattr(inplace_rules, "window_delta", lambda p, flight, element=1: 0)
    monkeypatch.setattr(planner, "check_plan", lambda *args: [])
    for seed, kind in ((0, "CONV_2D"), (5, "DEPTHWISE_CONV_2D")):   # chains whose naive plan overlaps such a layer
        model = chain(seed)
        result = validate_on_host(model, generate(model, plan=ALL), random_inputs(model, 3, seed))
        assert not result.passed and kind in result.divergence, result.line()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 40))
def test_many_chains(seed):
    model = chain(seed, layers=10)
    program = generate(model, plan=ALL)
    for root in (None, cmsis_root()):
        result = validate_on_host(model, program, random_inputs(model, 4, seed), cmsis_root=root)
        assert result.passed, f"seed {seed}: {result.line()}"
