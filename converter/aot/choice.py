"""Which kernel each layer calls, decided at generation time.

CMSIS-NN's `*_wrapper_*` functions (the ones TFLM's cmsis_nn kernels call) test a layer's shape at run time
and then call one of several kernels (1x1 with unit stride, 1x1, 1xN, 3x3 depthwise, depthwise "opt",
generic); calling a wrapper links every kernel it may choose, which made most of the AOT code (issue 20).
The generator knows every shape, so it makes the same test here, with the wrappers' own conditions
(CMSIS-NN's arm_convolve_wrapper_s8/_s4.c, arm_depthwise_conv_wrapper_s8/_s4.c and arm_nnsupportfunctions.h
at the commit TFLM pins), and the generated code calls that kernel's entry point (aot_kernels.h, e.g.
`aot_conv_s8_1x1_fast`): only the kernels the model uses are linked, and each layer runs the very function
TFLM runs. The same split is made where the kit's back-end itself dispatched at run time (FULLY_CONNECTED
per tensor or per channel, ADD/MUL elementwise or broadcast), and one size/speed trade is made per layer
(a SOFTMAX of a few logits: SMALL_SOFTMAX_ELEMENTS). The portable back-end maps every entry
point onto its one generic kernel. On MVE, where the wrappers route some shapes differently, the CMSIS-NN
back-end's entry point calls the wrapper (aot_kernels_cmsis.c). tests/test_aot_cmsis.py runs the wrappers
themselves on random shapes and checks they choose the kernel chosen here."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from .lower import Step


def is_1x1(p: dict) -> bool:
    """arm_nn_is_convolve_1x1: no padding, a 1x1 filter without dilation, one group."""
    return p["pad_w"] == 0 and p["pad_h"] == 0 and p["k_w"] == 1 and p["k_h"] == 1 and p["dil_w"] == 1 \
        and p["dil_h"] == 1 and p["in_c"] == p["filter_in_c"]


def is_1x1_fast(p: dict) -> bool:
    """arm_nn_is_convolve_1x1_fast (after is_1x1): unit strides."""
    return p["stride_w"] == 1 and p["stride_h"] == 1


def is_1_x_n(p: dict) -> bool:
    """arm_nn_is_convolve_1_x_n: one input row, a 1xN filter without horizontal dilation, one group, and
    stride_w * in_c a multiple of 4."""
    return p["in_h"] == 1 and p["dil_w"] == 1 and p["k_h"] == 1 and (p["stride_w"] * p["in_c"]) % 4 == 0 \
        and p["in_c"] == p["filter_in_c"]


def is_dw_opt(p: dict) -> bool:
    """arm_depthwise_conv_wrapper_s8/_s4's optimized path: depth multiplier 1, one batch, no dilation."""
    return p["depth_mult"] == 1 and p["batches"] == 1 and p["dil_w"] == 1 and p["dil_h"] == 1


def is_dw_3x3(p: dict) -> bool:
    """arm_depthwise_conv_wrapper_s8's 3x3 kernel (DSP and plain C; after is_dw_opt): padding at most 1."""
    return p["k_w"] == 3 and p["k_h"] == 3 and p["pad_h"] <= 1 and p["pad_w"] <= 1


def conv_kernel(p: dict, _s4: bool) -> str:
    if is_1x1(p):
        return "1x1_fast" if is_1x1_fast(p) else "1x1"
    return "1xn" if is_1_x_n(p) else "generic"


def dwconv_kernel(p: dict, s4: bool) -> str:
    if not is_dw_opt(p):
        return "generic"
    return "3x3" if not s4 and is_dw_3x3(p) else "opt"


def fc_kernel(p: dict, s4: bool) -> str | None:
    if s4:
        return None            # int4 FULLY_CONNECTED: per tensor only, one kernel (aot_fc_s4)
    return "per_channel" if p["per_channel"] else "per_tensor"


# SOFTMAX over at most this many elements runs the kit's fixed-point kernel (TFLM's reference arithmetic, the
# portable back-end's) instead of CMSIS-NN's arm_softmax_s8: 3,024 B less flash on the Cortex-M4 (demo, bare
# program) for about 232 more instructions per element (measured: 10 logits, +2,320 of 2.52 M), which stays
# within what TFLM's interpreter spends per inference on every bench model (bench/aot.md). Same bytes: both
# are bit-exact to TFLM's reference softmax (tests/test_aot.py, tests/test_aot_firmware.py).
SMALL_SOFTMAX_ELEMENTS = 16


def softmax_kernel(p: dict, _s4: bool) -> str | None:
    return "small" if p["rows"] * p["depth"] <= SMALL_SOFTMAX_ELEMENTS else None


def elementwise_kernel(p: dict, _s4: bool) -> str:
    return "broadcast" if p["dims"] != 0 else "elementwise"


# kernel family (the lowering's function without its width) -> the entry point's suffix for a layer
CHOICES: dict[str, Callable[[dict, bool], str | None]] = {
    "aot_conv": conv_kernel, "aot_dwconv": dwconv_kernel, "aot_fc": fc_kernel,
    "aot_add": elementwise_kernel, "aot_mul": elementwise_kernel, "aot_softmax": softmax_kernel}


# int16 layers: TFLM's cmsis_nn kernels call one CMSIS-NN function per operator (arm_convolve_wrapper_s16 is
# arm_convolve_s16 on every core); FULLY_CONNECTED splits (per tensor: arm_fully_connected_s16, per channel:
# TFLM's reference arithmetic, as TFLM's cmsis_nn kernel has no int16 per-channel path), and ADD as for int8.
CHOICES_S16: dict[str, Callable[[dict, bool], str | None]] = {"aot_fc": fc_kernel, "aot_add": elementwise_kernel}


def choose_kernel(step: Step) -> Step:
    """The step calling the entry point of the one kernel its layer takes (unchanged when there is one)."""
    if step.function is None:
        return step
    family, _, width = step.function.rpartition("_")
    rule = (CHOICES_S16 if width == "s16" else CHOICES).get(family)
    suffix = rule(dict(step.fields), width == "s4") if rule is not None else None
    return replace(step, function=f"{step.function}_{suffix}") if suffix else step
