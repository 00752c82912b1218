"""The device check's arena probe on a model where a candidate arena makes TFLM halt.

With an arena just too small for a reduce kernel's Prepare (MEAN, SUM, REDUCE_MAX), TFLM 90b983c2 uses the null
temporary tensor it got, and DeallocateTempTfLiteTensor's check calls TFLITE_ABORT: "HALTED", then `while (1)`.
The probe's bisection lands there on random_model(["MEAN"], 2, 0) (its first candidate, arena_used_bytes()
rounded up to 16, is one), and the conversion used to wait for the 300 s run timeout. The probe build now jumps
back out of such a candidate and counts it as too small (firmware_templates/cortex-m-qemu/main.cc.j2,
docs/firmware.md). Two QEMU builds and runs, about 20 s. Needs TFLM_ROOT, arm-none-eabi-gcc and qemu-system-arm.
"""
from converter.tflm.derived_arena import NotDerivable, derive

from .aot_models import random_model
from .firmware_tools import need_tools, tflm_root
from .test_derived_arena import LIBRARIES


def _device_check(core: str, model_bytes: bytes, arena: int, probe: bool):
    """The golden self-test of the model on `core` under QEMU with `arena` bytes, the probe build or the plain
    one (what `firmware --board` renders); KitError if it fails."""
    from converter.emit.sources import render_all
    from converter.flows.model_inputs import model_inputs
    from converter.runtimes.device_check import model_facts, probe_settings, run_device_check
    from converter.tflite.info import read_model
    from converter.tflm.isolation import run_isolated

    tflm_root(LIBRARIES[core])
    need_tools("make", "arm-none-eabi-gcc", "qemu-system-arm")
    info = read_model(model_bytes)
    inputs = model_inputs(info, None, 1, 0).quantized
    outputs = run_isolated(model_bytes, inputs, what="the golden outputs", consistent=False)
    sources = render_all("m", "model.tflite", model_bytes, "-", info, arena, arena, 0.0, None, inputs, outputs,
                         "x86_64")
    if probe:
        sources["model_settings.h"] = probe_settings(sources["model_settings.h"], arena)
    return run_device_check(core, model_bytes, sources, inputs, outputs, model_facts("m", model_bytes, info, 1, arena))


def test_a_candidate_arena_that_halts_tflm_counts_as_too_small():
    model = random_model(["MEAN"], 2, 0)
    check = _device_check("cortex-m4", model, 65536, probe=True)  # before the fix: hung until the run timeout
    assert check.arena_used <= check.arena.bytes < 65536
    try:
        assert check.arena.bytes == derive(model, "cortex-m4").needed
    except NotDerivable:  # a derivation without MEAN: the probe's figure must at least run the plain self-test
        _device_check("cortex-m4", model, check.arena.bytes, probe=False)
