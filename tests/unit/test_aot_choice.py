"""converter/aot/choice.py: each layer's kernel entry point, chosen at generation (pure logic; the wrappers
themselves are run against it in tests/test_aot_cmsis.py). Every entry point chosen must exist in both
back-ends, or the generated C would not link."""
import re

from converter.aot import emit
from converter.aot.choice import SMALL_SOFTMAX_ELEMENTS, choose_kernel
from converter.aot.lower import Step

CONV = {"batches": 1, "in_h": 8, "in_w": 8, "in_c": 4, "out_h": 8, "out_w": 8, "out_c": 4, "k_h": 1, "k_w": 1,
        "filter_in_c": 4, "stride_h": 1, "stride_w": 1, "dil_h": 1, "dil_w": 1, "pad_h": 0, "pad_w": 0,
        "depth_mult": 1}


def _chosen(function: str, **fields) -> str | None:
    return choose_kernel(Step(0, "", function, fields=tuple(fields.items()))).function


def test_each_shape_class_gets_its_kernel():
    assert _chosen("aot_conv_s8", **CONV) == "aot_conv_s8_1x1_fast"
    assert _chosen("aot_conv_s4", **dict(CONV, stride_h=2, out_h=4)) == "aot_conv_s4_1x1"
    assert _chosen("aot_conv_s8", **dict(CONV, in_h=1, out_h=1, k_w=3, pad_w=1)) == "aot_conv_s8_1xn"
    assert _chosen("aot_conv_s8", **dict(CONV, in_h=1, out_h=1, k_w=3, pad_w=1, in_c=3, filter_in_c=3)) \
        == "aot_conv_s8_generic"
    assert _chosen("aot_conv_s8", **dict(CONV, k_h=3, k_w=3, pad_h=1, pad_w=1)) == "aot_conv_s8_generic"
    assert _chosen("aot_dwconv_s8", **dict(CONV, k_h=3, k_w=3, pad_h=1, pad_w=1)) == "aot_dwconv_s8_3x3"
    assert _chosen("aot_dwconv_s4", **dict(CONV, k_h=3, k_w=3, pad_h=1, pad_w=1)) == "aot_dwconv_s4_opt"
    assert _chosen("aot_dwconv_s8", **dict(CONV, k_h=5, k_w=5, pad_h=2, pad_w=2)) == "aot_dwconv_s8_opt"
    assert _chosen("aot_dwconv_s8", **dict(CONV, depth_mult=2, out_c=8)) == "aot_dwconv_s8_generic"
    assert _chosen("aot_dwconv_s4", **dict(CONV, dil_h=2)) == "aot_dwconv_s4_generic"


def test_runtime_dispatch_of_the_kits_own_kernels_is_split_too():
    assert _chosen("aot_fc_s8", per_channel=1) == "aot_fc_s8_per_channel"
    assert _chosen("aot_fc_s8", per_channel=0) == "aot_fc_s8_per_tensor"
    assert _chosen("aot_fc_s4", per_channel=0) == "aot_fc_s4"
    assert _chosen("aot_add_s8", dims=0) == "aot_add_s8_elementwise"
    assert _chosen("aot_mul_s8", dims=4) == "aot_mul_s8_broadcast"
    assert _chosen("aot_softmax_s8", rows=1, depth=SMALL_SOFTMAX_ELEMENTS) == "aot_softmax_s8_small"
    assert _chosen("aot_softmax_s8", rows=2, depth=SMALL_SOFTMAX_ELEMENTS) == "aot_softmax_s8"
    assert _chosen("aot_requant_s8", size=3) == "aot_requant_s8"
    assert choose_kernel(Step(0, "RESHAPE", None)).function is None


def test_every_entry_point_is_declared_and_defined_by_both_back_ends():
    sources = emit.kernel_sources()
    declared = set(re.findall(r"^void (aot_\w+)\(", sources["aot_kernels.h"], re.M))
    entries = {n for n in declared if re.search(r"_(1x1_fast|1x1|1xn|generic|3x3|opt|per_tensor|per_channel|"
                                                r"elementwise|broadcast|small)$", n)}
    assert len(entries) == 24     # 20 int8/int4, 4 int16 (FULLY_CONNECTED and ADD split)
    shared = set(re.findall(r"^void (aot_\w+)\(", sources["aot_kernels_common.c"], re.M))   # both back-ends link it
    for back_end in ("aot_kernels_cmsis.c", "aot_kernels_portable.c"):
        text = sources[back_end]
        defined = set(re.findall(r"^void (aot_\w+)\(", text, re.M)) | set(re.findall(r"^AOT_\w+\((aot_\w+),", text, re.M))
        defined |= shared
        assert entries <= defined, f"{back_end} lacks {sorted(entries - defined)}"
