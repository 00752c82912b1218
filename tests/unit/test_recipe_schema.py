"""The recipe schema comes from the stage registry; the ordering rules hold at load time."""
import pytest

from converter.errors import KitError
from converter.recipe import Recipe, parse_recipe
from converter.stages.base import OrderError, check_order
from converter.stages.registry import list_stages, stages

BASE = {"name": "m", "model": {"path": "m.h5"}, "data": {"npz": "d.npz"}}
TFLITE = {**BASE, "model": {"path": "ref.tflite"}}


def load(**changes):
    return parse_recipe({**BASE, **changes})


def test_every_registered_list_stage_is_a_recipe_key():
    kinds = set(list_stages())
    assert {"train", "prune", "cluster", "qat", "distill"} <= kinds
    assert not {"quantize", "compress"} & kinds  # the recipe's own sections (one spelling each)
    entry_fields = set(Recipe.model_fields["stages"].annotation.__args__[0].model_fields)
    assert entry_fields == kinds


def test_unknown_stage_names_every_registered_one():
    with pytest.raises(KitError) as error:
        load(stages=[{"train": {}, "prune": {}}])
    assert all(kind in str(error.value) for kind in list_stages())


def test_stage_kinds_are_typed():
    kinds = {name: (stage.takes, stage.gives) for name, stage in stages().items()}
    assert kinds["train"] == ("keras", "keras")
    assert kinds["quantize"] == ("keras", "flatbuffer")
    assert kinds["compress"] == ("flatbuffer", "flatbuffer")


@pytest.mark.parametrize("order", [["prune", "qat"], ["cluster", "qat"], ["prune", "cluster", "qat"], ["train"]])
def test_allowed_orders_load(order):
    assert [s.kind for s in load(stages=[{k: {}} for k in order]).stages] == order


@pytest.mark.parametrize("order, index, words", [
    (["qat", "prune"], 1, "prune comes after qat; prune must come before qat"),
    (["train", "qat", "cluster"], 2, "cluster comes after qat"),
])
def test_bad_orders_name_the_stage(order, index, words):
    with pytest.raises(KitError) as error:
        load(stages=[{k: {}} for k in order])
    message = str(error.value)
    assert f"recipe field 'stages[{index}]'" in message and words in message and "fix:" in message


def test_check_order_is_pure():
    check_order(["train", "prune"])
    with pytest.raises(OrderError) as error:
        check_order(["train"], source="flatbuffer")
    assert error.value.index == 0
    with pytest.raises(OrderError, match="compress is not a list stage"):
        check_order(["train", "compress"])


def test_pipeline_puts_quantize_between_keras_and_flatbuffer_stages():
    recipe = load(stages=[{"train": {}}], compress={})
    assert [name for name, _ in recipe.pipeline()] == ["train", "quantize", "compress"]
    recipe = load(stages=[{"prune": {}}], compress={"lut": True})
    assert [name for name, _ in recipe.pipeline()] == ["prune", "quantize", "compress"]


def test_tflite_source_runs_flatbuffer_stages_only():
    recipe = parse_recipe({**TFLITE, "compress": {"strip_metadata": True}})
    assert recipe.model.is_flatbuffer
    assert [name for name, _ in recipe.pipeline()] == ["compress"]
    with pytest.raises(KitError, match="works on a Keras model, and the model is a .tflite"):
        parse_recipe({**TFLITE, "stages": [{"train": {}}]})
    with pytest.raises(KitError, match="already converted"):
        parse_recipe({**TFLITE, "quantize": {"mode": "int8"}})


@pytest.mark.parametrize("kind", ["compress", "quantize"])
def test_a_section_as_a_stages_entry_is_refused_naming_the_move(kind):
    """One spelling: compress and quantize are the recipe's own sections, never `stages:` entries."""
    for recipe in ({"stages": [{"train": {}}, {kind: {}}]}, {"stages": [{"train": {}}, {kind: {}}], kind: {}}):
        with pytest.raises(KitError) as error:
            load(**recipe)
        assert str(error.value) == (f"recipe field 'stages[1]' = '{kind}': {kind} is the recipe's '{kind}:' section, "
                                    f"not a stages entry — fix: move its settings to a top-level '{kind}:' section")


def test_manifest_dump_of_a_stage_is_what_the_recipe_says():
    recipe = load(stages=[{"prune": {"final_sparsity": 0.6}}])
    dumped = recipe.model_dump(mode="json")["stages"]
    assert list(dumped[0]) == ["prune"] and dumped[0]["prune"]["final_sparsity"] == 0.6
