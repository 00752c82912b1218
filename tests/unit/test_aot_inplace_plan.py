"""The AOT planner's in-place rules without a compiler: the distance `window_delta` gives against the exact
access order of the portable kernels (every read and write replayed), and every plan of random chains checked
by `check_plan` (tensors live together share bytes only as an allowed overlap), never above the plan without
in-place execution, with no convolution overlap on MVE (its kernels loop over channel blocks outermost)."""
from dataclasses import replace

import numpy as np
import pytest

from converter.aot import NO_INPLACE, PlanOptions, generate
from converter.aot.graph import read_graph
from converter.aot.inplace import ALIGNMENT, window_delta
from converter.aot.lower import lower
from converter.aot.plan import Location, check_plan
from converter.aot.scratch import scratch_sizes
from tests.aot_chain_models import chain

# every in-place change, 1x1 slicing included (off by default: it costs instructions); the default plan runs in
# tests/test_aot_firmware.py
ALL = PlanOptions(slice_pointwise=True)


def _exact_need(p: dict, depthwise: bool) -> int:
    """The smallest distance (output start before input start) at which the portable loop never writes a
    byte it reads later: max over (write, later read) of write offset - read offset, plus one."""
    mult = p["out_c"] // p["in_c"] if depthwise else 1
    lowest_later, need = None, -10**9
    events = []
    for oy in range(p["out_h"]):
        for ox in range(p["out_w"]):
            for oc in range(p["out_c"]):
                reads = [((iy * p["in_w"] + ix) * p["in_c"] + (oc // mult if depthwise else 0))
                         for ky in range(p["k_h"]) for kx in range(p["k_w"])
                         for iy in [oy * p["stride_h"] - p["pad_h"] + ky] for ix in [ox * p["stride_w"] - p["pad_w"] + kx]
                         if 0 <= iy < p["in_h"] and 0 <= ix < p["in_w"]]
                events.append((min(reads) if reads else None, (oy * p["out_w"] + ox) * p["out_c"] + oc))
    for first_read, write in reversed(events):
        if lowest_later is not None:
            need = max(need, write - lowest_later + 1)
        if first_read is not None:
            lowest_later = first_read if lowest_later is None else min(lowest_later, first_read)
    return need


@pytest.mark.parametrize("seed", range(40))
def test_window_delta_covers_the_portable_access_order(seed):
    rng = np.random.default_rng(seed)
    depthwise = bool(seed % 2)
    in_c = int(rng.integers(1, 6))
    k, stride = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    in_h, in_w = int(rng.integers(k, 9)), int(rng.integers(k, 9))
    same = bool(rng.integers(0, 2))
    out_h, out_w = ((in_h + stride - 1) // stride, (in_w + stride - 1) // stride) if same else \
        ((in_h - k) // stride + 1, (in_w - k) // stride + 1)
    pad_h = max(0, ((out_h - 1) * stride + k - in_h) // 2) if same else 0
    pad_w = max(0, ((out_w - 1) * stride + k - in_w) // 2) if same else 0
    out_c = in_c * int(rng.integers(1, 3)) if depthwise else int(rng.integers(1, 9))
    p = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k, k_w=k,
             stride_h=stride, stride_w=stride, pad_h=pad_h, pad_w=pad_w)
    need = _exact_need(p, depthwise)
    delta = window_delta(p, 1)
    assert delta >= need and delta % ALIGNMENT == 0
    assert delta - need < ALIGNMENT + p["out_c"] + p["in_c"] * (k + 1) * (in_w + 1), "far looser than the kernel needs"


def test_the_replay_sees_a_naive_in_place_depthwise_as_unsafe():
    """3x3 stride-1 depthwise over 6x6x4: the output cannot sit on its input (the replay can fail)."""
    p = dict(in_h=6, in_w=6, in_c=4, out_h=6, out_w=6, out_c=4, k_h=3, k_w=3, stride_h=1, stride_w=1, pad_h=1, pad_w=1)
    assert _exact_need(p, True) > 0 and window_delta(p, 1) >= _exact_need(p, True)


def _steps(model: bytes):
    graph = read_graph(model)
    return graph, [scratch_sizes(s) for s in lower(graph)]


@pytest.mark.parametrize("seed", range(8))
def test_chain_plans_overlap_only_where_allowed_and_never_grow(seed):
    model = chain(seed)
    graph, steps = _steps(model)
    program, without = generate(model, plan=ALL), generate(model, plan=NO_INPLACE)
    for variant, plan in program.plans.items():
        assert check_plan(graph, steps, plan) == [], (variant, plan.table())
        assert plan.buffer_bytes <= plan.baseline_bytes == without.plans[variant].buffer_bytes
    mve = program.plans["cmsis-mve"].overlaps
    assert all(steps[o.step].kind == "ADD" for o in mve)
    if any(steps[o.step].kind == "CONV_2D" and dict(steps[o.step].fields)["k_h"] == 1
           for o in program.plans["cmsis-dsp"].overlaps):
        assert "_row = {" in program.files["aot_model.c"]   # the 1x1 kernel called one output row at a time


def test_check_plan_names_an_overlap_closer_than_its_rule():
    model = chain(2)
    graph, steps = _steps(model)
    plan = generate(model, plan=ALL).plans["portable"]
    o = next(o for o in plan.overlaps if o.delta > 0)
    moved = dict(plan.locations)
    moved[o.target] = Location("buffer", plan.locations[o.target].index + ALIGNMENT)
    wrong = check_plan(graph, steps, replace(plan, locations=moved))
    assert any("too close" in w or "share bytes" in w for w in wrong), wrong


@pytest.mark.parametrize("seed", range(4))
def test_int16_distances_are_in_bytes_and_int16_chains_check(seed):
    """int16 layers: an element is 2 bytes, so the replayed need doubles and window_delta(p, f, 2) covers it;
    the plans of int16 chains pass check_plan (whose distances come from the same rule) and overlap convolutions
    off MVE (arm_convolve_s16 included for 1x1: no slicing, no `_row` parameters)."""
    from tests.aot_int16_models import chain16

    p = dict(in_h=6, in_w=7, in_c=3 + seed, out_h=6, out_w=7, out_c=2 + 3 * seed, k_h=3, k_w=3, stride_h=1,
             stride_w=1, pad_h=1, pad_w=1)
    need = 2 * _exact_need(p, False)
    assert window_delta(p, 1, 2) >= need > window_delta(p, 1) - ALIGNMENT
    model = chain16(seed)
    graph, steps = _steps(model)
    program = generate(model)
    for variant, plan in program.plans.items():
        assert check_plan(graph, steps, plan) == [], (variant, plan.table())
    assert any(steps[o.step].kind in ("CONV_2D", "DEPTHWISE_CONV_2D") for o in program.plans["cmsis-dsp"].overlaps)
    assert all(steps[o.step].kind == "ADD" for o in program.plans["cmsis-mve"].overlaps)
    assert "_row = {" not in program.files["aot_model.c"]
