"""A .tflite as the recipe's model: only flatbuffer stages run, and the artifacts are the same set.

The MLPerf Tiny reference models are the inputs users start from most often. The KWS model runs in
the default suite; the other four are slow (bigger models, more arena bisection).
"""
import json

import numpy as np
import pytest

from converter import KitError, convert, parse_recipe, run_tflm

MODELS = {
    "kws": "keyword_spotting/kws_ref_model.tflite",
    "ad": "anomaly_detection/ad01_int8.tflite",
    "ic": "image_classification/pretrainedResnet_quant.tflite",
    "vww": "visual_wake_words/vww_96_int8.tflite",
    "sww": "streaming_wakeword/str_ww_ref_model.tflite",
}
ARTIFACTS = {"model.tflite", "model_data.h", "model_data.cc", "model_settings.h", "model_ops.h", "golden_vectors.h",
             "golden_vectors.cc", "golden.npz", "report.md", "manifest.json", "aot"}  # aot/: the model compiled to C


def _recipe(shared_data, key, tmp_path, **changes):
    data = {"name": f"ref_{key}", "model": {"path": str(shared_data / "mlperf_tiny" / MODELS[key])},
            "data": {"random": {"samples": 12, "low": -1.0, "high": 1.0}},
            "compress": {"strip_metadata": True}, "golden": {"vectors": 3}} | changes
    return parse_recipe(data, base_dir=tmp_path)


def _check_artifacts(out, source_bytes):
    assert {p.name for p in out.iterdir()} == ARTIFACTS
    manifest = json.loads((out / "manifest.json").read_text())
    summary = manifest["summary"]
    assert summary["source"] == "tflite" and summary["float_quality"] == "—"
    assert [s["stage"] for s in manifest["stages"]] == ["compress"]
    assert summary["bit_exact_on_tflm"] and manifest["validation"]["tflm_vs_tflm_uncompressed"]["equal"] == 3
    model_bytes = (out / "model.tflite").read_bytes()
    assert len(model_bytes) < len(source_bytes)  # stripped
    settings = (out / "model_settings.h").read_text()
    assert f"kTensorArenaSize = {summary['tensor_arena_size']}" in settings.replace("constexpr int ", "")
    golden = np.load(out / "golden.npz")
    outputs = run_tflm(model_bytes, [golden["input_0"]])
    assert np.array_equal(outputs[0], golden["output_0"])
    assert "no float or per-stage Keras quality" in (out / "report.md").read_text()


def _convert_reference(shared_data, key, tmp_path):
    out = tmp_path / key
    manifest = convert(_recipe(shared_data, key, tmp_path), out)
    _check_artifacts(out, (shared_data / "mlperf_tiny" / MODELS[key]).read_bytes())
    return manifest


def test_kws_reference_tflite_converts_to_the_full_artifact_set(shared_data, tmp_path):
    manifest = _convert_reference(shared_data, "kws", tmp_path)
    assert manifest["summary"]["mode"] == "int8"


@pytest.mark.slow
@pytest.mark.parametrize("key", ["ad", "ic", "vww", "sww"])
def test_other_reference_tflites_convert(shared_data, tmp_path, key):
    _convert_reference(shared_data, key, tmp_path)


def test_tflite_source_keeps_labels_quality_on_tflm(shared_data, tmp_path):
    """With labeled data, the TFLM accuracy of the given model is measured (there is no float one)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (6, 49, 10, 1)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_test=x, y_test=np.arange(6) % 12, x_train=x)
    recipe = _recipe(shared_data, "kws", tmp_path, data={"npz": "d.npz"}, compress=None)
    manifest = convert(recipe, tmp_path / "out")
    assert manifest["summary"]["float_quality"] == "—"
    assert manifest["summary"]["quantized_quality"].endswith("%")
    assert manifest["stages"] == [] and "tflm_vs_tflm_uncompressed" not in manifest["validation"]


def test_a_broken_tflite_source_is_refused_before_anything_is_written(tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"TFL3" + bytes(60))
    recipe = parse_recipe({"name": "broken", "model": {"path": "broken.tflite"}, "data": {"random": {}}},
                          base_dir=tmp_path)
    with pytest.raises(KitError):
        convert(recipe, tmp_path / "out")
    assert not (tmp_path / "out").exists()
