"""Each layer owns its settings and result types: a lower layer's signatures name no higher layer's type
(issue 22 item 1), so their annotations resolve without the higher layer."""
import typing

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
