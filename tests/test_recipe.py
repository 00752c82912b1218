import pytest

from converter.errors import KitError
from converter.recipe import load_recipe, parse_recipe

from .conftest import REPO

BASE = {"name": "digits", "model": {"path": "m.h5"}, "data": {"npz": "d.npz"}}


def with_changes(**changes):
    return {**BASE, **changes}


def test_default_recipe_loads_with_its_stages_in_order():
    recipe = load_recipe(REPO / "models/recipes/default.yaml")
    assert [stage.kind for stage in recipe.stages] == ["train", "prune", "cluster"]
    assert recipe.quantize.int8_io and recipe.quantize.per_channel
    assert recipe.stages[2].settings.clusters == 16


@pytest.mark.parametrize("recipe, expected", [
    (with_changes(colour="red"), "recipe field 'colour' is not a known field"),
    (with_changes(stages=[{"prune": {"final_sparsity": 1.5}}]), "'stages[0].prune.final_sparsity' = 1.5"),
    (with_changes(stages=[{"prune": {"final_sparsity": -0.1}}]), "'stages[0].prune.final_sparsity' = -0.1"),
    (with_changes(stages=[{"prune": {"schedule": "cubic"}}]), "'stages[0].prune.schedule' = 'cubic'"),
    (with_changes(stages=[{"cluster": {"clusters": 1}}]), "'stages[0].cluster.clusters' = 1"),
    (with_changes(stages=[{"cluster": {"clusters": "many"}}]), "'stages[0].cluster.clusters' = 'many'"),
    (with_changes(stages=[{"finetune": {}}]), "'stages[0].finetune' is not a known field"),
    (with_changes(golden={"vectors": 0}), "'golden.vectors' = 0"),
    (with_changes(name="class"), "is a C/C++ keyword"),
    (with_changes(name="3d_model"), "must be a C identifier"),
    (with_changes(name="my-model"), "must be a C identifier"),
    (with_changes(model={"path": "a.h5", "builder": "b.py:f"}), "give exactly one of 'path', 'builder' or 'torch'"),
    ({"model": {"path": "m.h5"}, "data": {"npz": "d.npz"}}, "recipe field 'name' is required but missing"),
])
def test_bad_recipes_name_the_field_and_value(recipe, expected):
    with pytest.raises(KitError) as error:
        parse_recipe(recipe)
    message = str(error.value)
    assert expected in message
    assert "\n" not in message and "fix:" in message


def test_recipe_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(KitError, match="must be a YAML mapping"):
        load_recipe(path)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: a\nmodel: {path: [unclosed\n")
    with pytest.raises(KitError, match="not valid YAML at line"):
        load_recipe(path)


def test_paths_resolve_relative_to_the_recipe_and_expand_variables(tmp_path, monkeypatch):
    recipe = parse_recipe(BASE, base_dir=tmp_path)
    assert recipe.resolve("m.h5") == tmp_path / "m.h5"
    monkeypatch.setenv("KIT_TEST_DATA", "/data")
    assert str(recipe.resolve("${KIT_TEST_DATA}/x.npz")) == "/data/x.npz"
    monkeypatch.delenv("KIT_TEST_DATA")
    with pytest.raises(KitError, match=r"uses \$KIT_TEST_DATA, which is not set"):
        recipe.resolve("${KIT_TEST_DATA}/x.npz")


@pytest.mark.parametrize("name", ["default", "distill", "mlperf_ad", "mlperf_ic", "mlperf_kws", "mlperf_vww"])
def test_shipped_recipes_load_and_keep_their_order(name, monkeypatch):
    monkeypatch.setenv("TFLM_KIT_SHARED_DATA", "/data")
    recipe = load_recipe(REPO / f"models/recipes/{name}.yaml")
    pipeline = [kind for kind, _ in recipe.pipeline()]
    assert pipeline[:len(recipe.stages)] == [stage.kind for stage in recipe.stages]
    assert pipeline[len(recipe.stages)] == "quantize"
    assert pipeline[len(recipe.stages) + 1:] == (["compress"] if recipe.compress else [])


def test_qat_before_prune_is_refused_at_load():
    with pytest.raises(KitError, match=r"'stages\[1\]' = 'prune': prune comes after qat"):
        parse_recipe(with_changes(stages=[{"qat": {}}, {"prune": {}}]))
