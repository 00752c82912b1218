"""Models with several inputs and outputs through `convert`: the recipe's data names one array per input,
the converter calibrates with all of them, and the C golden vectors, the settings header and the
firmware self-test cover every input and output.

A Keras model with two inputs of different shapes (so feeding them in the wrong order fails) and two
outputs is built in the test; the committed two-input .tflite (tests/multi_input.py) is the flatbuffer source.
"""
import json

import numpy as np
import pytest
import yaml

from converter import KitError, convert, parse_recipe, read_model, run_tflm
from converter.flows.firmware import load_board

from .conftest import run_kit
from .firmware_tools import need_tools, tflm_root
from .multi_input import TFLITE

SHAPES = ((6,), (2, 2))


def _two_input_keras(path):
    from converter.system import tf_env

    keras = tf_env.keras()
    keras.utils.set_random_seed(0)
    a, b = keras.Input(SHAPES[0], name="a"), keras.Input(SHAPES[1], name="b")
    joined = keras.layers.Concatenate(name="joined")([keras.layers.Dense(4, name="da")(a),
                                                      keras.layers.Flatten(name="flat")(b)])
    logits = keras.layers.Dense(3, name="logits")(joined)
    score = keras.layers.Dense(1, name="score")(joined)
    keras.Model([a, b], [logits, score]).save(path)


def _two_input_data(path, samples=24):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in (("train", samples), ("test", samples // 2)):
        for i, shape in enumerate(SHAPES):
            arrays[f"x_{split}_{i}"] = rng.uniform(-1, 1, (count, *shape)).astype(np.float32)
    np.savez(path, **arrays)
    return arrays


@pytest.fixture(scope="module")
def two_input_dir(tmp_path_factory):
    """The Keras two-input model converted through the CLI, as a user runs it."""
    folder = tmp_path_factory.mktemp("two_inputs")
    _two_input_keras(folder / "two.h5")
    _two_input_data(folder / "data.npz")
    recipe = {"name": "two", "model": {"path": "two.h5"}, "data": {"npz": "data.npz"},
              "quantize": {"calibration_samples": 16}, "golden": {"vectors": 5}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = run_kit("convert", folder / "recipe.yaml", "--out", folder / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "out"


def test_two_input_keras_model_converts_with_every_input_and_output(two_input_dir):
    model_bytes = (two_input_dir / "model.tflite").read_bytes()
    info = read_model(model_bytes)
    # TensorFlow's converter put input 'b' first: the data, in Keras order, is fed by name
    shapes = {t.name: tuple(t.shape[1:]) for t in info.inputs}
    assert shapes == {"serving_default_a:0": SHAPES[0], "serving_default_b:0": SHAPES[1]} and len(info.outputs) == 2
    golden = np.load(two_input_dir / "golden.npz")
    data = np.load(two_input_dir.parent / "data.npz")
    picks = np.unique(np.linspace(0, 11, 5).round().astype(int))  # spread over the 12 eval samples
    for i, tensor in enumerate(info.inputs):
        x = data[f"x_test_{'ab'.index(tensor.name[16])}"][picks]
        expected = np.clip(np.sign(x / tensor.scale) * np.floor(np.abs(x / tensor.scale) + 0.5) + tensor.zero_point,
                           -128, 127)
        assert np.array_equal(golden[f"input_{i}"], expected), tensor.name
    assert sorted(golden.files) == ["input_0", "input_1", "output_0", "output_1"]
    assert golden["input_1"].shape == (5, *SHAPES[0]) and golden["output_1"].shape[0] == 5
    outputs = run_tflm(model_bytes, [golden["input_0"], golden["input_1"]])
    assert all(np.array_equal(o, golden[f"output_{j}"]) for j, o in enumerate(outputs))
    manifest = json.loads((two_input_dir / "manifest.json").read_text())
    assert manifest["summary"]["bit_exact_on_tflm"]
    assert manifest["stages"][0]["calibration_samples_used"] == 16
    settings = (two_input_dir / "model_settings.h").read_text()
    assert "kInputCount = 2;" in settings and "kOutputCount = 2;" in settings
    assert "kInput0Dims[] = {1, 2, 2};" in settings and "kInput1Dims[] = {1, 6};" in settings
    zero_points = ", ".join(str(t.zero_point) for t in info.inputs)
    assert f"kInputZeroPoint[] = {{{zero_points}}};" in settings
    vectors = (two_input_dir / "golden_vectors.cc").read_text()
    for symbol in ("kGoldenInput0", "kGoldenInput1", "kGoldenOutput0", "kGoldenOutput1"):
        assert f"const unsigned char {symbol}[5 * " in vectors


def test_two_input_conversion_validates_bit_exact(two_input_dir, tmp_path):
    golden = np.load(two_input_dir / "golden.npz")
    np.savez(tmp_path / "d.npz", x_0=golden["input_0"], x_1=golden["input_1"])
    result = run_kit("validate", two_input_dir / "model.tflite", "--data", tmp_path / "d.npz", "--out",
                     tmp_path / "v")
    assert result.returncode == 0, result.stderr[-3000:]
    for pair in ("tflm_vs_litert_reference", "tflm_vs_litert_optimized"):
        assert f"{pair}: 5/5 vectors equal, max 0 LSB" in result.stdout


@pytest.mark.slow  # builds TFLM firmware for the host: about 20 s
def test_two_input_firmware_self_test_passes_on_the_host(two_input_dir, tmp_path):
    root = tflm_root(load_board("host")["tflm_target"])  # skips with the reason when TFLM_ROOT is not set
    need_tools("make", "g++")
    result = run_kit("firmware", "--model-dir", two_input_dir, "--board", "host", "--out", tmp_path / "fw")
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_kit("flash", tmp_path / "fw", "--tflm-root", root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "PASS 5/5" in result.stdout + result.stderr


def test_two_input_tflite_source_converts(tmp_path):
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "d.npz", x_test_0=rng.uniform(-1, 1, (9, 6)).astype(np.float32),
             x_test_1=rng.uniform(-1, 1, (9, 6)).astype(np.float32))
    recipe = parse_recipe({"name": "pair", "model": {"path": str(TFLITE)}, "data": {"npz": "d.npz"},
                           "golden": {"vectors": 4}}, base_dir=tmp_path)
    manifest = convert(recipe, tmp_path / "out")
    assert manifest["summary"]["bit_exact_on_tflm"] and manifest["summary"]["source"] == "tflite"
    golden = np.load(tmp_path / "out" / "golden.npz")
    assert golden["input_1"].shape == (4, 6) and golden["output_1"].shape[0] == 4
    expected = [np.clip(np.round(x / t.scale) + t.zero_point, -128, 127)
                for x, t in zip((np.load(tmp_path / "d.npz")[f"x_test_{i}"] for i in range(2)),
                                read_model(TFLITE.read_bytes()).inputs)]
    assert np.array_equal(golden["input_0"], expected[0][[0, 3, 5, 8]])  # spread over the eval set
    assert np.array_equal(golden["input_1"], expected[1][[0, 3, 5, 8]])


def test_recipe_lists_one_npz_array_per_input(tmp_path):
    from converter.inputs.dataset import load_data

    arrays = _two_input_data(tmp_path / "d.npz", samples=6)
    np.savez(tmp_path / "named.npz", first=arrays["x_train_0"], second=arrays["x_train_1"])
    recipe = parse_recipe({"name": "n", "model": {"path": str(TFLITE)},
                           "data": {"npz": "named.npz", "x_train": ["first", "second"], "x_eval": ["first", "second"]}},
                          base_dir=tmp_path)
    data = load_data(recipe, list(SHAPES))
    assert [x.shape for x in data.x_calibration] == [(6, 6), (6, 2, 2)]
    assert np.array_equal(data.x_eval[1], arrays["x_train_1"])
    with pytest.raises(KitError, match=r"data.x_train names 2 arrays but the model has 3 input"):
        load_data(recipe, [*SHAPES, (1,)])
    swapped = parse_recipe({"name": "n", "model": {"path": str(TFLITE)},
                            "data": {"npz": "named.npz", "x_train": ["second", "first"]}}, base_dir=tmp_path)
    shapes_differ = r"calibration input 0 has shape \(2, 2\) per sample but the model takes \(6,\)"
    with pytest.raises(KitError, match=shapes_differ):
        load_data(swapped, list(SHAPES))
    np.savez(tmp_path / "half.npz", x_train_0=arrays["x_train_0"])
    half = parse_recipe({"name": "n", "model": {"path": str(TFLITE)}, "data": {"npz": "half.npz"}}, base_dir=tmp_path)
    with pytest.raises(KitError, match=r"has x_train_0 but not x_train_1"):
        load_data(half, list(SHAPES))


def test_random_and_builder_data_give_every_input(tmp_path):
    from converter.inputs.dataset import load_data

    recipe = parse_recipe({"name": "r", "model": {"path": str(TFLITE)}, "data": {"random": {"samples": 4}}},
                          base_dir=tmp_path)
    data = load_data(recipe, list(SHAPES))
    assert [x.shape for x in data.x_calibration] == [(4, 6), (4, 2, 2)]
    assert all(np.array_equal(e, c) for e, c in zip(data.x_eval, data.x_calibration))
    (tmp_path / "arrays.py").write_text(
        "import numpy as np\n"
        "def pair():\n    return {'x_train': [np.zeros((3, 6)), np.ones((3, 2, 2))], 'y_train': np.arange(3)}\n"
        "def one():\n    return {'x_train': np.zeros((3, 6))}\n")
    built = load_data(parse_recipe({"name": "b", "model": {"path": str(TFLITE)}, "data": {"builder": "arrays.py:pair"}},
                                   base_dir=tmp_path), list(SHAPES))
    assert [x.dtype for x in built.x_train] == [np.float32, np.float32] and float(built.x_calibration[1].sum()) == 12
    with pytest.raises(KitError, match=r"calibration inputs hold one array but the model has 2 inputs"):
        load_data(parse_recipe({"name": "b", "model": {"path": str(TFLITE)}, "data": {"builder": "arrays.py:one"}},
                               base_dir=tmp_path), list(SHAPES))
