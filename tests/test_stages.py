"""Each stage on a tiny model: same shape (model + settings in, model + record out), real effect."""
import numpy as np
import pytest

from converter import ClusterSettings, PruneSettings, QuantizeSettings, TrainSettings
from converter.stages import run_stage
from converter.tflite.model import read_model
from converter.stages.weights import kernel_of

from .conftest import tiny_classifier, tiny_dataset


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


@pytest.fixture(scope="module")
def trained(data):
    from converter import tf_env

    tf_env.reseed(0)  # the initial weights: unseeded, an unlucky draw quantized to 67% (seen once in two runs)
    result = run_stage("train", tiny_classifier(), TrainSettings(epochs=8, learning_rate=0.01), data, seed=0)
    return result


def test_train_learns_and_records_quality(trained):
    record = trained.record
    assert record["stage"] == "train"
    assert record["quality_after"]["eval_accuracy"] > 0.9
    assert record["loss_per_epoch"][-1] < record["loss_per_epoch"][0]
    assert record["seconds"] > 0


def test_training_reports_each_epoch_to_its_sink(data):
    from converter.progress import ConsoleSink, Epoch, EventLog, fan_out

    heard, lines = EventLog(), []
    run_stage("train", tiny_classifier(), TrainSettings(epochs=3), data, seed=0,
                          events=fan_out(heard, ConsoleSink(lines.append)))
    assert [(e.stage, e.n, e.of) for e in heard] == [("train", i, 3) for i in (1, 2, 3)]
    assert all(isinstance(e, Epoch) and e.loss > 0 for e in heard)
    assert [line.split(",")[0].strip() for line in lines] == [f"train: epoch {i}/3" for i in (1, 2, 3)]


def test_every_stage_record_is_built_by_its_kind(trained):
    """Keras stages record quality and weights; the record reads like its manifest dict."""
    from converter.stages.base import StageRecord

    record = trained.record
    assert isinstance(record, StageRecord) and record.kind == "train"
    as_dict = record.as_dict()
    assert list(as_dict)[:3] == ["stage", "settings", "loss_per_epoch"]
    assert list(as_dict)[-5:] == ["quality_before", "quality_after", "sparsity_after", "layers", "seconds"]
    assert record["quality_after"] == record.quality_after


def test_prune_reaches_target_sparsity_and_strips_wrappers(trained, data):
    result = run_stage("prune", trained.model, PruneSettings(final_sparsity=0.6, epochs=2), data, seed=0)
    assert all("prune" not in type(layer).__name__.lower() for layer in result.model.layers)
    for row in result.record["layers"]:
        assert row["sparsity"] == pytest.approx(0.6, abs=0.03), row
    assert result.record["quality_before"]["eval_accuracy"] == trained.record["quality_after"]["eval_accuracy"]


def test_structured_2_4_pruning_leaves_two_of_every_four(trained, data):
    settings = PruneSettings(structured_2_4=True, schedule="constant", final_sparsity=0.5, epochs=1)
    result = run_stage("prune", trained.model, settings, data, seed=0)
    kernel = kernel_of(result.model.get_layer("hidden"))
    # TF-MOT groups 4 consecutive input weights of each output unit.
    groups = np.moveaxis(kernel, -1, 0).reshape(kernel.shape[-1], -1, 4)
    assert (np.count_nonzero(groups, axis=-1) <= 2).all()


def test_per_channel_clustering_keeps_zeros_and_limits_values(trained, data):
    pruned = run_stage("prune", trained.model, PruneSettings(final_sparsity=0.5, epochs=1), data, seed=0).model
    settings = ClusterSettings(clusters=4, per_channel=True, preserve_sparsity=True, epochs=1)
    result = run_stage("cluster", pruned, settings, data, seed=0)
    conv = next(row for row in result.record["layers"] if row["layer"] == "conv")
    assert conv["max_unique_per_channel"] <= 4
    assert conv["sparsity"] >= 0.45  # zeros survived clustering
    dense = next(row for row in result.record["layers"] if row["layer"] == "hidden")
    assert dense["unique_values"] <= 4 + 1


def test_quantize_produces_full_integer_model(trained, data):
    result = run_stage("quantize", trained.model, QuantizeSettings(calibration_samples=32), data)
    info = read_model(result.model)
    assert info.inputs[0].type == "INT8" and info.outputs[0].type == "INT8"
    assert "QUANTIZE" not in info.operators and "DEQUANTIZE" not in info.operators
    assert result.record["tflite_bytes"] == len(result.model)
    assert result.record["calibration_samples_used"] == 32
    float_accuracy = result.record["quality_before"]["eval_accuracy"]
    assert result.record["quality_after"]["eval_accuracy"] >= float_accuracy - 0.05
    assert result.record["quality_after"]["runtime"] == "tflm"


def test_too_many_clusters_for_a_tiny_layer_is_a_clear_error():
    from converter.errors import KitError

    from .conftest import tiny_dataset

    # 3x3x1 kernels: after 50% pruning a channel has ~2 weights of each sign, fewer than k-means++ needs.
    data = tiny_dataset(input_shape=(8, 8, 1))
    pruned = run_stage("prune", tiny_classifier((8, 8, 1)), PruneSettings(final_sparsity=0.5, epochs=1), data, 0)
    with pytest.raises(KitError, match="use fewer clusters"):
        run_stage("cluster", pruned.model, ClusterSettings(clusters=4, epochs=1), data, 0)
