"""LUT- and PRUNE-compressed models (the kit's `compress` stage: TFLM_DECODE operators) through the AOT runtime:
the tensors stay compressed in the generated C and are decoded into the buffer before use; every output byte
must equal TFLM's (its DECODE kernel). Also the float interfaces (QUANTIZE float32 -> int8, DEQUANTIZE ->
float32), which share the kernel file. tests/aot_compressed.py writes the models."""
import shutil

import numpy as np
import pytest

from converter.aot import generate
from converter.aot.validate import validate_on_host
from converter.errors import KitError
from tests.aot_compressed import clustered_model, compress_all, decoder_model, float_io_model, typed_inputs
from tests.aot_models import random_inputs
from tests.test_aot import cmsis_root

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                reason="needs a host C compiler (gcc) to build the AOT code")


def _identical(model: bytes, inputs) -> bool:
    """The host build's outputs equal TFLM's (no trace rebuild: the sabotage tests only need the verdict)."""
    import tempfile
    from pathlib import Path

    from converter.aot.validate import build_host, run_host
    from converter.tflm.runners import run_model

    program = generate(model)
    with tempfile.TemporaryDirectory() as folder:
        ours = run_host(build_host(program, Path(folder)), program, inputs)
    theirs = run_model(model, inputs, "tflm").outputs
    return all(o.tobytes() == np.asarray(t, o.dtype).tobytes() for o, t in zip(ours, theirs))


def _passes(model: bytes, seed: int, vectors: int = 3, cmsis=None) -> str:
    result = validate_on_host(model, generate(model), random_inputs(model, vectors, seed), cmsis_root=cmsis)
    assert result.passed, f"seed {seed}: {result.line()}"
    return result.line()


@pytest.mark.parametrize("seed", range(3))
def test_decoder_gives_tflms_bytes_on_random_tables(seed):
    """The decoded tensors are model outputs (through RESHAPE): LUT with every index width 1..7, one table
    or one per channel on the first or the last axis, and PRUNE with per-channel zero points."""
    model, counts = decoder_model(seed, 10)
    assert counts["lut"] and counts["prune"]
    _passes(model, seed, vectors=2)


def test_every_width_and_layout_is_drawn():
    """The random tables above do reach every index width (the fuzz is not vacuous)."""
    widths = set()
    for seed in range(3):
        widths |= set(decoder_model(seed, 10)[1]["bits"])
    assert widths == set(range(1, 8))


@pytest.mark.parametrize("seed", range(2))
def test_compressed_weights_bit_identical_portable(seed):
    """Clustered, sparse CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED filters (per tensor and per channel),
    int32 biases (TFLM's LUT compressor) and a constant ADD operand, LUT or PRUNE: decoded before use."""
    model, counts = compress_all(clustered_model(12, seed), seed)
    assert counts["lut"] and counts["prune"]
    _passes(model, seed)


def test_compressed_weights_bit_identical_cmsis_nn():
    root = cmsis_root()
    if root is None:
        pytest.skip("needs CMSIS-NN sources (set CMSIS_NN_ROOT to a clone of ARM-software/CMSIS-NN)")
    model, _ = compress_all(clustered_model(12, 5), 5)
    _passes(model, 5, cmsis=root)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 30))
def test_compressed_fuzz_many_seeds(seed):
    _passes(compress_all(clustered_model(12, seed), seed)[0], seed)
    _passes(decoder_model(seed, 12)[0], seed, vectors=2)


@pytest.mark.parametrize("sabotage", [
    ("(7 - (j & 7))", "(j & 7)"),                                  # PRUNE: bits least significant first
    ("if (++channel == (uint32_t)p->channels) channel = 0;", ""),  # LUT: one table for every element
    ("if (++channel == p->channels) channel = 0;", ""),            # PRUNE: one zero point for every element
    ("16u - (at & 7u) - bits", "16u - (at & 7u) - bits - 1u"),     # LUT: indices one bit off
])
def test_a_wrong_decoder_fails(monkeypatch, sabotage):
    """The check can fail: each plausible decoder mistake gives other bytes than TFLM's DECODE."""
    from converter.aot import emit

    original = emit.kernel_sources

    def broken() -> dict[str, str]:
        files = dict(original())
        assert sabotage[0] in files["aot_kernels_decode.c"]
        files["aot_kernels_decode.c"] = files["aot_kernels_decode.c"].replace(sabotage[0], sabotage[1])
        return files

    monkeypatch.setattr(emit, "kernel_sources", broken)
    model, _ = decoder_model(1, 10)
    assert not _identical(model, random_inputs(model, 2, 1))


def test_compressed_tensors_stay_compressed_and_decode_into_the_plan():
    """The generated C holds indices and tables (not the decoded weights); each decoded tensor has a place in
    the buffer that lives from its decoding to its consumer."""
    model, _ = compress_all(clustered_model(4, 3), 3, lut=1.0)
    program = generate(model)
    source = program.files["aot_model.c"]
    assert "aot_decode_lut(" in source and "_indices[" in source and "_table[" in source
    decoded = [o for o in program.operators if o.kind == "TFLM_DECODE"]
    assert decoded and all(o.output in program.plan().locations for o in decoded)
    assert any(".filter = (const int8_t*)AOT_T" in line for line in source.splitlines())


@pytest.mark.parametrize("zero_point", [0, 3])
def test_prune_per_channel_with_one_zero_point_is_broadcast_as_tflm_does(zero_point):
    """Per-channel int8 weights may carry one zero point for all their scales (the converter's space saving;
    `optimize` trial 7 of bench/optimize_aot.md's KWS run had such a PRUNE filter): TFLM's allocator copies
    zero_point[0] to every channel, so the decoded bytes use it everywhere. The AOT generator refused it."""
    from tests.aot_compressed import _encode_forced
    from tests.aot_models import ModelBuilder

    b, rng = ModelBuilder(), np.random.default_rng(7)
    x, y = b.activation((1, 2), 0.5, 0), b.activation((1, 2), 0.5, 0)
    b.op("RELU", (x,), (y,))
    b.io((x,), (y,))
    values = rng.integers(-127, 128, (4, 6))
    values[rng.random(values.shape) < 0.7] = zero_point
    t = b.tensor((4, 6), "INT8", [0.01, 0.02, 0.03, 0.04], zero_point, values.astype(np.int8).tobytes())
    out = b.activation((1, 24), 1.0, 0)
    b.op("RESHAPE", (t, b.tensor((2,), "INT32", data=np.array([1, 24], "<i4").tobytes())), (out,))
    b.io((), (out,))
    b.model.subgraph.tensors[t].quantization.zeroPoint = [zero_point]   # 4 scales, 1 zero point
    model, counts = _encode_forced(b.to_bytes(), {t: 1}, np.random.default_rng(4))  # draws 0.94 >= 0.6: PRUNE
    assert counts["prune"] == 1
    _passes(model, 0, vectors=1)


def test_an_encoding_without_a_decoder_is_refused_with_the_way_out():
    """A Huffman-encoded tensor (DCM type 1) is outside the AOT set: one line naming it and `runtime: tflm`."""
    from converter.tflite.tflite_model import TfliteModel

    model, _ = decoder_model(0, 2)
    parsed = TfliteModel.from_bytes(model)
    ancillary = [t for t in parsed.subgraph.tensors if parsed.tensor_name(t).endswith("_ancillary") or
                 (parsed.data(t) is not None and len(parsed.data(t)) >= 16 and parsed.tensor_type(t) == "UINT8")]
    buffer = parsed.buffers[ancillary[-1].buffer]
    data = np.asarray(buffer.data, np.uint8).copy()
    data[0] = 1
    buffer.data = data
    with pytest.raises(KitError) as error:
        generate(parsed.to_bytes())
    text = str(error.value)
    assert "TFLM_DECODE" in text and "Huffman" in text and "runtime: tflm" in text


@pytest.mark.parametrize("seed", range(2))
def test_float_interfaces_quantize_and_dequantize_bit_identical(seed):
    """int8_io: false models: QUANTIZE float32 -> int8 at the input, DEQUANTIZE int8/int16 -> float32 at the
    output, float bytes identical to TFLM's on rounding ties and saturating inputs."""
    model = float_io_model(seed, 6)
    program = generate(model)
    assert {t.dtype for t in program.inputs} == {"float32", "int8", "int16"}
    assert {t.dtype for t in program.outputs} == {"float32"}
    result = validate_on_host(model, program, typed_inputs(model, 4, seed))
    assert result.passed, result.line()


@pytest.mark.parametrize("sabotage", [
    ("if (q - whole >= 0.5f) r += 1;", "if (q - whole > 0.5f) r += 1;"),   # ties rounded toward zero
    ("p->scale * (float)((int32_t)in[i] - p->zero_point)",
     "(p->scale * (float)in[i] - p->scale * (float)p->zero_point)"),    # two roundings
])
def test_a_wrong_float_conversion_fails(monkeypatch, sabotage):
    from converter.aot import emit

    original = emit.kernel_sources

    def broken() -> dict[str, str]:
        files = dict(original())
        assert sabotage[0] in files["aot_kernels_decode.c"]
        files["aot_kernels_decode.c"] = files["aot_kernels_decode.c"].replace(sabotage[0], sabotage[1])
        return files

    monkeypatch.setattr(emit, "kernel_sources", broken)
    model = float_io_model(0, 6)
    assert not _identical(model, typed_inputs(model, 4, 0))
