"""The Cortex-M arena derived from the model (converter/tflm/derived_arena.py) against QEMU's measurement.

The measurement is the device check's: the model's cortex-m-qemu (or M7, M0+) golden self-test built against
TFLM_ROOT's CMSIS-NN library, whose probe build prints the smallest arena (a multiple of 16) that allocates and
invokes, and arena_used_bytes(). The derivation must give both, to the byte. The default tier compares the
demo and the MLPerf IC model (tests/test_device_check.py, where they are converted and measured anyway), and
here one random model of the operators TFLM runs on its reference kernels (MORE_KINDS, one QEMU run); the
slow tier here: the MLPerf Tiny reference models, random models of every modelled operator and Keras models
(GlobalAveragePooling2D -> MEAN, ...), on the Cortex-M4, the Cortex-M7 and Armv6-M (the M0+ library on
mps2-an385). A candidate arena where TFLM's reduce kernel aborts counts as too small for
the probe (tests/test_probe_escape.py, docs/firmware.md). Needs TFLM_ROOT, arm-none-eabi-gcc and
qemu-system-arm (each test skips saying which is missing); docs/firmware.md has the table.
"""
import numpy as np
import pytest

from converter.tflm.derived_arena import derive

from .aot_models import ADDERS, ModelBuilder, Random, _shape, chain_model, s
from .firmware_tools import need_tools, tflm_root

LIBRARIES = {"cortex-m4": "cortex_m_generic_cortex-m4_default_cmsis_nn_gcc",
             "cortex-m7": "cortex_m_generic_cortex-m7+fp_default_cmsis_nn_gcc",
             "cortex-m0plus": "cortex_m_generic_cortex-m0plus_default_cmsis_nn_gcc"}
MLPERF = {"IC": "image_classification/pretrainedResnet_quant.tflite",
          "KWS": "keyword_spotting/kws_ref_model.tflite",
          "VWW": "visual_wake_words/vww_96_int8.tflite",
          "AD": "anomaly_detection/ad01_int8.tflite",
          "SWW": "streaming_wakeword/str_ww_ref_model.tflite"}
KINDS = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SOFTMAX", "ADD",
         "RESHAPE"]
# operators user models have beyond the CMSIS-NN core set (mostly TFLM's reference kernels), each proven here
MORE_KINDS = ["MEAN", "PAD", "MUL", "CONCATENATION", "LOGISTIC", "TANH", "RELU", "RELU6", "HARD_SWISH", "QUANTIZE",
              "LEAKY_RELU", "STRIDED_SLICE", "TRANSPOSE", "SUB", "MAXIMUM", "MINIMUM", "RESIZE_NEAREST_NEIGHBOR",
              "EXPAND_DIMS", "SQUEEZE", "SUM", "REDUCE_MAX", "PRELU"]


def add_leaky_relu(b: ModelBuilder, r: Random) -> tuple[int, int]:
    shape = _shape(r)
    x = b.activation(shape, r.scale(), r.zero_point())
    y = b.activation(shape, r.scale(), r.zero_point())
    o = s.LeakyReluOptionsT()
    o.alpha = float(r.choice((0.01, 0.1, 0.2, 0.3)))
    b.op("LEAKY_RELU", (x,), (y,), o, "LeakyReluOptions")
    return x, y


def add_strided_slice(b: ModelBuilder, r: Random) -> tuple[int, int]:
    """A constant begin/end/strides slice (TFLM's kernel takes at most four dimensions), no masks."""
    shape = _shape(r, r.int(1, 3))
    begin = [r.int(0, d - 1) for d in shape]
    end = [r.int(a + 1, d) for a, d in zip(begin, shape)]
    strides = [r.int(1, 2) for _ in shape]
    scale, zp = r.scale(), r.zero_point()
    x = b.activation(shape, scale, zp)
    consts = [b.tensor((len(shape),), "INT32", data=np.array(v, "<i4").tobytes()) for v in (begin, end, strides)]
    y = b.activation(tuple(-(-(e - a) // k) for a, e, k in zip(begin, end, strides)), scale, zp)
    b.op("STRIDED_SLICE", (x, *consts), (y,), s.StridedSliceOptionsT(), "StridedSliceOptions")
    return x, y


def add_transpose(b: ModelBuilder, r: Random) -> tuple[int, int]:
    shape = _shape(r, 3)
    perm = [int(v) for v in r.rng.permutation(len(shape))]
    scale, zp = r.scale(), r.zero_point()
    x = b.activation(shape, scale, zp)
    p = b.tensor((len(shape),), "INT32", data=np.array(perm, "<i4").tobytes())
    y = b.activation(tuple(shape[k] for k in perm), scale, zp)
    b.op("TRANSPOSE", (x, p), (y,), s.TransposeOptionsT(), "TransposeOptions")
    return x, y


def _two_shapes(r: Random) -> tuple[tuple, tuple, tuple]:
    """Two input shapes of up to four dimensions, broadcast half the time, and the output's."""
    shape = _shape(r, r.int(1, 3))
    other = tuple(1 if r.rng.random() < 0.5 else d for d in shape) if r.rng.random() < 0.5 else shape
    return (shape, other, shape) if r.rng.random() < 0.5 else (other, shape, shape)


def add_sub(b: ModelBuilder, r: Random) -> tuple[tuple[int, int], int]:
    first, second, out = _two_shapes(r)
    a, c = b.activation(first, r.scale(), r.zero_point()), b.activation(second, r.scale(), r.zero_point())
    y = b.activation(out, r.scale(), r.zero_point())
    o = s.SubOptionsT()
    o.fusedActivationFunction = r.choice((0, 1, 3))
    b.op("SUB", (a, c), (y,), o, "SubOptions")
    return (a, c), y


def add_maximum_minimum(b: ModelBuilder, r: Random, kind: str) -> tuple[tuple[int, int], int]:
    """Same shapes: CMSIS-NN's MINIMUM computes other bytes than the reference kernel when input 0 broadcasts
    ((1, 4, 1, 1) against (1, 4, 4, 1)), which the device check reports before measuring (no Prepare: the
    arena does not depend on the shapes)."""
    first = second = out = _shape(r, r.int(1, 3))
    scale, zp = r.scale(), r.zero_point()   # one quantization for all three, as TFLite writes them
    a, c, y = b.activation(first, scale, zp), b.activation(second, scale, zp), b.activation(out, scale, zp)
    b.op(kind, (a, c), (y,))
    return (a, c), y


def add_resize_nearest(b: ModelBuilder, r: Random) -> tuple[int, int]:
    shape = _shape(r, 3)
    size = [shape[1] * r.int(1, 3), shape[2] * r.int(1, 3)]
    scale, zp = r.scale(), r.zero_point()
    x = b.activation(shape, scale, zp)
    sz = b.tensor((2,), "INT32", data=np.array(size, "<i4").tobytes())
    y = b.activation((1, *size, shape[3]), scale, zp)
    o = s.ResizeNearestNeighborOptionsT()
    o.halfPixelCenters = bool(r.rng.random() < 0.5)
    b.op("RESIZE_NEAREST_NEIGHBOR", (x, sz), (y,), o, "ResizeNearestNeighborOptions")
    return x, y


def add_expand_dims(b: ModelBuilder, r: Random) -> tuple[int, int]:
    shape = _shape(r, r.int(1, 2))
    axis = r.int(0, len(shape))
    scale, zp = r.scale(), r.zero_point()
    x = b.activation(shape, scale, zp)
    a = b.tensor((1,), "INT32", data=np.array([axis], "<i4").tobytes())
    y = b.activation((*shape[:axis], 1, *shape[axis:]), scale, zp)
    b.op("EXPAND_DIMS", (x, a), (y,))
    return x, y


def add_squeeze(b: ModelBuilder, r: Random) -> tuple[int, int]:
    """SqueezeOptions naming the dimensions (at least one: none would squeeze the batch too)."""
    shape = [1, *(1 if r.rng.random() < 0.4 else r.int(2, 5) for _ in range(r.int(2, 3)))]
    shape[r.int(1, len(shape) - 1)] = 1
    ones = [d for d, n in enumerate(shape) if n == 1 and d > 0]
    dims = [d for d in ones if r.rng.random() < 0.7] or ones[:1]
    scale, zp = r.scale(), r.zero_point()
    x = b.activation(shape, scale, zp)
    y = b.activation(tuple(n for d, n in enumerate(shape) if d not in dims), scale, zp)
    o = s.SqueezeOptionsT()
    o.squeezeDims = dims
    b.op("SQUEEZE", (x,), (y,), o, "SqueezeOptions")
    return x, y


def add_reduce(b: ModelBuilder, r: Random, kind: str) -> tuple[int, int]:
    """SUM or REDUCE_MAX over random axes (REDUCE_MAX keeps the input's quantization, as TFLM requires)."""
    shape = _shape(r, r.int(2, 3))
    axes = sorted({r.int(1, len(shape) - 1) for _ in range(r.int(1, 2))})
    keep = r.rng.random() < 0.5
    out_shape = tuple((1 if d in axes else n) for d, n in enumerate(shape) if keep or d not in axes)
    scale, zp = r.scale(), r.zero_point()
    x = b.activation(shape, scale, zp)
    a = b.tensor((len(axes),), "INT32", data=np.array(axes, "<i4").tobytes())
    y = b.activation(out_shape, *((scale, zp) if kind == "REDUCE_MAX" else (scale * r.choice((2, 4, 8)), zp)))
    o = s.ReducerOptionsT()
    o.keepDims = keep
    b.op(kind, (x, a), (y,), o, "ReducerOptions")
    return x, y


def add_prelu(b: ModelBuilder, r: Random) -> tuple[int, int]:
    """Keras's PReLU with shared_axes=[1, 2]: a constant int8 alpha per channel, broadcast over height and width."""
    shape = _shape(r, 3)
    x = b.activation(shape, r.scale(), r.zero_point())
    alpha = b.tensor((1, 1, shape[3]), "INT8", [r.scale()], r.zero_point(),
                     r.rng.integers(-128, 128, shape[3]).astype(np.int8).tobytes())
    y = b.activation(shape, r.scale(), r.zero_point())
    b.op("PRELU", (x, alpha), (y,))
    return x, y


BUILDERS = {**ADDERS, "PRELU": add_prelu, "SUM": lambda b, r: add_reduce(b, r, "SUM"), "REDUCE_MAX": lambda b, r: add_reduce(b, r, "REDUCE_MAX"), "LEAKY_RELU": add_leaky_relu, "STRIDED_SLICE": add_strided_slice, "TRANSPOSE": add_transpose,
            "SUB": add_sub, "MAXIMUM": lambda b, r: add_maximum_minimum(b, r, "MAXIMUM"),
            "MINIMUM": lambda b, r: add_maximum_minimum(b, r, "MINIMUM"),
            "RESIZE_NEAREST_NEIGHBOR": add_resize_nearest, "EXPAND_DIMS": add_expand_dims, "SQUEEZE": add_squeeze}


def random_model(kinds, count: int, seed: int) -> bytes:
    """tests/aot_models.random_model with this file's builders too: `count` independent operators."""
    b, r = ModelBuilder(), Random(seed)
    for i in range(count):
        ins, out = BUILDERS[kinds[i % len(kinds)]](b, r)
        b.io(ins if isinstance(ins, tuple) else (ins,), (out,))
    return b.to_bytes()


def measure(core: str, model_bytes: bytes) -> tuple[int, int]:
    """(smallest arena that allocates and invokes, arena_used_bytes()) of the model on `core` under QEMU."""
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
    probe = 2 * derive(model_bytes, core).needed + 65536
    sources = render_all("m", "model.tflite", model_bytes, "-", info, probe, probe, 0.0, None, inputs, outputs,
                         "x86_64")
    sources["model_settings.h"] = probe_settings(sources["model_settings.h"], probe)
    check = run_device_check(core, model_bytes, sources, inputs, outputs, model_facts("m", model_bytes, info, 1, probe))
    return check.arena.bytes, check.arena_used


def lut_model() -> bytes:
    """A FULLY_CONNECTED whose 64x256 filter takes 5 values, LUT-compressed by TFLM's compressor: a TFLM_DECODE
    node (its state in the persistent section) and the decoded filter planned in the arena."""
    from converter.tflite.compression import lut
    from converter.tflite.compression.plan import plan

    b, rng = ModelBuilder(), np.random.default_rng(0)
    x = b.activation((1, 256), 0.05, -3)
    w = b.tensor((64, 256), "INT8", [0.01], 0,
                 rng.choice(np.array([-90, -20, 0, 40, 100], np.int8), (64, 256)).tobytes())
    bias = b.tensor((64,), "INT32", [0.0005], 0, rng.integers(-500, 500, 64).astype("<i4").tobytes())
    y = b.activation((1, 64), 0.2, 5)
    b.op("FULLY_CONNECTED", (x, w, bias), (y,), s.FullyConnectedOptionsT(), "FullyConnectedOptions")
    b.io((x,), (y,))
    model = b.to_bytes()
    return lut.compress_bytes(model, plan(model, {"lut": lambda c: lut.plan_lut(c, 7)}).of("lut"))


def float_io_model() -> bytes:
    """Float in and out: QUANTIZE -> FULLY_CONNECTED -> DEQUANTIZE (the reference kernels' OpData)."""
    b, rng = ModelBuilder(), np.random.default_rng(0)
    x, q = b.tensor((1, 32), "FLOAT32"), b.activation((1, 32), 0.05, -3)
    b.op("QUANTIZE", (x,), (q,))
    w = b.tensor((16, 32), "INT8", [0.01], 0, rng.integers(-100, 100, (16, 32)).astype(np.int8).tobytes())
    bias = b.tensor((16,), "INT32", [0.0005], 0, rng.integers(-500, 500, 16).astype("<i4").tobytes())
    y, z = b.activation((1, 16), 0.2, 5), b.tensor((1, 16), "FLOAT32")
    b.op("FULLY_CONNECTED", (q, w, bias), (y,), s.FullyConnectedOptionsT(), "FullyConnectedOptions")
    b.op("DEQUANTIZE", (y,), (z,))
    b.io((x,), (z,))
    return b.to_bytes()


def _same(core: str, model_bytes: bytes) -> None:
    derived = derive(model_bytes, core)
    assert (derived.needed, derived.used) == measure(core, model_bytes), derived


@pytest.mark.slow  # one QEMU build and run per model, about 10 s each
@pytest.mark.parametrize("name", list(MLPERF))
def test_mlperf_reference_models_on_the_cortex_m4(name, shared_data):
    _same("cortex-m4", (shared_data / "mlperf_tiny" / MLPERF[name]).read_bytes())


@pytest.mark.slow  # five QEMU builds and runs per core
@pytest.mark.parametrize("core", list(LIBRARIES))
def test_random_models_of_every_modelled_operator(core):
    """Random shapes, strides, padding, dilation, int4 and per-channel filters (tests/aot_models.py): the
    scratch rules per core (DSP or plain C) and the temporaries of every kernel's Prepare."""
    _same(core, chain_model(0, int4=True))
    _same(core, lut_model())
    _same(core, float_io_model())
    for seed in (0, 1):
        _same(core, random_model(KINDS, 16, seed))


@pytest.mark.slow  # one QEMU build and run
def test_an_offline_memory_plan_is_placed_first(shared_data):
    """The MLPerf VWW model with the kit's offline plan (55,296 B of tensors instead of TFLM's 73,728 B): TFLM
    places the planned tensors at their offsets and fits the scratch buffers around them."""
    from converter.tflite.memory_plan import plan_memory, with_offline_plan

    model = (shared_data / "mlperf_tiny" / MLPERF["VWW"]).read_bytes()
    _same("cortex-m4", with_offline_plan(model, plan_memory(model).offsets()))


def test_a_random_model_of_the_other_modelled_operators_on_the_cortex_m4():
    """One QEMU build and run (about 10 s): every operator of MORE_KINDS, random shapes and quantization."""
    _same("cortex-m4", random_model(MORE_KINDS, len(MORE_KINDS), 0))


@pytest.mark.slow  # three QEMU builds and runs per core
@pytest.mark.parametrize("core", list(LIBRARIES))
def test_random_models_of_the_other_modelled_operators(core):
    for seed in (1, 2, 3):
        _same(core, random_model(MORE_KINDS, 3 * len(MORE_KINDS), seed))


def _every_other_operator_keras():
    """A Keras model whose int8 conversion has the common operators of MORE_KINDS, as TFLite writes them (a ReLU
    is fused into the operator before it, hence no RELU)."""
    import tensorflow as tf
    import tf_keras as keras

    layers = keras.layers
    inputs = keras.Input((12, 12, 3))
    x = layers.ReLU(6.0)(inputs)                                        # RELU6
    x = layers.ZeroPadding2D(((1, 2), (0, 1)))(x)                       # PAD
    x = layers.Conv2D(8, 3)(x)
    x = layers.Multiply()([layers.Activation("sigmoid")(x), layers.Activation("tanh")(x)])  # LOGISTIC, TANH, MUL
    x = layers.Concatenate()([x, layers.LeakyReLU(0.2)(x)])             # LEAKY_RELU, CONCATENATION
    x = layers.Lambda(lambda t: t * tf.nn.relu6(t + 3.0) / 6.0)(x)      # HARD_SWISH
    x = layers.Permute((2, 1, 3))(x)                                    # TRANSPOSE
    x = layers.Cropping2D(((1, 1), (2, 0)))(x)                          # STRIDED_SLICE
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])  # MEAN, REDUCE_MAX
    return keras.Model(inputs, layers.Dense(3)(x))


def _converted(keras_model, shape) -> bytes:
    from converter import QuantizeSettings
    from converter.inputs.dataset import Dataset
    from converter.stages import quantize as quantize_stage

    x = np.random.default_rng(0).uniform(0, 1, (64, *shape)).astype(np.float32)
    data = Dataset(x_train=x, y_train=np.zeros(64, int), x_calibration=x, x_eval=x[:8], y_eval=np.zeros(8, int),
                   labels=[str(k) for k in range(keras_model.output_shape[-1])])
    return quantize_stage.convert(keras_model, QuantizeSettings(), data)


@pytest.mark.slow  # TensorFlow's converter, then one QEMU build and run per core
@pytest.mark.parametrize("core", list(LIBRARIES))
def test_a_keras_model_of_the_other_operators(core):
    """TFLite's converter's operators: 6,464 / 6,452 B measured on all three cores."""
    from converter.tflite.tflite_model import TfliteModel

    model = _converted(_every_other_operator_keras(), (12, 12, 3))
    parsed = TfliteModel.from_bytes(model)
    assert [parsed.operator_name(op) for op in parsed.operators] == [
        "RELU6", "PAD", "CONV_2D", "LOGISTIC", "TANH", "MUL", "LEAKY_RELU", "CONCATENATION", "HARD_SWISH", "TRANSPOSE",
        "STRIDED_SLICE", "MEAN", "REDUCE_MAX", "CONCATENATION", "FULLY_CONNECTED"]
    _same(core, model)


@pytest.mark.slow  # TensorFlow's converter, then two QEMU builds and runs per core
@pytest.mark.parametrize("core", ["cortex-m4", "cortex-m0plus"])
def test_a_keras_model_with_global_average_pooling(core):
    """Keras's GlobalAveragePooling2D converts to MEAN (reduce.cc's OpDataReduce, its three scratch requests and
    six temporaries): the MobileNet-like model of tests/test_memory_plan.py, as converted and with the kit's
    offline plan."""
    from converter.tflite.memory_plan import plan_memory, with_offline_plan

    from .test_memory_plan import _mobilenet_like

    model = _converted(_mobilenet_like(), (24, 24, 3))
    _same(core, model)
    _same(core, with_offline_plan(model, plan_memory(model).offsets()))
