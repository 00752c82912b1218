"""LUT compression (post-quantize `compress` step): bytes shrink, TFLM outputs stay bit-exact."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from converter.errors import KitError
from converter import CompressSettings, QuantizeSettings
from converter.recipe import parse_recipe
from converter.tflm.runners import quantize, run_tflm
from converter.stages import compress as compress_stage
from converter.stages import compressors
from converter.stages import run_stage
from converter.stages import quantize as quantize_stage
from converter.tflite.compression import lut as lut_module
from converter.tflite.model import read_model
from tests.conftest import REPO, run_kit, tiny_classifier, tiny_dataset
from tests.firmware_tools import HOST_LIB, tflm_root


def _clustered(model, values_per_channel: int, seed: int = 0):
    """Give every Dense/Conv kernel at most `values_per_channel` well-separated values per output channel."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if not layer.weights:
            continue
        kernel = layer.weights[0].numpy()  # kernel, or depthwise_kernel
        centroids = np.linspace(-0.3, 0.3, values_per_channel)
        picks = rng.integers(0, values_per_channel, kernel.shape)
        layer.weights[0].assign((centroids[picks] * (1 + 0.1 * np.arange(kernel.shape[-1]))).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def tiny():
    return tiny_classifier(), tiny_dataset()


def _quantized(model, data) -> bytes:
    return quantize_stage.convert(model, QuantizeSettings(), data)


def test_index_bits_is_the_smallest_width():
    assert [lut_module.index_bits(n) for n in (1, 2, 3, 4, 5, 16, 17, 128)] == [1, 1, 2, 2, 3, 4, 5, 7]


def test_clustered_model_shrinks_and_stays_bit_exact(tiny):
    _, data = tiny
    model_bytes = _quantized(_clustered(tiny_classifier(), 4), data)
    result = run_stage("compress", model_bytes, CompressSettings(), data)
    compressed, record = result.model, result.record

    assert len(compressed) < len(model_bytes)
    assert record["bytes_before"] == len(model_bytes) and record["bytes_after"] == len(compressed)
    by_name = {row["name"].split("/")[1]: row for row in record["tensors"]}
    hidden = by_name["hidden"]
    # 4 centroids per channel -> at most 4 int8 values per channel -> 2-bit indices
    assert hidden["index_bits"] == 2 and hidden["max_unique_per_table"] <= 4
    assert hidden["bytes_before"] == 288 * 16 and hidden["bytes_after"] < hidden["bytes_before"] // 3
    assert "TFLM_DECODE" in read_model(compressed).operators
    assert record["verification"]["equal"] == record["verification"]["total"] == len(data.x_eval)

    # Independently of the stage's own check: same bytes out of TFLM on every eval input.
    inputs = [quantize(data.x_eval, read_model(model_bytes).inputs[0])]
    before = run_tflm(model_bytes, inputs)
    after = run_tflm(compressed, inputs)
    assert np.array_equal(before[0], after[0])


def test_planned_sizes_match_tflm_compressor(tiny):
    """The plan's byte counts are what TFLM's own LUT compressor writes for each tensor."""
    from tflite_micro.tensorflow.lite.micro.compression import lut, model_editor, spec

    _, data = tiny
    model_bytes = _quantized(_clustered(tiny_classifier(), 3, seed=1), data)
    choices = compress_stage.plan_encodings(model_bytes, CompressSettings()).of("lut")
    assert choices
    editable = model_editor.read(model_bytes)
    for choice in choices:
        tensor = editable.subgraphs[choice.subgraph].tensors[choice.tensor]
        mode = spec.PerTensor() if choice.axis is None else spec.PerChannel(axis=choice.axis)
        written = lut.LutCompressor().compress(tensor, spec.LookUpTableCompression(choice.bits, mode))
        assert len(written.encoded_data) + len(written.ancillary_data) == choice.bytes_after


@pytest.mark.parametrize("per_channel", [True, False])
def test_layout_follows_the_quantization(per_channel):
    """TFLM's decoder keeps one table per quantization scale: axis 0 (conv, dense), the last axis
    (depthwise), or one table for per-tensor weights. Each must decode bit-exact."""
    import tf_keras as keras

    shape = (6, 6, 64)
    model = keras.Sequential([
        keras.layers.Input(shape),
        keras.layers.DepthwiseConv2D(3, activation="relu", name="depthwise"),
        keras.layers.Conv2D(64, 1, activation="relu", name="pointwise"),
        keras.layers.Flatten(),
        keras.layers.Dense(3, name="logits"),
    ])
    _clustered(model, 2)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, *shape)).astype(np.float32)
    from converter.inputs.dataset import Dataset
    data = Dataset(x_train=None, y_train=None, x_calibration=x, x_eval=x, y_eval=None, labels=None)
    model_bytes = quantize_stage.convert(model, QuantizeSettings(per_channel=per_channel), data)
    result = run_stage("compress", model_bytes, CompressSettings(), data)
    layouts = {row["name"].split("/")[1]: row["layout"] for row in result.record["tensors"]}
    if per_channel:
        assert layouts["depthwise"] == "per_channel(axis=3)" and layouts["pointwise"] == "per_channel(axis=0)"
    else:
        assert set(layouts.values()) == {"per_tensor"} and {"depthwise", "pointwise"} <= set(layouts)
    assert result.record["verification"]["equal"] == result.record["verification"]["total"] == len(x)


def test_unclustered_model_is_left_unchanged(tiny):
    _, data = tiny
    model_bytes = _quantized(tiny_classifier(), data)
    result = run_stage("compress", model_bytes, CompressSettings(), data)
    assert result.model == model_bytes
    assert result.record["tensors"] == [] and "unchanged" in result.record["note"]
    assert {row["name"].split("/")[1] for row in result.record["skipped"]} >= {"conv", "hidden"}


def test_max_index_bits_limits_what_is_compressed(tiny):
    _, data = tiny
    model_bytes = _quantized(_clustered(tiny_classifier(), 4), data)
    result = run_stage("compress", model_bytes, CompressSettings(max_index_bits=1), data)
    assert result.model == model_bytes
    assert any("max_index_bits: 1" in row["reason"] for row in result.record["skipped"])


def test_a_wrong_value_table_is_caught(tiny, monkeypatch):
    """The stage compares TFLM outputs before and after; a corrupted table must fail the run."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    _, data = tiny
    model_bytes = _quantized(_clustered(tiny_classifier(), 4), data)
    real = lut_module.compress_bytes

    def corrupted(model_bytes, choices):
        edited = model_editor.read(real(model_bytes, choices))
        ancillary = next(t for t in edited.subgraphs[0].tensors if (t.name or "").endswith("_ancillary"))
        table = bytearray(ancillary.buffer.data)
        table[lut_module.DCM_BYTES:] = bytes((b + 40) % 256 for b in table[lut_module.DCM_BYTES:])
        ancillary.buffer.data = bytes(table)
        return bytes(edited.build())

    monkeypatch.setattr(lut_module, "compress_bytes", corrupted)
    with pytest.raises(KitError, match="differs from the uncompressed"):
        run_stage("compress", model_bytes, CompressSettings(), data)


def test_recipe_compress_settings_are_checked():
    base = {"name": "m", "model": {"path": "m.h5"}, "data": {"npz": "d.npz"}}
    assert parse_recipe(base).compress is None
    assert parse_recipe(base | {"compress": {"lut": True}}).compress.max_index_bits == 7
    with pytest.raises(KitError, match=r"compress\.max_index_bits"):
        parse_recipe(base | {"compress": {"max_index_bits": 8}})
    with pytest.raises(KitError, match=r"compress\.huffman"):
        parse_recipe(base | {"compress": {"huffman": True}})


@pytest.fixture(scope="module")
def digits_lut(tmp_path_factory) -> Path:
    """The default recipe (train, prune 50%, cluster 16 per channel, int8) plus `compress: {lut: true}`."""
    recipe = yaml.safe_load((REPO / "models/recipes/default.yaml").read_text())
    for section in ("model", "data"):
        recipe[section]["builder"] = str(REPO / "models/digits.py") + ":" + recipe[section]["builder"].split(":")[1]
    recipe["compress"] = {"lut": True}
    folder = tmp_path_factory.mktemp("digits_lut")
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = run_kit("convert", folder / "recipe.yaml", "--out", folder / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "out"


def test_default_recipe_with_lut_shrinks_bit_exact(digits_lut):
    manifest = json.loads((digits_lut / "manifest.json").read_text())
    quantized, compressed = manifest["stages"][-2], manifest["stages"][-1]
    assert (quantized["stage"], compressed["stage"]) == ("quantize", "compress")
    assert manifest["model"]["bytes"] == compressed["bytes_after"] < quantized["tflite_bytes"]
    assert len((digits_lut / "model.tflite").read_bytes()) == compressed["bytes_after"]
    # 16 clusters per channel -> 4-bit indices on the big FULLY_CONNECTED kernel
    assert max(row["bytes_before"] for row in compressed["tensors"]) >= 10_000
    assert all(row["index_bits"] <= 4 and row["bytes_after"] < row["bytes_before"] for row in compressed["tensors"])
    validation = manifest["validation"]
    assert validation["tflm_vs_tflm_uncompressed"]["equal"] == validation["tflm_vs_tflm_uncompressed"]["total"] > 0
    assert compressed["verification"]["equal"] == compressed["verification"]["total"] > 0
    # the arena is measured by running the compressed model, so it holds the decoded tensor
    assert manifest["arena_bytes"] >= compressed["largest_decoded_tensor_bytes"]
    assert "resolver.AddDecode()" in (digits_lut / "model_ops.h").read_text()


def test_lut_model_runs_bit_exact_in_host_firmware(digits_lut, tmp_path):
    root = tflm_root(HOST_LIB)
    shutil.which("make") or pytest.skip("needs GNU make")
    from converter.flows.firmware import render_firmware
    from converter.flows.flash import flash

    render_firmware("host", digits_lut, tmp_path / "host")
    summary = flash(tmp_path / "host", str(root))
    count = np.load(digits_lut / "golden.npz")["output_0"].shape[0]
    assert summary["exit_status"] == 0 and (summary["passed"], summary["total"]) == (count, count), summary


def test_a_model_that_would_grow_is_left_unchanged(tiny, monkeypatch):
    _, data = tiny
    model_bytes = _quantized(_clustered(tiny_classifier(), 4), data)
    real = lut_module.compress_bytes
    monkeypatch.setattr(lut_module, "compress_bytes", lambda b, c: real(b, c) + bytes(len(b)))
    result = run_stage("compress", model_bytes, CompressSettings(), data)
    assert result.model == model_bytes and "would grow" in result.record["note"] and result.record["rejected"]


def test_per_layer_cluster_counts(tiny):
    """cluster.per_layer gives a layer its own count; the others keep `clusters`."""
    from converter import ClusterSettings, TrainSettings
    from converter.stages.weights import weight_stats

    _, data = tiny
    model = run_stage("train", tiny_classifier(), TrainSettings(epochs=2, learning_rate=0.01), data).model
    settings = ClusterSettings(clusters=16, per_layer={"hidden": 3, "logits": 5}, per_channel=False,
                               preserve_sparsity=False, epochs=1)
    result = run_stage("cluster", model, settings, data)
    unique = {row["layer"]: row["unique_values"] for row in weight_stats(result.model)}
    assert unique["hidden"] <= 3 and unique["logits"] <= 5
    assert 5 < unique["conv"] <= 16
    assert result.record["clusters_per_layer"] == {"conv": 16, "hidden": 3, "logits": 5}
    # the quantized, compressed model stores the 3-value layer with 2-bit indices
    compressed = run_stage("compress", _quantized(result.model, data), CompressSettings(), data).record
    bits = {row["name"].split("/")[1]: row["index_bits"] for row in compressed["tensors"]}
    assert bits["hidden"] == 2

    with pytest.raises(KitError, match="per_layer names layer.s. nope"):
        run_stage("cluster", model, settings.model_copy(update={"per_layer": {"nope": 4}}), data)
    with pytest.raises(KitError, match=r"stages\[0\]\.cluster\.per_layer\.hidden"):
        parse_recipe({"name": "m", "model": {"path": "m.h5"}, "data": {"npz": "d.npz"},
                      "stages": [{"cluster": {"per_layer": {"hidden": 1}}}]})


@pytest.fixture(scope="module")
def digits_stripped(tmp_path_factory) -> Path:
    """The default recipe with `compress: {lut: true, strip_metadata: true}`."""
    recipe = yaml.safe_load((REPO / "models/recipes/default.yaml").read_text())
    for section in ("model", "data"):
        recipe[section]["builder"] = str(REPO / "models/digits.py") + ":" + recipe[section]["builder"].split(":")[1]
    recipe["compress"] = {"lut": True, "strip_metadata": True}
    folder = tmp_path_factory.mktemp("digits_stripped")
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = run_kit("convert", folder / "recipe.yaml", "--out", folder / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "out"


def test_strip_metadata_drops_what_tflm_never_reads(digits_lut, digits_stripped):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    lut_only = (digits_lut / "model.tflite").read_bytes()
    stripped = (digits_stripped / "model.tflite").read_bytes()
    manifest = json.loads((digits_stripped / "manifest.json").read_text())
    record = manifest["stages"][-1]
    # same training seed, same LUT tensors: the bytes saved are the strip's alone
    assert len(stripped) == record["bytes_after"] < len(lut_only)
    assert all(saved > 0 for saved in record["strip"]["bytes_saved"].values()), record["strip"]

    model = schema.ModelT.InitFromPackedBuf(stripped, 0)
    subgraph = model.subgraphs[0]
    ends = set(subgraph.inputs) | set(subgraph.outputs)
    assert not model.signatureDefs and not model.description
    assert {m.name.decode() for m in model.metadata or []}.isdisjoint(compress_stage.CONVERTER_METADATA)
    assert all(not t.name for i, t in enumerate(subgraph.tensors) if i not in ends)
    assert all(subgraph.tensors[i].name for i in ends)
    per_channel = [t.quantization for t in subgraph.tensors if t.quantization is not None
                   and t.quantization.scale is not None and len(t.quantization.scale) > 1]
    assert per_channel and all(len(q.zeroPoint) == 1 for q in per_channel)

    # the pipeline's own check, and LiteRT still validated (on the unstripped model)
    validation = manifest["validation"]
    assert validation["tflm_vs_tflm_uncompressed"]["equal"] == validation["tflm_vs_tflm_uncompressed"]["total"] > 0
    assert validation["tflm_vs_litert_reference"]["equal"] == validation["tflm_vs_litert_reference"]["total"]
    # independently: TFLM gives the LUT-only model's bytes on every golden input
    golden = np.load(digits_stripped / "golden.npz")
    inputs = [golden[k] for k in sorted(golden.files) if k.startswith("input")]
    assert np.array_equal(run_tflm(lut_only, inputs)[0],
                          run_tflm(stripped, inputs)[0])


def test_strip_metadata_without_lut_and_a_bad_strip_is_caught(tiny, monkeypatch):
    _, data = tiny
    model_bytes = _quantized(tiny_classifier(), data)
    result = run_stage("compress", model_bytes, CompressSettings(lut=False, strip_metadata=True), data)
    assert len(result.model) < len(model_bytes) and result.record["tensors"] == []
    assert result.record["verification"]["equal"] == result.record["verification"]["total"] > 0

    from tflite_micro.tensorflow.lite.micro.compression import model_editor
    real = compressors.strip

    def scale_dropped(model_bytes):
        # a strip that changes something TFLM does read: the output zero point
        stripped, record = real(model_bytes)
        edited = model_editor.read(stripped)
        output = edited.subgraphs[0].outputs[0]
        output.quantization.zero_points = [output.quantization.zero_points[0] + 7]
        return bytes(edited.build()), record

    monkeypatch.setattr(compressors, "strip", scale_dropped)
    with pytest.raises(KitError, match="stripped model differs"):
        run_stage("compress", model_bytes, CompressSettings(lut=False, strip_metadata=True), data)
