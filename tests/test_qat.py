"""Quantization-aware training stages: QAT, PQAT (prune-preserving), CQAT (cluster-preserving)."""

import numpy as np
import pytest

from converter.errors import KitError
from converter import ClusterSettings, PruneSettings, QatSettings, QuantizeSettings, TrainSettings
from converter.recipe import parse_recipe
from converter.stages import run_stage
from converter.stages import quantize as quantize_stage
from tests.conftest import tiny_classifier, tiny_dataset


def _int8_kernel(model_bytes: bytes, layer: str) -> np.ndarray:
    """The int8 weights of a Keras layer in the flatbuffer (QAT names it e.g. 'quant_hidden')."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = model_editor.read(model_bytes)
    found = [t.array for t in model.subgraphs[0].tensors
             if t.buffer is not None and t.buffer.data and t.dtype == schema.TensorType.INT8
             and any(part.removeprefix("quant_") == layer for part in t.name.split("/"))]
    assert len(found) == 1, [t.name for t in model.subgraphs[0].tensors]
    return found[0]


@pytest.fixture(scope="module")
def trained():
    data = tiny_dataset()
    model = run_stage("train", tiny_classifier(), TrainSettings(epochs=4, learning_rate=0.01), data).model
    return model, data


def test_qat_fine_tunes_and_converts(trained):
    model, data = trained
    result = run_stage("qat", model, QatSettings(epochs=1), data)
    assert result.record["stage"] == "qat" and result.record["scheme"] == "default"
    assert len(result.record["loss_per_epoch"]) == 1
    model_bytes = run_stage("quantize", result.model, QuantizeSettings(), data).model
    quality = quantize_stage.tflite_quality(model_bytes, data)
    assert quality["eval_accuracy"] >= 0.9  # the learnable synthetic task survives int8 on TFLM


def test_pqat_keeps_the_zeros(trained):
    model, data = trained
    pruned = run_stage("prune", model, PruneSettings(final_sparsity=0.6, schedule="constant", epochs=1), data).model
    result = run_stage("qat", pruned, QatSettings(scheme="prune_preserve", epochs=1), data)
    kernel = _int8_kernel(quantize_stage.convert(result.model, QuantizeSettings(), data), "hidden")
    assert np.mean(kernel == 0) >= 0.55


def test_cqat_keeps_the_clusters(trained):
    model, data = trained
    clustered = run_stage("cluster", model, ClusterSettings(clusters=4, per_channel=False, preserve_sparsity=False,
                                                   epochs=1), data).model
    result = run_stage("qat", clustered, QatSettings(scheme="cluster_preserve", epochs=1), data)
    kernel = _int8_kernel(quantize_stage.convert(result.model, QuantizeSettings(), data), "hidden")
    assert len(np.unique(kernel)) <= 4
    # without the preserving scheme, plain QAT moves the weights off the 4 centroids
    plain = run_stage("qat", clustered, QatSettings(scheme="default", epochs=1, learning_rate=0.01), data)
    assert len(np.unique(_int8_kernel(quantize_stage.convert(plain.model, QuantizeSettings(), data), "hidden"))) > 4


def test_qat_recipe_settings_are_checked():
    base = {"name": "m", "model": {"path": "m.h5"}, "data": {"npz": "d.npz"}}
    recipe = parse_recipe(base | {"stages": [{"qat": {"scheme": "prune_cluster_preserve"}}]})
    assert recipe.stages[0].kind == "qat"
    with pytest.raises(KitError, match=r"stages\[0\]\.qat\.scheme"):
        parse_recipe(base | {"stages": [{"qat": {"scheme": "magic"}}]})
