"""Kernel scratch bytes per back-end variant, so the static buffer is planned at generation time.

The portable kernels need none. For CMSIS-NN these mirror its `*_get_buffer_size{,_dsp,_mve}` functions
(the ones TFLM's cmsis_nn kernels call in Prepare) for the calls the CMSIS-NN back-end makes; where
CMSIS-NN's answer depends on the compiler (Arm Compiler 6 vs gcc: the 1x1 fast conv on DSP, the one-input-
channel depthwise threshold on MVE) the larger size is taken, so the buffer fits either build.
tests/test_aot_cmsis.py compares these with CMSIS-NN's own functions over random shapes."""
from __future__ import annotations

from dataclasses import replace

from .choice import is_1_x_n, is_1x1, is_1x1_fast, is_dw_3x3
from .lower import Step

CH_IN_BLOCK_MVE = 124
DW_ONE_IN_CH_THRESHOLDS = (1, 8)       # gcc, Arm Compiler 6


def _f(step: Step) -> dict:
    return dict(step.fields)


def _im2col(p: dict, s4: bool) -> int:
    cols = p["k_w"] * p["k_h"] * p["in_c"]
    if not s4 and cols % 4:
        cols += 4 - cols % 4
    return 2 * cols * 2


def _im2col_mve(p: dict) -> int:
    return 4 * ((p["in_c"] * p["k_w"] * p["k_h"] + 15) // 16) * 16


def _one_x_n_mve(p: dict, s4: bool) -> int:
    total_pad = (p["out_w"] - 1) * p["stride_w"] + p["k_w"] - p["in_w"]
    asym = total_pad % 2
    stride, pad = p["stride_w"], p["pad_w"]
    right = max(1, (pad + asym + stride - 1) // stride) if pad + asym != 0 else 0
    left = max(1, (pad + stride - 1) // stride) if pad != 0 else 0
    none = max(p["out_w"] - (right + left), 0)
    if right + none + left != p["out_w"]:
        return _im2col_mve(p)
    if s4:
        return 0
    pad_left = pad * p["in_c"]
    pad_right = right * p["in_c"] if asym else pad_left
    left_elems = p["k_w"] * p["in_c"]
    return max(left_elems + pad_left, left_elems - p["in_c"] + pad_right)


def conv_scratch(p: dict, s4: bool) -> dict[str, int]:
    """arm_convolve_wrapper_s8/_s4_get_buffer_size per variant."""
    if is_1x1(p):
        fast = is_1x1_fast(p)
        dsp = 0 if s4 or not fast else 2 * p["in_c"] * 2      # Arm Compiler 6's size (gcc: 0)
        return {"cmsis-c": 0, "cmsis-dsp": dsp, "cmsis-mve": 0}
    one_x_n = is_1_x_n(p)
    plain = _im2col(p, s4)
    mve = _one_x_n_mve(p, s4) if one_x_n else _im2col_mve(p)
    return {"cmsis-c": plain, "cmsis-dsp": plain, "cmsis-mve": mve}


def _dw_opt_mve(p: dict) -> int:
    return 4 * CH_IN_BLOCK_MVE * p["k_w"] * p["k_h"]


def _dw_opt_dsp(p: dict) -> int:
    return p["in_c"] * p["k_w"] * p["k_h"] * 2


def dwconv_scratch(p: dict, s4: bool) -> dict[str, int]:
    """arm_depthwise_conv_wrapper_s8/_s4_get_buffer_size per variant."""
    opt = p["in_c"] == p["out_c"] and p["batches"] == 1 and p["dil_w"] == 1 and p["dil_h"] == 1
    if s4:
        return {"cmsis-c": _dw_opt_dsp(p) if opt else 0, "cmsis-dsp": _dw_opt_dsp(p) if opt else 0,
                "cmsis-mve": _dw_opt_mve(p) if opt else 0}
    three = is_dw_3x3(p)
    dsp = _dw_opt_dsp(p) if opt and not three else 0
    mve = _dw_opt_mve(p) if opt else 0
    if p["in_c"] == 1 and p["out_c"] > min(DW_ONE_IN_CH_THRESHOLDS):
        as_conv = dict(p, in_c=1, filter_in_c=1)
        mve = max(mve, conv_scratch_mve_wrapper(as_conv) + p["out_c"] * p["k_h"] * p["k_w"])
    return {"cmsis-c": 0, "cmsis-dsp": dsp, "cmsis-mve": mve}


def conv_scratch_mve_wrapper(p: dict) -> int:
    return conv_scratch(p, s4=False)["cmsis-mve"]


def fc_scratch(p: dict, s4: bool) -> dict[str, int]:
    """arm_fully_connected_s8_get_buffer_size: the kernel sums on MVE (4 B per output channel)."""
    return {"cmsis-c": 0, "cmsis-dsp": 0, "cmsis-mve": 0 if s4 else 4 * p["out_c"]}


def avgpool_scratch(p: dict, _s4: bool) -> dict[str, int]:
    """arm_avgpool_s8_get_buffer_size: one int32 per channel on DSP."""
    return {"cmsis-c": 0, "cmsis-dsp": 4 * p["ch"], "cmsis-mve": 0}


def conv_scratch_s16(p: dict, _s4: bool) -> dict[str, int]:
    """arm_convolve_wrapper_s16_get_buffer_size (= arm_convolve_s16's): two im2col columns of int16, on MVE
    four columns rounded up to 8 lanes."""
    cols = p["in_c"] * p["k_w"] * p["k_h"]
    return {"cmsis-c": 2 * cols * 2, "cmsis-dsp": 2 * cols * 2, "cmsis-mve": 4 * ((cols + 7) // 8) * 8 * 2}


# int16: arm_avgpool_s16_get_buffer_size is arm_avgpool_s8's (one int32 per channel on DSP); arm_depthwise_conv_s16,
# arm_fully_connected_s16, arm_max_pool_s16, arm_elementwise_add_s16 and the reference SOFTMAX need none
SCRATCH_S16 = {"aot_conv": conv_scratch_s16, "aot_avgpool": avgpool_scratch}

SCRATCH = {"aot_conv": conv_scratch, "aot_dwconv": dwconv_scratch, "aot_fc": fc_scratch,
           "aot_avgpool": avgpool_scratch}


def scratch_sizes(step: Step) -> Step:
    """The step with its scratch bytes for every variant filled in."""
    if step.scratch:   # the lowering sized it itself (MEAN's sums: the same on every back-end)
        return step
    sizes = {"portable": 0, "cmsis-c": 0, "cmsis-dsp": 0, "cmsis-mve": 0}
    if step.function is not None:
        family, _, width = step.function.rpartition("_")
        rule = (SCRATCH_S16 if width == "s16" else SCRATCH).get(family)
        if rule is not None:
            sizes.update(rule(_f(step), width == "s4"))
    return replace(step, scratch=sizes)
