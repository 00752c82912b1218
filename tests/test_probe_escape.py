"""The device check's arena probe on a model where a candidate arena makes TFLM halt.

With an arena just too small for a reduce kernel's Prepare (MEAN, SUM, REDUCE_MAX), TFLM 90b983c2 uses the null
temporary tensor it got, and DeallocateTempTfLiteTensor's check calls TFLITE_ABORT: "HALTED", then `while (1)`.
The probe's bisection lands there on random_model(["MEAN"], 2, 0) (its first candidate, arena_used_bytes()
rounded up to 16, is one), and the conversion used to wait for the 300 s run timeout. The probe build now jumps
back out of such a candidate and counts it as too small (firmware_templates/cortex-m-qemu/main.cc.j2,
docs/firmware.md). One QEMU build and run, about 11 s. Needs TFLM_ROOT, arm-none-eabi-gcc and qemu-system-arm.
"""
from converter.tflm.derived_arena import derive

from .aot_models import random_model
from .test_derived_arena import measure


def test_a_candidate_arena_that_halts_tflm_counts_as_too_small():
    model = random_model(["MEAN"], 2, 0)
    derived = derive(model, "cortex-m4")
    assert measure("cortex-m4", model) == (derived.needed, derived.used)  # before the fix: hung until the timeout
