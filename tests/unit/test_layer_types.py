"""Each layer owns its settings and result types: a lower layer's signatures name no higher layer's type
(issue 22 item 1), so their annotations resolve without the higher layer."""
import typing
from types import SimpleNamespace

import numpy as np

from converter.inputs import dataset, keras_model
from converter.inputs.dataset import DataSpec
from converter.inputs.sources import DataSource, ModelSource
from converter.recipe import parse_recipe


def test_input_loaders_annotations_resolve():
    hints = typing.get_type_hints(dataset.load_data)
    assert hints["spec"] is DataSpec
    assert typing.get_type_hints(keras_model.load_model)["source"] is ModelSource
    assert typing.get_type_hints(dataset.check_training_labels)["losses"] == set[str]
    assert typing.get_type_hints(DataSpec)["source"] is DataSource


def test_the_recipe_composes_the_inputs_settings(tmp_path):
    recipe = parse_recipe({"name": "m", "model": {"path": "m.h5"}, "data": {"npz": "d.npz"}, "seed": 3,
                           "eval_samples": 7, "stages": [{"train": {"epochs": 1}}]}, base_dir=tmp_path)
    spec = recipe.data_spec()
    assert spec == DataSpec(recipe.data, tmp_path, 7, 3) and isinstance(recipe.model, ModelSource)
    assert recipe.training_losses() == {"sparse_categorical_crossentropy"}
    assert recipe.input_paths() == (tmp_path, tmp_path / "m.h5", tmp_path / "d.npz")


def test_stages_declare_what_they_need(tmp_path):
    """The recipe asks each stage (no stage named in the recipe, the inputs or the convert flow)."""
    from converter.stages.registry import get

    recipe = parse_recipe({"name": "m", "model": {"path": "m.h5"}, "data": {"npz": "d.npz"},
                           "stages": [{"federated": {}}, {"prune": {"loss": "categorical_crossentropy"}},
                                      {"distill": {"student_builder": "student.py:build", "epochs": 1}}]},
                          base_dir=tmp_path)
    assert recipe.training_losses() == {"categorical_crossentropy", "sparse_categorical_crossentropy"}
    assert get("federated").label_loss(recipe.stages[0].settings) is None
    assert recipe.input_paths()[-1] == tmp_path / "student.py"
    assert get("quantize").phase_detail(recipe.quantize, SimpleNamespace(x_calibration=np.zeros((5, 2)))) == \
        "quantize (int8, 5 calibration samples)"
    assert get("train").phase_detail(None, None) == "train"
    moved = recipe.with_stage_settings("federated", ray_address="auto")
    assert moved.stages[0].settings.ray_address == "auto" and recipe.stages[0].settings.ray_address is None
    assert moved.stages[1:] == recipe.stages[1:]
