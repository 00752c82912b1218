"""PRUNE encoding and int4 filters: round trips against TFLM (the golden runtime), byte for byte."""

import numpy as np
import pytest

from converter.errors import KitError
from converter import CompressSettings, QuantizeSettings
from converter.stages import compress as compress_stage
from converter.stages import compressors
from converter.stages import run_stage
from converter.stages import quantize as quantize_stage
from converter.tflite.compression import int4, prune
from converter.tflite.compression.candidates import Candidate
from converter.tflite.model import read_model
from converter.tflite.tflite_model import TfliteModel
from converter.tflm.arena import measure_arena
from converter.tflm.runners import quantize, run_tflm
from tests.conftest import tiny_classifier, tiny_dataset


def _candidate(array, zero_points=(0,), axis=None) -> Candidate:
    return Candidate(0, 0, "t", np.asarray(array, np.int8), len(zero_points), axis, tuple(zero_points), ("X",))


# --- the encoder against the decoder's layout (decode_state_prune.cc) ---------------------------

def test_bitmask_is_most_significant_bit_first():
    """Element i is bit 7 - i % 8 of byte i // 8; 1 takes the next table value, 0 the zero point."""
    array = [5, 0, 6, 0, 0, 7, 0, 8, 0, 9]       # kept: 0, 2, 5, 7 | 9
    encoded, ancillary = prune.encode_prune(_candidate(array))
    assert encoded == bytes([0b10100101, 0b01000000])
    assert ancillary[:5] == bytes([2, 1, 0, 0, 1])  # type PRUNE, DCM version 1, reserved, PRUNE version 1
    assert len(ancillary) == 16 + 5 and list(np.frombuffer(ancillary[16:], np.int8)) == [5, 6, 7, 8, 9]


@pytest.mark.parametrize("axis", [0, 3])
def test_per_channel_zero_points_round_trip(axis):
    """Non-zero per-channel zero points: pruned elements hold their own channel's zero point, picked as
    the decoder picks it (channel-major for axis 0, interleaved for the last axis)."""
    rng = np.random.default_rng(axis)
    shape = (4, 3, 3, 4)
    zeros = (-3, 0, 5, -128)
    array = rng.integers(-128, 128, shape).astype(np.int8)
    per_element = prune.element_zero_points(shape, zeros, axis).reshape(shape)
    array = np.where(rng.uniform(size=shape) < 0.6, per_element, array).astype(np.int8)
    channel_of = np.indices(shape)[axis]   # each element's index along the quantized axis
    assert np.array_equal(per_element, np.asarray(zeros)[channel_of])
    candidate = _candidate(array, zeros, axis)
    encoded, ancillary = prune.encode_prune(candidate)
    assert np.array_equal(prune.decode_prune(encoded, ancillary, shape, zeros, axis), array)
    kept = int(np.sum(array != per_element))
    assert len(ancillary) == 16 + kept and len(encoded) == (array.size + 7) // 8


def test_all_zero_points_zero_uses_one_zero_point():
    assert list(prune.element_zero_points((2, 2), (0, 0), 0)) == [0, 0, 0, 0]
    assert list(prune.element_zero_points((2, 2), (7,), None)) == [7, 7, 7, 7]


def test_int4_nibbles_follow_tflite_unpacking():
    """tensor_utils::UnpackDenseInt4IntoInt8: {0x12, 0x34} -> {2, 1, 4, 3}; odd counts end in a low nibble."""
    assert int4.pack_nibbles(np.array([2, 1, 4, 3], np.int8)) == bytes([0x12, 0x34])
    values = np.array([-8, 7, -1, 0, 3], np.int8)
    assert np.array_equal(int4.unpack_nibbles(int4.pack_nibbles(values), 5), values)


# --- on TFLM -----------------------------------------------------------------------------------

def _sparse(model, sparsity: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            kernel = layer.weights[0].numpy()
            kernel[rng.uniform(size=kernel.shape) < sparsity] = 0
            layer.weights[0].assign(kernel)
    return model


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


@pytest.fixture(scope="module")
def sparse_bytes(data) -> bytes:
    return quantize_stage.convert(_sparse(tiny_classifier(), 0.75), QuantizeSettings(), data)


def _outputs(model_bytes: bytes, x) -> np.ndarray:
    info = read_model(model_bytes)
    return run_tflm(model_bytes, [quantize(x, info.inputs[0])])[0]


def test_pruned_model_shrinks_and_decodes_byte_identical_on_tflm(sparse_bytes, data):
    result = run_stage("compress", sparse_bytes, CompressSettings(lut=False, prune=True), data)
    record = result.record
    rows = {row["name"].split("/")[1]: row for row in record["tensors"]}
    # the 288-byte conv kernel would save less than a DECODE operator costs: left alone
    assert set(rows) == {"hidden"} and rows["hidden"]["method"] == "prune"
    assert rows["hidden"]["sparsity"] > 0.7 and rows["hidden"]["bytes_after"] < rows["hidden"]["bytes_before"] * 0.45
    assert len(result.model) < len(sparse_bytes) and read_model(result.model).operator_counts["TFLM_DECODE"] == 1
    assert record["verification"]["equal"] == record["verification"]["total"] == len(data.x_eval)
    # independently of the stage's check
    assert np.array_equal(_outputs(sparse_bytes, data.x_eval), _outputs(result.model, data.x_eval))


def test_a_wrong_bitmask_is_caught(sparse_bytes, data, monkeypatch):
    """One flipped mask bit shifts every later value: TFLM's outputs change and the stage refuses."""
    real = prune.encode_prune

    def flipped(candidate):
        encoded, ancillary = real(candidate)
        return bytes([encoded[0] ^ 0x80]) + encoded[1:], ancillary

    monkeypatch.setattr(compressors, "encode_prune", flipped)
    with pytest.raises(KitError, match="PRUNE-encoded model differs"):
        run_stage("compress", sparse_bytes, CompressSettings(lut=False, prune=True), data)


def test_prune_and_lut_each_take_the_tensors_they_store_smaller(data):
    """A clustered layer goes to LUT, a sparse one to PRUNE, in one model; TFLM stays byte-identical."""
    model = tiny_classifier()
    rng = np.random.default_rng(3)
    conv, hidden = model.get_layer("conv"), model.get_layer("hidden")
    conv.weights[0].assign(np.linspace(-0.3, 0.3, 2)[rng.integers(0, 2, conv.weights[0].shape)].astype(np.float32))
    _sparse(keras_only(hidden), 0.9)
    model_bytes = quantize_stage.convert(model, QuantizeSettings(per_channel=False), data)
    chosen = compress_stage.plan_encodings(model_bytes, CompressSettings(prune=True))
    methods = {c.name.split("/")[1]: ("lut" if c in chosen.of("lut") else "prune") for c in chosen.choices}
    assert methods["conv"] == "lut" and methods["hidden"] == "prune"
    result = run_stage("compress", model_bytes, CompressSettings(prune=True), data)
    assert len(result.model) < len(model_bytes)
    assert np.array_equal(_outputs(model_bytes, data.x_eval), _outputs(result.model, data.x_eval))


def keras_only(layer):
    """A stand-in with .layers so _sparse prunes a single layer."""
    return type("One", (), {"layers": [layer]})()


@pytest.mark.parametrize("per_channel", [False, True])
def test_int4_filters_match_their_int8_twin_on_tflm(data, per_channel):
    import tf_keras as keras

    model = keras.Sequential([
        keras.layers.Input((8, 8, 4)),
        keras.layers.DepthwiseConv2D(3, activation="relu", name="depthwise"),
        keras.layers.Conv2D(8, 1, activation="relu", name="pointwise"),
        keras.layers.Flatten(),
        keras.layers.Dense(3, name="logits"),
    ])
    model_bytes = quantize_stage.convert(model, QuantizeSettings(per_channel=per_channel), data)
    twin, choices = int4.requantize(model_bytes)
    packed = int4.pack(twin, choices)
    names = {c.name.split("/")[1] for c in choices}
    # TFLM's FULLY_CONNECTED takes int4 filters only when they are quantized per tensor
    assert names == ({"depthwise", "pointwise"} if per_channel else {"depthwise", "pointwise", "logits"})
    types = {TfliteModel.tensor_name(t): TfliteModel.tensor_type(t) for t in TfliteModel.from_bytes(packed).tensors}
    assert all(types[c.name] == "INT4" for c in choices)
    assert len(packed) < len(model_bytes)
    twin_out, int4_out = _outputs(twin, data.x_eval), _outputs(packed, data.x_eval)
    assert np.array_equal(twin_out, int4_out)
    # the twin really is a 4-bit model: its filters hold at most 15 levels per channel
    twin_model = TfliteModel.from_bytes(twin)
    for c in choices:
        values = twin_model.constant(twin_model.tensors[c.tensor])
        assert values.min() >= -7 and values.max() <= 7


def test_int4_stage_verifies_against_the_twin(data):
    model_bytes = quantize_stage.convert(tiny_classifier(), QuantizeSettings(per_channel=False), data)
    result = run_stage("compress", model_bytes, CompressSettings(lut=False, int4=True), data)
    record = result.record
    assert result.reference is not None and result.reference != model_bytes
    assert record["verification"]["equal"] == record["verification"]["total"] > 0
    assert {row["name"].split("/")[1] for row in record["int4"]["tensors"]} == {"conv", "hidden", "logits"}
    assert 0 <= record["int4"]["top1_agreement_vs_int8"] <= 1
    assert len(result.model) < len(model_bytes) * 0.7
    # the arena holds the unpacked filter (TFLM's scratch buffer), so it is measured, not assumed
    x = [quantize(data.x_eval[:1], read_model(model_bytes).inputs[0])]
    assert measure_arena(result.model, x) >= measure_arena(model_bytes, x)


@pytest.mark.slow
def test_pruned_and_int4_demo_runs_bit_exact_in_host_firmware(tmp_path):
    """The default recipe with PRUNE (the 50%-sparse dense kernel) and int4 (the conv filters), built
    against TFLM at the pinned commit (TFLM_ROOT), passes its golden vectors in the host firmware."""
    import shutil

    import yaml

    from converter.flows.firmware import render_firmware
    from converter.flows.flash import flash
    from tests.conftest import REPO, run_kit
    from tests.firmware_tools import HOST_LIB, tflm_root

    root = tflm_root(HOST_LIB)
    shutil.which("make") or pytest.skip("needs GNU make")
    recipe = yaml.safe_load((REPO / "models/recipes/default.yaml").read_text())
    for section in ("model", "data"):
        recipe[section]["builder"] = str(REPO / "models/digits.py") + ":" + recipe[section]["builder"].split(":")[1]
    recipe["compress"] = {"lut": False, "prune": True, "int4": True}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = run_kit("convert", tmp_path / "recipe.yaml", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    record = json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"][-1]
    assert {row["method"] for row in record["tensors"]} == {"prune"} and record["int4"]["tensors"]
    render_firmware("host", tmp_path / "out", tmp_path / "host")
    summary = flash(tmp_path / "host", str(root))
    count = np.load(tmp_path / "out" / "golden.npz")["output_0"].shape[0]
    assert summary["exit_status"] == 0 and (summary["passed"], summary["total"]) == (count, count), summary


def test_a_pruned_constant_with_a_non_zero_zero_point_decodes_byte_identical():
    """An activation-like constant (ADD's second operand) has zero point -128: its zeros are stored as
    -128, the encoder counts them as pruned (sparsity), and TFLM must write -128 back, not 0."""
    import tensorflow as tf
    import tf_keras as keras

    from converter.inputs.dataset import Dataset

    rng = np.random.default_rng(0)
    offset = rng.uniform(0.2, 1.0, (1, 16, 16, 4)).astype(np.float32)
    offset[rng.uniform(size=offset.shape) < 0.8] = 0
    inputs = keras.layers.Input((16, 16, 4))
    x = keras.layers.Lambda(lambda t: t + tf.constant(offset), name="offset")(inputs)
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, name="conv")(x))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    x_data = rng.uniform(0, 1, (40, 16, 16, 4)).astype(np.float32)
    data = Dataset(x_train=None, y_train=None, x_calibration=x_data, x_eval=x_data, y_eval=None, labels=None)
    model_bytes = quantize_stage.convert(model, QuantizeSettings(), data)

    result = run_stage("compress", model_bytes, CompressSettings(lut=False, prune=True), data)
    rows = {row["name"].split("/")[1]: row for row in result.record["tensors"]}
    assert set(rows) == {"offset"} and rows["offset"]["sparsity"] > 0.75
    assert np.array_equal(_outputs(model_bytes, x_data), _outputs(result.model, x_data))
