"""Bad input: a one-line error naming the problem and the fix, a non-zero exit, and nothing written."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from converter.errors import KitError
from converter.flows.convert import convert
from converter.recipe import parse_recipe

from .conftest import REPO, run_kit, tiny_classifier

DIGITS = str(REPO / "models/digits.py")


def assert_clean_failure(result, expected: str, out: Path):
    assert result.returncode == 2, result.stderr[-2000:]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and expected in error_lines[0] and "fix:" in error_lines[0], result.stderr[-2000:]
    assert not out.exists() or not any(out.iterdir()), "partial output was written"
    assert not list(out.parent.glob(f".{out.name}.*")), "staging folder left behind"


def write_recipe(folder: Path, **fields) -> Path:
    recipe = {"name": "bad", "model": {"builder": f"{DIGITS}:build_model"}, "data": {"builder": f"{DIGITS}:load_data"},
              "quantize": {"calibration_samples": 8}, "golden": {"vectors": 2}, **fields}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_missing_model_file(tmp_path):
    recipe = write_recipe(tmp_path, model={"path": "nowhere/model.h5"})
    out = tmp_path / "out"
    assert_clean_failure(run_kit("convert", recipe, "--out", out), "does not exist", out)


def test_unknown_recipe_field(tmp_path):
    recipe = write_recipe(tmp_path, stages=[{"prune": {"sparsity": 0.5}}])
    out = tmp_path / "out"
    assert_clean_failure(run_kit("convert", recipe, "--out", out), "'stages[0].prune.sparsity' is not a known field", out)


def test_keras3_model_with_a_tf_mot_stage_is_refused_with_the_reason(tmp_path):
    """Keras 3 models convert (tests/test_keras3.py); TF-MOT's stages take Keras 2 models only."""
    path = tmp_path / "k3.keras"
    make = ("import keras; m = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), "
            f"keras.layers.Dense(10)]); m.save({str(path)!r})")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "0", "KERAS_BACKEND": "tensorflow"}
    subprocess.run([sys.executable, "-c", make], check=True, env=env, capture_output=True)
    recipe = write_recipe(tmp_path, model={"path": str(path)}, stages=[{"cluster": {}}])
    out = tmp_path / "out"
    result = run_kit("convert", recipe, "--out", out)
    assert_clean_failure(result, "stage cluster needs a Keras 2 (tf_keras) model", out)
    assert "TF-MOT clustering takes tf_keras models only" in result.stderr


def test_output_directory_with_other_files_is_not_touched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    result = run_kit("convert", write_recipe(tmp_path), "--out", out)
    assert result.returncode == 2 and "already holds files" in result.stderr and "--force" in result.stderr
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_output_path_that_is_a_file(tmp_path):
    out = tmp_path / "out"
    out.write_text("x")
    with pytest.raises(KitError, match="is a file"):
        convert(parse_recipe(yaml.safe_load(write_recipe(tmp_path).read_text()), tmp_path), out)


# In-process from here on: the same code path without paying for a TensorFlow start-up each time.

def saved_tiny_model(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.keras"
    tiny_classifier().save(path)
    return path


@pytest.mark.parametrize("x, expected", [
    (np.zeros((16, 28, 28), np.float32), "calibration inputs have shape (28, 28) per sample but the model takes (8, 8, 4)"),
    (np.full((16, 8, 8, 4), "a"), "input arrays must be numeric"),
    (np.full((16, 8, 8, 4), np.nan, np.float32), "contain NaN"),
    (np.zeros((0, 8, 8, 4), np.float32), "no inputs to calibrate with"),
])
def test_bad_calibration_data(tmp_path, x, expected):
    np.savez(tmp_path / "data.npz", x_cal=x)
    recipe = parse_recipe({"name": "bad", "model": {"path": str(saved_tiny_model(tmp_path))},
                           "data": {"npz": "data.npz", "x_calibration": "x_cal"}}, base_dir=tmp_path)
    out = tmp_path / "out"
    with pytest.raises(KitError) as error:
        convert(recipe, out, log=lambda _: None)
    assert expected in str(error.value)
    assert not out.exists()


def test_labels_of_the_wrong_length(tmp_path):
    np.savez(tmp_path / "data.npz", x_cal=np.random.default_rng(0).random((8, 8, 8, 4), np.float32))
    recipe = parse_recipe({"name": "bad", "model": {"path": str(saved_tiny_model(tmp_path))},
                           "data": {"npz": "data.npz", "x_calibration": "x_cal", "labels": ["a", "b"]}},
                          base_dir=tmp_path)
    with pytest.raises(KitError, match="2 labels given but the model's first output has 3 values"):
        convert(recipe, tmp_path / "out", log=lambda _: None)
    assert not (tmp_path / "out").exists()


def test_model_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "broken.h5"
    path.write_bytes(b"not an hdf5 file at all")
    recipe = parse_recipe({"name": "bad", "model": {"path": "broken.h5"}, "data": {"random": {}}}, base_dir=tmp_path)
    with pytest.raises(KitError, match="is not a Keras model: neither a .keras zip archive, an HDF5 file"):
        convert(recipe, tmp_path / "out", log=lambda _: None)
