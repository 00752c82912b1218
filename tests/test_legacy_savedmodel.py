"""Issue 18 High 1: a SavedModel in the pre-TF-2.5 layout (no keras_metadata.pb, or an empty one; the layer
configs in saved_model.pb's object graph, where tf_keras's legacy loader reads them) must not run its Lambda in
`convert` or `validate --float-model`: the configs tf_keras would deserialize are read and checked there too.

The fixture is built here: a tf_keras SavedModel whose keras_metadata.pb is moved into the object graph.
"""
import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO
from .test_robustness import lambda_model
from .test_security import assert_cli_error, kit


def to_legacy_layout(folder: Path, empty_metadata: bool) -> None:
    """Write each keras_metadata.pb node's JSON into its object-graph node, then drop (or empty) the file."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tf_keras.protobuf import saved_metadata_pb2

    metadata = saved_metadata_pb2.SavedMetadata()
    metadata.ParseFromString((folder / "keras_metadata.pb").read_bytes())
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((folder / "saved_model.pb").read_bytes())
    nodes = saved.meta_graphs[0].object_graph_def.nodes
    for node in metadata.nodes:
        assert nodes[node.node_id].user_object.identifier == node.identifier
        nodes[node.node_id].user_object.metadata = node.metadata
    (folder / "saved_model.pb").write_bytes(saved.SerializeToString())
    if empty_metadata:
        (folder / "keras_metadata.pb").write_bytes(b"")
    else:
        (folder / "keras_metadata.pb").unlink()


@pytest.fixture(scope="module")
def legacy_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("legacy")
    marker = folder / "ran.txt"
    model = lambda_model(marker)
    made = {}
    for variant in ("absent", "empty"):
        made[variant] = folder / f"legacy_{variant}"
        model.save(made[variant], save_format="tf")
        to_legacy_layout(made[variant], empty_metadata=variant == "empty")
    marker.unlink(missing_ok=True)  # building and saving ran it
    return made, marker


def test_the_fixture_is_what_tf_keras_revives_and_runs(legacy_models, tmp_path):
    """Without the check, tf_keras's legacy loader deserializes the Lambda from saved_model.pb and runs it."""
    import tf_keras as keras

    made, marker = legacy_models
    copy = tmp_path / "m"
    shutil.copytree(made["absent"], copy)
    keras.models.load_model(copy, compile=False).predict(np.zeros((1, 4), np.float32), verbose=0)
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("variant", ["absent", "empty"])
def test_convert_refuses_a_legacy_savedmodel_lambda(legacy_models, tmp_path, variant):
    made, marker = legacy_models
    shutil.copytree(made[variant], tmp_path / "m_savedmodel")
    np.savez(tmp_path / "d.npz", x_train=np.zeros((4, 4), np.float32))
    (tmp_path / "recipe.yaml").write_text("name: m\nmodel: {path: m_savedmodel}\ndata: {npz: d.npz}\n")
    result = kit("convert", tmp_path / "recipe.yaml", "--out", tmp_path / "out")
    assert_cli_error(result, "has Lambda layer(s) evil, whose Python code loading would run")
    assert not marker.exists(), "the Lambda's code ran"
    assert not (tmp_path / "out").exists()


def test_validate_float_model_refuses_a_legacy_savedmodel_lambda(legacy_models):
    made, marker = legacy_models
    result = kit("validate", REPO / "tests/data/not_this_model.tflite", "--float-model", made["absent"],
                 "--vectors", "2")
    assert_cli_error(result, "Lambda layer(s) evil")
    assert not marker.exists(), "the Lambda's code ran"
