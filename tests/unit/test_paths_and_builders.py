"""One rule for recipe paths; builder files load by resolved path, so same-named files do not collide."""
from pathlib import Path

import pytest

from converter.errors import KitError
from converter.inputs.builders import load_function
from converter.system.paths import resolve_path


def test_paths_are_relative_to_the_recipe_and_expand_variables(tmp_path, monkeypatch):
    assert resolve_path("m.h5", tmp_path) == tmp_path / "m.h5"
    assert resolve_path("/abs/m.h5", tmp_path) == Path("/abs/m.h5")
    monkeypatch.setenv("KIT_UNIT_DATA", "/data")
    assert resolve_path("${KIT_UNIT_DATA}/x.npz", tmp_path) == Path("/data/x.npz")
    monkeypatch.delenv("KIT_UNIT_DATA")
    with pytest.raises(KitError, match=r"uses \$KIT_UNIT_DATA, which is not set"):
        resolve_path("$KIT_UNIT_DATA/x.npz", tmp_path)


def test_two_builder_files_with_one_name_stay_apart(tmp_path):
    for folder, value in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.py").write_text(f"def build():\n    return {value}\n")
    first = load_function("a/model.py:build", tmp_path, "model")
    second = load_function("b/model.py:build", tmp_path, "model")
    assert (first(), second()) == (1, 2)
    assert first.__module__ != second.__module__
    assert load_function("a/model.py:build", tmp_path, "model")() == 1


def test_builder_paths_follow_the_same_rule(tmp_path, monkeypatch):
    (tmp_path / "m.py").write_text("def build():\n    return 'ok'\n")
    monkeypatch.setenv("KIT_UNIT_DIR", str(tmp_path))
    assert load_function("$KIT_UNIT_DIR/m.py:build", Path("/nowhere"), "model")() == "ok"
    with pytest.raises(KitError, match="does not exist"):
        load_function("missing.py:build", tmp_path, "model")
