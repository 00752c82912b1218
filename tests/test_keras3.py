"""Keras 3 models (`import keras`, what TensorFlow 2.21 installs): a `.keras` file saved by Keras 3 and a
builder returning a Keras 3 model convert by post-training quantization (int8, int16x8), take the
flatbuffer stages, validate bit for bit and run in firmware; TF-MOT stages are refused for them in one
line naming what works instead (on the command line: tests/test_bad_inputs.py); a Keras 3 Lambda is
refused before loading, as for Keras 2. `optimize` searches the flatbuffer-level levers of a Keras 3 model
(int4 per filter after quantization, LUT/PRUNE, memory plan) and refuses a TF-MOT stage forced on it."""
import json
import zipfile

import numpy as np
import pytest
import yaml

from converter.errors import KitError
from converter.flows.convert import convert
from converter.recipe import parse_recipe
from converter.stages.base import registered

from .conftest import REPO, run_kit


def keras3_classifier(lambda_layer: bool = False):
    import keras

    layers = [keras.Input((8, 8, 4)), keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
              keras.layers.BatchNormalization(name="bn")]
    if lambda_layer:
        layers.append(keras.layers.Lambda(lambda t: t * 2.0, name="double"))
    layers += [keras.layers.Flatten(), keras.layers.Dense(3, name="logits")]
    return keras.Sequential(layers)


def saved_keras3(tmp_path, name="k3.keras", **kwargs):
    """A Keras 3 .keras archive (Keras 3 picks the format by the name it saves under), then renamed."""
    saved = tmp_path / "saved_by_keras3.keras"
    keras3_classifier(**kwargs).save(saved)
    assert json.loads(zipfile.ZipFile(saved).read("metadata.json"))["keras_version"].startswith("3")
    return saved.rename(tmp_path / name)


@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_a_keras3_file_converts_and_validates_bit_for_bit(tmp_path, mode):
    # named .h5 on purpose: the format is read from the content (a zip archive), not the name
    path = saved_keras3(tmp_path, "k3_named_wrongly.h5")
    recipe = parse_recipe({"name": "k3", "model": {"path": path.name}, "data": {"random": {}},
                           "quantize": {"mode": mode, "calibration_samples": 16}, "golden": {"vectors": 4},
                           "compress": {"lut": True, "memory_plan": "offline"}}, base_dir=tmp_path)
    manifest = convert(recipe, tmp_path / "out", log=lambda _: None).manifest
    assert [record["stage"] for record in manifest["stages"]] == ["quantize", "compress"]
    exact = manifest["validation"]["tflm_vs_c_array"]
    assert exact["equal"] == exact["total"] == 4
    assert (tmp_path / "out" / "model_data.cc").is_file()
    if mode == "int8":  # validate --float-model takes the Keras 3 file too: fidelity and per-layer SQNR
        from converter.flows.validate import validate_model

        report = validate_model(tmp_path / "out" / "model.tflite", float_model=path, vectors=8, log=lambda *_: None)
        assert report["fidelity"]["sqnr_db"] > 10
        assert {row["layer"] for row in report["per_layer_sqnr"]} >= {"conv"}


@pytest.mark.parametrize("stage", ["prune", "cluster", "qat", "distill", "int4_finetune"])
def test_tf_mot_stages_are_refused_for_a_keras3_model(tmp_path, stage):
    path = saved_keras3(tmp_path)
    settings = {"distill": {"student_builder": f"{REPO / 'models/digits.py'}:build_student"}}.get(stage, {})
    recipe = parse_recipe({"name": "k3", "model": {"path": path.name}, "data": {"random": {}},
                           "stages": [{stage: settings}]}, base_dir=tmp_path)
    with pytest.raises(KitError) as error:
        convert(recipe, tmp_path / "out", log=lambda _: None)
    text = str(error.value)
    assert f"stage {stage} needs a Keras 2 (tf_keras) model" in text and "is a Keras 3 model" in text
    assert registered()[stage].keras3_instead in text and "\n" not in text
    assert not (tmp_path / "out").exists()


def test_a_keras3_lambda_is_refused_before_loading_unless_trusted(tmp_path):
    from converter.inputs.keras_model import load_file_model

    path = saved_keras3(tmp_path, lambda_layer=True)
    with pytest.raises(KitError, match="has Lambda layer.s. double, whose Python code loading would run"):
        load_file_model(path)
    model = load_file_model(path, trust_custom_code=True)
    assert type(model).__module__.startswith("keras.") and model.get_layer("double") is not None


def test_a_keras3_custom_class_is_refused(tmp_path):
    """A class from the user's own module would be imported by Keras 3's loader: refused unless trusted."""
    from converter.inputs.keras_model import check_custom_code

    path = saved_keras3(tmp_path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1] |= {"module": "evil_package.layers", "registered_name": "evil>Conv"}
    members["config.json"] = json.dumps(config).encode()
    hostile = tmp_path / "hostile.keras"
    with zipfile.ZipFile(hostile, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(KitError, match="uses custom object.s. Conv2D"):
        check_custom_code(hostile, trust_custom_code=False)
    check_custom_code(path, trust_custom_code=False)  # the untouched file passes


@pytest.fixture(scope="module")
def keras3_digits(tmp_path_factory):
    """models/recipes/keras3_digits.yaml: a Keras 3 builder, trained with Keras 3, int8 + int4/LUT."""
    out = tmp_path_factory.mktemp("keras3") / "keras3_digits"
    result = run_kit("convert", REPO / "models/recipes/keras3_digits.yaml", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_keras3_recipe_converts_bit_for_bit(keras3_digits):
    manifest = json.loads((keras3_digits / "manifest.json").read_text())
    assert [record["stage"] for record in manifest["stages"]] == ["train", "quantize", "compress"]
    summary = manifest["summary"]
    assert float(summary["float_quality"].rstrip("%")) > 80 and float(summary["quantized_quality"].rstrip("%")) > 80
    for check in ("tflm_vs_c_array", "tflm_vs_litert_reference"):
        assert manifest["validation"][check]["equal"] == manifest["validation"][check]["total"] == 10


@pytest.mark.parametrize("board", ["host", "cortex-m-qemu"])
def test_the_keras3_recipe_runs_in_firmware(board, keras3_digits, tmp_path):
    from converter.flows.firmware import load_board, render_firmware
    from converter.flows.flash import flash

    from .firmware_tools import need_tools, tflm_root

    root = tflm_root(load_board(board)["tflm_target"])
    need_tools("make", *(("arm-none-eabi-gcc", "qemu-system-arm") if board != "host" else ()))
    render_firmware(board, keras3_digits, tmp_path / "fw")
    summary = flash(tmp_path / "fw", str(root))
    count = np.load(keras3_digits / "golden.npz")["output_0"].shape[0]
    assert summary["exit_status"] == 0 and summary["pass"], summary["failures"]
    assert (summary["passed"], summary["total"]) == (count, count) and summary["golden_differences"] == []


def test_optimize_searches_a_keras3_models_flatbuffer_levers(tmp_path):
    """optimize on the Keras 3 recipe: its int8 model made once (base.tflite, no teacher to retrain), the
    levers it can take named in one line with those left out, 2 trials (plain int8, int4 on the largest
    filter) judged against the float Keras 3 model, and the winner rebuilt bit-exact on TFLM."""
    out = tmp_path / "search"
    result = run_kit("optimize", REPO / "models/recipes/keras3_digits.yaml", "--board", "cortex-m-qemu", "--out", out,
                     "--trials", 2, "--workers", 1, "--no-device")
    assert result.returncode == 0, result.stderr[-3000:]
    levers = [line for line in (result.stdout + result.stderr).splitlines() if "levers for a Keras 3 model" in line]
    assert len(levers) == 1 and "packed int4 per filter" in levers[0] and "left out: clusters and sparsity" in levers[0]
    search = json.loads((out / "search.json").read_text())
    assert search["settings"]["space"]["base"] == "flatbuffer"
    assert not any(name.startswith(("clusters:", "sparsity")) for name in search["settings"]["space"]["choices"])
    assert (out / "base.tflite").is_file() and not (out / "teacher.h5").exists()
    trials = search["trials"]
    assert [t["phase"] for t in trials] == ["reference", "int4"] and all(t["status"] == "passed" for t in trials)
    assert trials[1]["cost"]["model_bytes"] < trials[0]["cost"]["model_bytes"]
    assert search["summary"]["float_accuracy"] > 0.8 and search["summary"]["best_reproduced_bit_exact"] is True
    manifest = json.loads((out / "best/manifest.json").read_text())
    exact = manifest["validation"]["tflm_vs_c_array"]
    assert exact["equal"] == exact["total"] == 10
    assert yaml.safe_load((out / "best/recipe.yaml").read_text())["model"]["path"] == "../base.tflite"
    assert "Left out: clusters and sparsity" in (out / "search.md").read_text()
    # a resumed search reads what the model was from its files (no retraining, no Keras model loaded)
    from converter.optimize.prepare import prepare
    from converter.recipe import load_recipe

    resumed = prepare(load_recipe(REPO / "models/recipes/keras3_digits.yaml"), out, 0.0, lambda _: None)
    assert (resumed.base, resumed.what, resumed.model) == ("flatbuffer", "a Keras 3 model",
                                                           (out / "base.tflite").read_bytes())
    assert resumed.split_note == search["summary"]["split_note"]


def test_optimize_refuses_a_tf_mot_stage_forced_on_a_keras3_model_in_one_line(tmp_path):
    """A Keras 3 recipe that asks for a TF-MOT stage: refused as convert refuses it, before any trial,
    and the search folder it would have made is taken back."""
    from converter.flows.optimize import Options, optimize

    path = saved_keras3(tmp_path)
    (tmp_path / "k3.yaml").write_text(yaml.safe_dump({"name": "k3", "model": {"path": path.name},
                                                      "data": {"random": {}}, "stages": [{"cluster": {}}]}))
    with pytest.raises(KitError) as error:
        optimize(tmp_path / "k3.yaml", tmp_path / "search", Options(board="cortex-m-qemu", device=False))
    text = str(error.value)
    assert "stage cluster needs a Keras 2 (tf_keras) model" in text and registered()["cluster"].keras3_instead in text
    assert "\n" not in text and not (tmp_path / "search").exists()
