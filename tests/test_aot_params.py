"""The AOT parameter tables checked against TFLM's own Prepare, through outputs on adversarial inputs.

Where two plausible formulas give different multipliers (FULLY_CONNECTED per tensor: the float32 input x
filter scale product TFLM uses vs a double product; CONV_2D per channel: double throughout vs float32;
QuantizeMultiplier on an exact .5 tie: half away from zero vs half to even), an accumulator value is
searched whose requantized output differs between the two. A one-operator model whose bias is that value
(input zero point 0, input 0, so the accumulator is the bias) then shows which multiplier TFLM computed:
its output must be the kit's, and the generated C must give the same byte. Output tests on random data
alone almost never see these differences (design note: ~99% of scale triples differ, few outputs flip)."""
import math
import shutil

import numpy as np
import pytest

from converter.aot import generate, quant
from converter.aot.validate import validate_on_host
from converter.tflm.runners import run_model
from tests.aot_models import ModelBuilder

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                reason="needs a host C compiler (gcc) to build the AOT code")


def srdhm(a: int, b: int) -> int:
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    total = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    return int(math.copysign(abs(total) // (1 << 31), total))


def rdpot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def requantize(acc: int, multiplier: int, shift: int, zero_point: int = 0) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    shifted = ((acc << left) + (1 << 31)) % (1 << 32) - (1 << 31)
    return max(-128, min(127, rdpot(srdhm(shifted, multiplier), right) + zero_point))


def distinguishing_accumulator(ours: tuple[int, int], other: tuple[int, int]) -> int | None:
    """An int32 accumulator whose output differs under the two (multiplier, shift) pairs, if any."""
    real = ours[0] * 2.0 ** (ours[1] - 31)
    for k in range(-128, 127):
        centre = round((k + 0.5) / real)
        for acc in range(centre - 3, centre + 4):
            if -(1 << 31) <= acc < (1 << 31) and requantize(acc, *ours) != requantize(acc, *other):
                return acc
    return None


def _fc(b: ModelBuilder, in_s: float, f_s: float, out_s: float, acc: int) -> tuple[int, int]:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    x = b.activation((1, 1), in_s, 0)
    w = b.tensor((1, 1), "INT8", [f_s], 0, np.array([1], np.int8).tobytes())
    bias = b.tensor((1,), "INT32", [float(np.float32(in_s) * np.float32(f_s))], 0, np.array([acc], "<i4").tobytes())
    y = b.activation((1, 1), out_s, 0)
    b.op("FULLY_CONNECTED", (x, w, bias), (y,), s.FullyConnectedOptionsT(), "FullyConnectedOptions")
    b.io((x,), (y,))
    return x, y


def _conv(b: ModelBuilder, in_s: float, f_s: float, out_s: float, acc: int) -> tuple[int, int]:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    x = b.activation((1, 1, 1, 1), in_s, 0)
    w = b.tensor((1, 1, 1, 1), "INT8", [f_s], 0, np.array([1], np.int8).tobytes())
    bias = b.tensor((1,), "INT32", [float(np.float32(in_s) * np.float32(f_s))], 0, np.array([acc], "<i4").tobytes())
    y = b.activation((1, 1, 1, 1), out_s, 0)
    o = s.Conv2DOptionsT()
    o.padding, o.strideH, o.strideW, o.dilationHFactor, o.dilationWFactor = 1, 1, 1, 1, 1
    b.op("CONV_2D", (x, w, bias), (y,), o, "Conv2DOptions")
    b.io((x,), (y,))
    return x, y


def _cases(rule: str, count: int, seed: int):
    """(in scale, filter scale, out scale, our multiplier, the other formula's) with different multipliers
    and small real multipliers (large accumulators: many candidate values near each rounding boundary)."""
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        in_s, f_s = (float(np.float32(10 ** rng.uniform(-3, -1))) for _ in range(2))
        out_s = float(np.float32(in_s * f_s * 10 ** rng.uniform(5.5, 6.5)))
        float32_product = quant.fc_per_tensor_multiplier(in_s, f_s, out_s, "float32")
        if rule == "fc":
            ours, other = quant.fc_per_tensor_multiplier(in_s, f_s, out_s), float32_product
        elif rule == "fc-float32":
            ours, other = float32_product, quant.fc_per_tensor_multiplier(in_s, f_s, out_s)
        else:
            ours, other = tuple(v[0] for v in quant.conv_multipliers(in_s, [f_s], out_s, 1)), float32_product
        if ours != other:
            acc = distinguishing_accumulator(ours, other)
            if acc is not None:
                found.append((in_s, f_s, out_s, ours, acc))
    return found


def _adversarial(rule: str, count: int = 12):
    """(model, zero inputs, the outputs the kit's multipliers give) for `rule`'s distinguishing cases."""
    cases = _cases(rule, count, seed={"fc": 1, "fc-float32": 1, "conv": 2}[rule])
    build = _conv if rule == "conv" else _fc
    b = ModelBuilder()
    for in_s, f_s, out_s, _, acc in cases:
        build(b, in_s, f_s, out_s, acc)
    shape = (1, 1, 1, 1, 1) if build is _conv else (1, 1, 1)
    return b.to_bytes(), [np.zeros(shape, np.int8) for _ in cases], [requantize(acc, *ours) for *_, ours, acc in cases]


@pytest.mark.parametrize("rule", ["fc", "conv"])
def test_tflm_computes_the_kits_multiplier(rule):
    model, zeros, expected = _adversarial(rule)
    tflm = run_model(model, zeros, "tflm").outputs
    assert [int(np.asarray(o).reshape(-1)[0]) for o in tflm] == expected, \
        "TFLM's Prepare computed another multiplier than the kit's formula"
    result = validate_on_host(model, generate(model), zeros)
    assert result.passed, result.line()


PROBE = r"""// Calls TFLM's own Prepare arithmetic (libtensorflow-microlite.a) on values read from stdin.
#include <cstdio>
#include <cstring>
#include "tensorflow/lite/kernels/internal/quantization_util.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
alignas(16) static uint8_t arena[1 << 18];
alignas(16) static uint8_t model[1 << 18];
int main(int argc, char** argv) {
  if (argc > 2) {  // run: a model with zero inputs, print the first byte of every output
    FILE* f = fopen(argv[2], "rb");
    if (!f || fread(model, 1, sizeof model, f) == 0) return 2;
    tflite::MicroMutableOpResolver<2> resolver;
    resolver.AddFullyConnected();
    resolver.AddConv2D();
    tflite::MicroInterpreter interpreter(tflite::GetModel(model), resolver, arena, sizeof arena);
    if (interpreter.AllocateTensors() != kTfLiteOk) return 3;
    for (size_t i = 0; i < interpreter.inputs_size(); ++i)
      memset(interpreter.input(i)->data.int8, 0, interpreter.input(i)->bytes);
    if (interpreter.Invoke() != kTfLiteOk) return 4;
    for (size_t i = 0; i < interpreter.outputs_size(); ++i) printf("%d\n", interpreter.output(i)->data.int8[0]);
    return 0;
  }
  double a, b;
  while (scanf("%la %la", &a, &b) == 2) {
    int32_t m; int s;
    if (argv[1][0] == 'q') {
      tflite::QuantizeMultiplier(a, &m, &s);
      printf("%d %d\n", m, s);
    } else {
      tflite::PreprocessSoftmaxScaling(a, b, 5, &m, &s);
      printf("%d %d %d\n", m, s, -tflite::CalculateInputRadius(5, s));
    }
  }
  return 0;
}
"""
FLAGS = ["-std=c++17", "-O0", "-fno-rtti", "-fno-exceptions", "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON",
         "-DKERNELS_OPTIMIZED_FOR_SPEED", "-DTF_LITE_USE_CTIME"]


@pytest.fixture(scope="module")
def tflm_probe(tmp_path_factory):
    """A host program linked against TFLM's prebuilt library (TFLM_ROOT): TFLM's own functions."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(os.environ.get("TFLM_ROOT", "/nonexistent"))
    library = root / "gen/linux_x86_64_default_gcc/lib/libtensorflow-microlite.a"
    if not library.exists() or shutil.which("g++") is None:
        pytest.skip("needs TFLM_ROOT with a host libtensorflow-microlite.a and g++ (CI: ../shared/tflm)")
    folder = tmp_path_factory.mktemp("probe")
    (folder / "probe.cc").write_text(PROBE)
    downloads = root / "tensorflow/lite/micro/tools/make/downloads"
    subprocess.run(["g++", *FLAGS, f"-I{root}", f"-I{downloads / 'flatbuffers/include'}", f"-I{downloads / 'gemmlowp'}",
                    f"-I{downloads / 'ruy'}", str(folder / "probe.cc"), str(library), "-lm", "-o",
                    str(folder / "probe")], check=True, capture_output=True)

    def probe(mode: str, stdin: str = "", model: Path | None = None) -> list[list[int]]:
        args = [str(folder / "probe"), mode] + ([str(model)] if model else [])
        out = subprocess.run(args, input=stdin, capture_output=True, text=True, check=True).stdout
        return [[int(v) for v in line.split()] for line in out.splitlines()]

    return probe


def _multipliers(rng) -> list[float]:
    """Random reals, exact .5 ties of q * 2^31, values that round up to 2^31, tiny and huge ones."""
    values = list(10 ** rng.uniform(-12, 3, 300))
    for a in range(-40, 8):   # (1 + 2^-16)(1 + 2^-15) = 1 + 3 * 2^-16 + 2^-31: q * 2^31 ends in exactly .5
        values += [(1 + 2.0 ** -16) * (1 + 2.0 ** -15) * 2.0 ** a, (1 + 2.0 ** -16) * (1 + 2.0 ** -14) * 2.0 ** a]
    values += [1 - 2.0 ** -40, 0.5 - 2.0 ** -45, 2.0 ** -31, 2.0 ** -32, 1.5 * 2.0 ** -32, 2.0 ** -33, 0.0]
    return [float(v) for v in values]


def test_quantize_multiplier_is_tflms(tflm_probe):
    values = _multipliers(np.random.default_rng(5))
    theirs = tflm_probe("q", "".join(f"{v.hex()} 0x0p+0\n" for v in values))
    ours = [list(quant.quantize_multiplier(v)) for v in values]
    assert ours == theirs


def test_softmax_parameters_are_tflms(tflm_probe):
    rng = np.random.default_rng(6)
    pairs = [(float(np.float32(b)), float(np.float32(s))) for b, s in
             zip(rng.choice([1.0, 0.5, 2.0, 1.7], 100), 10 ** rng.uniform(-4, 1, 100))]
    theirs = tflm_probe("s", "".join(f"{b.hex()} {s.hex()}\n" for b, s in pairs))
    assert [list(quant.softmax_params(b, s)) for b, s in pairs] == theirs


def test_firmware_tflm_multiplies_fc_scales_in_float32(tflm_probe, tmp_path):
    """TFLM 90b983c2 (the firmware's library) forms the per-tensor FULLY_CONNECTED multiplier from a
    float32 product; Numerics(fc_product="float32") follows it, bit for bit on these adversarial cases."""
    from converter.aot import Numerics

    model, zeros, expected = _adversarial("fc-float32")
    (tmp_path / "m.tflite").write_bytes(model)
    assert [row[0] for row in tflm_probe("run", model=tmp_path / "m.tflite")] == expected
    program = generate(model, Numerics(fc_product="float32"))
    assert validate_on_host(model, program, zeros, expected=[np.array([[[v]]], np.int8) for v in expected]).passed


def test_quantize_multiplier_edges():
    assert quant.quantize_multiplier(0.0) == (0, 0)
    assert quant.quantize_multiplier(2.0 ** -40) == (0, 0)            # shift < -31: flushed
    assert quant.quantize_multiplier(1 - 2.0 ** -40) == (1 << 30, 1)   # q rounds to 2^31: renormalised
    tie = (1 + 2.0 ** -16) * (1 + 2.0 ** -15)   # q * 2^31 = 2^30 + 3 * 2^14 + 0.5 exactly
    assert quant.quantize_multiplier(tie) == ((1 << 30) + 3 * (1 << 14) + 1, 1)  # away from zero, not to even
    assert quant.round_away(2.5) == 3 and quant.round_away(-2.5) == -3
