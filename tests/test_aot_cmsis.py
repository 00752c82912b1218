"""The AOT planner's CMSIS-NN scratch sizes (converter/aot/scratch.py) against CMSIS-NN's own
`*_get_buffer_size` functions for the plain C path, DSP and MVE, over random shapes: a scratch area
smaller than the kernel needs would overwrite live tensors on the device. Where CMSIS-NN's answer depends
on the compiler (the 1x1 fast conv on DSP: Arm Compiler 6 only), the kit's size may be larger, never
smaller. Needs CMSIS_NN_ROOT (a clone of ARM-software/CMSIS-NN) and gcc."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from converter.aot import emit, quant, scratch
from converter.aot.choice import choose_kernel
from converter.aot.lower import Step

PROBE = r"""
#include <stdio.h>
#include "arm_nnfunctions.h"
int main(void) {
  int k, s4, n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, ph, pw, mult;
  while (scanf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d", &k, &s4, &n, &ih, &iw, &ic, &oh, &ow, &oc,
               &kh, &kw, &sh, &sw, &dh, &dw, &ph, &pw, &mult) == 18) {
    cmsis_nn_dims in = {n, ih, iw, ic}, out = {n, oh, ow, oc};
    if (k == 0) {
      cmsis_nn_conv_params cp = {0, 0, {sw, sh}, {pw, ph}, {dw, dh}, {-128, 127}};
      cmsis_nn_dims f = {oc, kh, kw, ic};
      if (s4) printf("%d %d %d\n", arm_convolve_wrapper_s4_get_buffer_size(&cp, &in, &f, &out),
                     arm_convolve_wrapper_s4_get_buffer_size_dsp(&cp, &in, &f, &out),
                     arm_convolve_wrapper_s4_get_buffer_size_mve(&cp, &in, &f, &out));
      else printf("%d %d %d\n", arm_convolve_wrapper_s8_get_buffer_size(&cp, &in, &f, &out),
                  arm_convolve_wrapper_s8_get_buffer_size_dsp(&cp, &in, &f, &out),
                  arm_convolve_wrapper_s8_get_buffer_size_mve(&cp, &in, &f, &out));
    } else if (k == 1) {
      cmsis_nn_dw_conv_params dp = {0, 0, mult, {sw, sh}, {pw, ph}, {dw, dh}, {-128, 127}};
      cmsis_nn_dims f = {1, kh, kw, oc};
      if (s4) printf("%d %d %d\n", arm_depthwise_conv_wrapper_s4_get_buffer_size(&dp, &in, &f, &out),
                     arm_depthwise_conv_wrapper_s4_get_buffer_size_dsp(&dp, &in, &f, &out),
                     arm_depthwise_conv_wrapper_s4_get_buffer_size_mve(&dp, &in, &f, &out));
      else printf("%d %d %d\n", arm_depthwise_conv_wrapper_s8_get_buffer_size(&dp, &in, &f, &out),
                  arm_depthwise_conv_wrapper_s8_get_buffer_size_dsp(&dp, &in, &f, &out),
                  arm_depthwise_conv_wrapper_s8_get_buffer_size_mve(&dp, &in, &f, &out));
    } else if (k == 3) {  /* int16: arm_convolve_wrapper_s16 */
      cmsis_nn_conv_params cp = {0, 0, {sw, sh}, {pw, ph}, {dw, dh}, {-32768, 32767}};
      cmsis_nn_dims f = {oc, kh, kw, ic};
      printf("%d %d %d\n", arm_convolve_wrapper_s16_get_buffer_size(&cp, &in, &f, &out),
             arm_convolve_wrapper_s16_get_buffer_size_dsp(&cp, &in, &f, &out),
             arm_convolve_wrapper_s16_get_buffer_size_mve(&cp, &in, &f, &out));
    } else if (k == 4) {
      printf("%d %d %d\n", arm_avgpool_s16_get_buffer_size(ow, ic), arm_avgpool_s16_get_buffer_size_dsp(ow, ic),
             arm_avgpool_s16_get_buffer_size_mve(ow, ic));
    } else {
      printf("%d %d %d\n", arm_avgpool_s8_get_buffer_size(ow, ic), arm_avgpool_s8_get_buffer_size_dsp(ow, ic),
             arm_avgpool_s8_get_buffer_size_mve(ow, ic));
    }
  }
  return 0;
}
"""
SOURCES = ("ConvolutionFunctions/arm_convolve_get_buffer_sizes_s8.c", "ConvolutionFunctions/arm_convolve_get_buffer_sizes_s4.c",
           "ConvolutionFunctions/arm_depthwise_conv_get_buffer_sizes_s8.c",
           "ConvolutionFunctions/arm_depthwise_conv_get_buffer_sizes_s4.c",
           "PoolingFunctions/arm_avgpool_get_buffer_sizes_s8.c", "ConvolutionFunctions/arm_convolve_get_buffer_sizes_s16.c",
           "PoolingFunctions/arm_avgpool_get_buffer_sizes_s16.c")


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    root = Path(os.environ.get("CMSIS_NN_ROOT", "/nonexistent"))
    if not (root / "Include/arm_nnfunctions.h").exists() or shutil.which("gcc") is None:
        pytest.skip("needs CMSIS_NN_ROOT (a clone of ARM-software/CMSIS-NN) and gcc")
    folder = tmp_path_factory.mktemp("cmsis-probe")
    (folder / "probe.c").write_text(PROBE)
    subprocess.run(["gcc", "-O0", "-w", f"-I{root / 'Include'}", str(folder / "probe.c"),
                    *(str(root / "Source" / s) for s in SOURCES), "-o", str(folder / "probe")],
                   check=True, capture_output=True)
    return folder / "probe"


def _cases(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        kind, s4 = int(rng.integers(0, 3)), int(rng.integers(0, 2))
        in_c, mult = int(rng.integers(1, 40)), int(rng.choice([1, 1, 2, 3]))
        k_h, k_w = int(rng.choice([1, 1, 3, 5])), int(rng.choice([1, 3, 5, 10]))
        stride, dil = int(rng.choice([1, 1, 2])), int(rng.choice([1, 1, 2]))
        in_h, in_w = int(rng.choice([1, 5, 12])), int(rng.integers(k_w * dil, 40))
        same = bool(rng.integers(0, 2))
        out_h = quant.out_size(same, max(in_h, (k_h - 1) * dil + 1), k_h, stride, dil)
        in_h = max(in_h, (k_h - 1) * dil + 1)
        out_w = quant.out_size(same, in_w, k_w, stride, dil)
        out_c = in_c * mult if kind == 1 else int(rng.integers(1, 40))
        p = {"batches": 1, "in_h": in_h, "in_w": in_w, "in_c": in_c, "out_h": out_h, "out_w": out_w, "out_c": out_c,
             "k_h": k_h, "k_w": k_w, "filter_in_c": in_c, "stride_h": stride, "stride_w": stride, "dil_h": dil,
             "dil_w": dil, "pad_h": quant.padding(stride, dil, in_h, k_h, out_h),
             "pad_w": quant.padding(stride, dil, in_w, k_w, out_w), "depth_mult": mult, "ch": in_c}
        yield kind, s4, p


def test_scratch_sizes_match_cmsis_nn(probe):
    cases = list(_cases(3, 600))
    lines = "".join(f"{k} {s4} 1 {p['in_h']} {p['in_w']} {p['in_c']} {p['out_h']} {p['out_w']} {p['out_c']} "
                    f"{p['k_h']} {p['k_w']} {p['stride_h']} {p['stride_w']} {p['dil_h']} {p['dil_w']} {p['pad_h']} "
                    f"{p['pad_w']} {p['depth_mult']}\n" for k, s4, p in cases)
    out = subprocess.run([str(probe)], input=lines, capture_output=True, text=True, check=True).stdout.splitlines()
    rules = (scratch.conv_scratch, scratch.dwconv_scratch, scratch.avgpool_scratch)
    for (kind, s4, p), line in zip(cases, out, strict=True):
        plain, dsp, mve = (int(v) for v in line.split())
        ours = rules[kind](p, bool(s4))
        compiler_dependent = kind == 0 and p["k_h"] == p["k_w"] == 1 and p["pad_h"] == p["pad_w"] == 0
        for variant, theirs in (("cmsis-c", plain), ("cmsis-dsp", dsp), ("cmsis-mve", mve)):
            assert ours[variant] >= theirs, (kind, s4, p, variant, ours[variant], theirs)
            if not (compiler_dependent and variant == "cmsis-dsp"):
                assert ours[variant] == theirs, (kind, s4, p, variant, ours[variant], theirs)


def test_int16_scratch_sizes_match_cmsis_nn(probe):
    """arm_convolve_wrapper_s16 (= arm_convolve_s16: im2col of int16) and arm_avgpool_s16; the int16 depthwise,
    fully connected, max pool and softmax kernels take none."""
    cases = [(3 if kind == 0 else 4, p) for kind, _, p in _cases(5, 300) if kind != 1]
    lines = "".join(f"{k} 0 1 {p['in_h']} {p['in_w']} {p['in_c']} {p['out_h']} {p['out_w']} {p['out_c']} "
                    f"{p['k_h']} {p['k_w']} {p['stride_h']} {p['stride_w']} {p['dil_h']} {p['dil_w']} {p['pad_h']} "
                    f"{p['pad_w']} 1\n" for k, p in cases)
    out = subprocess.run([str(probe)], input=lines, capture_output=True, text=True, check=True).stdout.splitlines()
    for (kind, p), line in zip(cases, out, strict=True):
        theirs = dict(zip(("cmsis-c", "cmsis-dsp", "cmsis-mve"), (int(v) for v in line.split())))
        ours = scratch.SCRATCH_S16["aot_conv" if kind == 3 else "aot_avgpool"](p, False)
        assert ours == theirs, (kind, p, ours, theirs)


CHOOSER = r"""
#include <stdio.h>
#include "arm_nnfunctions.h"
int main(void) {
  int k, s4, n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, ph, pw, mult;
  while (scanf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d", &k, &s4, &n, &ih, &iw, &ic, &oh, &ow, &oc,
               &kh, &kw, &sh, &sw, &dh, &dw, &ph, &pw, &mult) == 18) {
    cmsis_nn_dims in = {n, ih, iw, ic}, out = {n, oh, ow, oc}, b = {1, 1, 1, oc};
    cmsis_nn_context ctx = {0, 0};
    cmsis_nn_per_channel_quant_params qp = {0, 0};
    if (k == 0) {
      cmsis_nn_conv_params cp = {0, 0, {sw, sh}, {pw, ph}, {dw, dh}, {-128, 127}};
      cmsis_nn_dims f = {oc, kh, kw, ic};
      if (s4) arm_convolve_wrapper_s4(&ctx, &cp, &qp, &in, 0, &f, 0, &b, 0, &out, 0);
      else arm_convolve_wrapper_s8(&ctx, &cp, &qp, &in, 0, &f, 0, &b, 0, &out, 0);
    } else {
      cmsis_nn_dw_conv_params dp = {0, 0, mult, {sw, sh}, {pw, ph}, {dw, dh}, {-128, 127}};
      cmsis_nn_dims f = {1, kh, kw, oc};
      if (s4) arm_depthwise_conv_wrapper_s4(&ctx, &dp, &qp, &in, 0, &f, 0, &b, 0, &out, 0);
      else arm_depthwise_conv_wrapper_s8(&ctx, &dp, &qp, &in, 0, &f, 0, &b, 0, &out, 0);
    }
  }
  return 0;
}
"""
WRAPPERS = ("ConvolutionFunctions/arm_convolve_wrapper_s8.c", "ConvolutionFunctions/arm_convolve_wrapper_s4.c",
            "ConvolutionFunctions/arm_depthwise_conv_wrapper_s8.c",
            "ConvolutionFunctions/arm_depthwise_conv_wrapper_s4.c")
_ENTRY = re.compile(r"^AOT_CONV_KERNEL\((aot_\w+), \d, \w+, (\w+)\)$", re.M)


def _entry_points() -> dict[str, str]:
    """aot_kernels_cmsis.c's per-layer entry points -> the CMSIS-NN function each calls on DSP and plain C (on
    MVE some call the wrapper; the unsuffixed ones always do)."""
    text = (Path(emit.__file__).parent / "kernels/aot_kernels_cmsis.c").read_text()
    mve = text[text.index("#if defined(ARM_MATH_MVEI)\n/* On MVE"):text.index("#else\n", text.index("/* On MVE"))]
    calls = {name: fn.removeprefix("aot_") for name, fn in _ENTRY.findall(text.replace(mve, "")) if "wrapper" not in fn}
    calls["aot_dwconv_s4_generic"] = "arm_depthwise_conv_s4"   # deliberately TFLM's reference arithmetic instead
    return calls


@pytest.fixture(scope="module")
def chooser(tmp_path_factory):
    """CMSIS-NN's own wrappers, linked against kernels that only print their name."""
    root = Path(os.environ.get("CMSIS_NN_ROOT", "/nonexistent"))
    if not (root / "Include/arm_nnfunctions.h").exists() or shutil.which("gcc") is None:
        pytest.skip("needs CMSIS_NN_ROOT (a clone of ARM-software/CMSIS-NN) and gcc")
    folder = tmp_path_factory.mktemp("cmsis-chooser")
    (folder / "chooser.c").write_text(CHOOSER)
    kernels = sorted(set(_entry_points().values()))
    (folder / "kernels.c").write_text("#include <stdio.h>\n" + "".join(
        f'int {name}() {{ puts("{name}"); return 0; }}\n' for name in kernels))
    subprocess.run(["gcc", "-O0", "-w", "-std=gnu99", f"-I{root / 'Include'}", str(folder / "chooser.c"),
                    str(folder / "kernels.c"), *(str(root / "Source" / s) for s in WRAPPERS),
                    "-o", str(folder / "chooser")], check=True, capture_output=True)
    return folder / "chooser"


def test_the_generator_chooses_the_kernel_cmsis_nns_wrapper_chooses(chooser):
    """Every convolution's entry point (choice.py, at generation) calls the CMSIS-NN kernel that CMSIS-NN's
    wrapper calls for the same shape at run time (the wrapper compiled and run, the kernels stubbed)."""
    cases = [(kind, s4, dict(p, per_channel=0)) for kind, s4, p in _cases(5, 600) if kind < 2]
    lines = "".join(f"{k} {s4} 1 {p['in_h']} {p['in_w']} {p['in_c']} {p['out_h']} {p['out_w']} {p['out_c']} "
                    f"{p['k_h']} {p['k_w']} {p['stride_h']} {p['stride_w']} {p['dil_h']} {p['dil_w']} {p['pad_h']} "
                    f"{p['pad_w']} {p['depth_mult']}\n" for k, s4, p in cases)
    out = subprocess.run([str(chooser)], input=lines, capture_output=True, text=True, check=True).stdout.splitlines()
    calls, seen = _entry_points(), set()
    for (kind, s4, p), theirs in zip(cases, out, strict=True):
        step = Step(0, "", f"aot_{'dwconv' if kind else 'conv'}_{'s4' if s4 else 's8'}", fields=tuple(p.items()))
        ours = choose_kernel(step).function
        assert calls[ours] == theirs, (kind, s4, p, ours, theirs)
        seen.add(ours)
    assert len(seen) == len(calls), f"shapes never chose {sorted(set(calls) - seen)}"
