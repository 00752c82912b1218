"""Named bad inputs not covered elsewhere, safe loading, and interrupted runs.

Each bad input must give one `error: <problem> — fix: <fix>` line, exit code 2 and write nothing.
Empty / truncated / not-a-flatbuffer / unsupported-op models through `validate` are in
test_validate.py; bad calibration data and labels in test_bad_inputs.py; recipe basics in test_recipe.py.
"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from click.testing import CliRunner
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from converter.errors import KitError
from converter.system.outdir import staged_output
from converter.flows.convert import convert
from converter.recipe import parse_recipe
from converter.tflite.model import read_model
from converter.tflm.deployable import check_deployable

from .conftest import REPO, tiny_classifier

TINY = REPO / "tests" / "data" / "not_this_model.tflite"  # int8 FULLY_CONNECTED, input [1, 12]


def edited(change) -> bytes:
    """TINY with `change(model)` applied through the schema's object API."""
    model = schema.ModelT.InitFromPackedBuf(TINY.read_bytes(), 0)
    change(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def set_opcode(code: int, custom: bytes | None = None):
    def change(model):
        model.operatorCodes[0].builtinCode = code
        model.operatorCodes[0].deprecatedBuiltinCode = min(code, 127)
        model.operatorCodes[0].customCode = custom
    return change


def set_tensor(index: int, **fields):
    def change(model):
        for name, value in fields.items():
            setattr(model.subgraphs[0].tensors[index], name, value)
    return change


def set_version(version: int):
    def change(model):
        model.version = version
    return change


def kit(*args):
    """The CLI in-process (no TensorFlow start-up per case); SIGTERM's handler is put back after."""
    from converter.cli import main

    previous = signal.getsignal(signal.SIGTERM)
    try:
        return CliRunner().invoke(main, [str(a) for a in args])
    finally:
        signal.signal(signal.SIGTERM, previous)


def assert_one_line_error(result, expected: str, out: Path | None = None):
    assert result.exit_code == 2, (result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0] and " — fix: " in errors[0], result.stderr
    if out is not None:
        assert not out.exists() or not any(out.iterdir()), "partial output was written"
        assert not list(out.parent.glob(f".{out.name}.*")), "staging folder left behind"


# --- malformed and undeployable .tflite models -------------------------------------------------

BAD_MODELS = {
    "wrong schema version": (set_version(2), "TFLite schema version 2; TFLM reads version 3", "re-convert"),
    "unsupported op with alternatives": (set_opcode(schema.BuiltinOperator.GELU),
                                         "TFLM has no kernel for operator(s) GELU", "HARD_SWISH"),
    "tensorflow flex op": (set_opcode(schema.BuiltinOperator.CUSTOM, b"FlexErf"),
                           "TFLM has no kernel for operator(s) FlexErf", "without SELECT_TF_OPS"),
    "float op in an int8 model": (set_tensor(2, type=schema.TensorType.FLOAT32, quantization=None),
                                  "float operators left in an int8 model: FULLY_CONNECTED (1)", "quantize fully"),
    "int64 activation": (set_tensor(2, type=schema.TensorType.INT64),
                         "of operator FULLY_CONNECTED is INT64", "int32"),
    "string tensor": (set_tensor(2, type=schema.TensorType.STRING), "has type STRING", "tensors"),
    "dynamic dimension": (set_tensor(0, shapeSignature=[-1, -1]),
                          "has dynamic (unknown) dimensions: shape signature [-1, -1]", "static shapes"),
}


@pytest.mark.parametrize("case", BAD_MODELS)
def test_undeployable_models_are_refused_by_validate(tmp_path, case):
    change, problem, fix = BAD_MODELS[case]
    path = tmp_path / "m.tflite"
    path.write_bytes(edited(change))
    out = tmp_path / "out"
    result = kit("validate", path, "--out", out)
    assert_one_line_error(result, problem, out)
    assert fix in result.stderr


def test_the_untouched_model_passes_the_same_checks():
    check_deployable(TINY.read_bytes(), require_int8=True)  # the edits above are what the checks catch
    check_deployable(edited(set_tensor(0, shapeSignature=[-1, 12])), require_int8=True)  # -1 batch is normal


def test_wrong_schema_version_is_caught_before_any_runtime():
    with pytest.raises(KitError, match="schema version 7"):
        read_model(edited(set_version(7)))


def test_hybrid_mlperf_model_is_named_as_float_ops_in_int8(shared_data):
    # README of the shared data: kws_ref_model_float32.tflite has int8 weights and float activations.
    model = shared_data / "mlperf_tiny/keyword_spotting/kws_ref_model_float32.tflite"
    with pytest.raises(KitError, match=r"float operators left in an int8 model: CONV_2D \(5\), DEPTHWISE_CONV_2D"):
        check_deployable(model.read_bytes())


def test_golden_record_refuses_an_unsupported_op(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(edited(set_opcode(schema.BuiltinOperator.TOPK_V2)))
    out = tmp_path / "g"
    result = kit("golden", "record", path, "--out", out)
    assert_one_line_error(result, "TFLM has no kernel for operator(s) TOPK_V2", out)
    assert "ARG_MAX" in result.stderr


# --- data for validate ---------------------------------------------------------------------

@pytest.mark.parametrize("x, expected", [
    (np.full((4, 12), np.nan, np.float32), "contain NaN"),
    (np.zeros((0, 12), np.float32), "no inputs"),
])
def test_validate_data_with_nan_or_no_samples(tmp_path, x, expected):
    np.savez(tmp_path / "d.npz", x=x)
    out = tmp_path / "out"
    assert_one_line_error(kit("validate", TINY, "--data", tmp_path / "d.npz", "--out", out), expected, out)


# --- recipe fields beyond test_recipe.py ---------------------------------------------------------

BASE = {"name": "digits", "model": {"path": "m.h5"}, "data": {"npz": "d.npz"}}


@pytest.mark.parametrize("changes, expected", [
    ({"stages": [{"cluster": {"clusters": -4}}]}, "'stages[0].cluster.clusters' = -4"),
    ({"stages": [{"cluster": {"clusters": 100000}}]}, "'stages[0].cluster.clusters' = 100000"),
    ({"stages": [{"prune": {"initial_sparsity": -0.2}}]}, "'stages[0].prune.initial_sparsity' = -0.2"),
    ({"stages": [{"prune": {"final_sparsity": 1.0}}]}, "'stages[0].prune.final_sparsity' = 1.0"),
    ({"stages": [{"prune": {"epochs": "two"}}]}, "'stages[0].prune.epochs' = 'two'"),
    ({"stages": {"prune": {}}}, "recipe field 'stages'"),
    ({"quantize": {"calibration_samples": -1}}, "'quantize.calibration_samples' = -1"),
    ({"seed": "zero"}, "recipe field 'seed' = 'zero'"),
    ({"arena_margin": -0.5}, "recipe field 'arena_margin' = -0.5"),
    ({"name": 42}, "recipe field 'name' = 42"),
    ({"name": ""}, "must be a C identifier"),
    ({"name": "int"}, "is a C/C++ keyword"),
    ({"name": "constexpr"}, "is a C/C++ keyword"),
    ({"name": "main"}, "is a C/C++ keyword"),
    ({"name": "mödel"}, "must be a C identifier"),
    ({"name": "a b"}, "must be a C identifier"),
    ({"model": {"path": "m.h5", "trust_custom_code": "yes please"}}, "'model.trust_custom_code'"),
    ({"data": {"npz": "d.npz", "labels": "cat,dog"}}, "'data.labels' = 'cat,dog'"),
])
def test_more_bad_recipe_fields(changes, expected):
    with pytest.raises(KitError) as error:
        parse_recipe({**BASE, **changes})
    assert expected in str(error.value) and "\n" not in str(error.value)


# --- output paths -------------------------------------------------------------------------------

def test_output_path_that_is_a_file_via_the_cli(tmp_path):
    out = tmp_path / "out"
    out.write_text("keep me")
    assert_one_line_error(kit("validate", TINY, "--out", out), "is a file")
    assert out.read_text() == "keep me"


def test_output_path_that_is_not_writable(tmp_path):
    # /proc refuses new folders even to root, for whom permission bits are no obstacle.
    out = Path("/proc/tflm-kit-out")
    assert_one_line_error(kit("validate", TINY, "--out", out), "cannot write under /proc")


def test_output_folder_holding_the_input_model_is_refused_even_with_force(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    model = folder / "m.tflite"
    model.write_bytes(TINY.read_bytes())
    for args in (("validate", model), ("golden", "record", model)):
        assert_one_line_error(kit(*args, "--out", folder, "--force"), "contains the input")
        assert model.read_bytes() == TINY.read_bytes()
    model_file = folder / "tiny.keras"
    model_file.write_bytes(b"placeholder: the check runs before loading")
    recipe = parse_recipe({"name": "x", "model": {"path": "tiny.keras"}, "data": {"random": {}}}, base_dir=folder)
    with pytest.raises(KitError, match="contains the input"):
        convert(recipe, folder, force=True, log=lambda _: None)
    assert model_file.exists()


# --- safe loading -------------------------------------------------------------------------------

def lambda_model(marker: Path):
    """A model whose Lambda writes `marker` when it runs: proof of whether loading ran its code."""
    import tf_keras as keras

    path = str(marker)
    return keras.Sequential([keras.layers.Input((4,)),
                             keras.layers.Lambda(lambda x: (open(path, "w").write("ran"), x)[1], name="evil"),
                             keras.layers.Dense(2)])


@pytest.mark.parametrize("suffix", [".h5", ".keras", "_savedmodel"])
def test_lambda_layers_are_refused_before_deserializing(tmp_path, suffix):
    from converter.inputs.keras_model import load_file_model

    marker = tmp_path / "ran.txt"
    path = tmp_path / f"lambda{suffix}"
    lambda_model(marker).save(path)
    marker.unlink(missing_ok=True)  # building the model above ran it once
    with pytest.raises(KitError, match=r"Lambda layer\(s\) evil.*trust_custom_code: true"):
        load_file_model(path)
    assert not marker.exists(), "the Lambda's code ran while refusing the model"


def test_trusted_h5_lambda_loads_and_runs_its_code(tmp_path):
    from converter.inputs.keras_model import load_file_model

    marker = tmp_path / "ran.txt"
    path = tmp_path / "lambda.h5"
    lambda_model(marker).save(path)
    marker.unlink()
    load_file_model(path, trust_custom_code=True)
    assert marker.exists()  # so the refusal test above would see code that ran


def test_custom_objects_are_refused_unless_trusted(tmp_path):
    import tf_keras as keras

    from converter.inputs.keras_model import check_custom_code

    @keras.saving.register_keras_serializable(package="user")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    model = keras.Sequential([keras.layers.Input((4,)), Doubler(), keras.layers.Dense(2)])
    for path in (tmp_path / "custom.h5", tmp_path / "custom.keras"):
        model.save(path)
        with pytest.raises(KitError, match="custom object"):
            check_custom_code(path, trust_custom_code=False)
        check_custom_code(path, trust_custom_code=True)


def test_plain_models_pass_the_custom_code_check(tmp_path):
    from converter.inputs.keras_model import check_custom_code

    for path in (tmp_path / "plain.h5", tmp_path / "plain.keras", tmp_path / "plain_savedmodel"):
        tiny_classifier().save(path)
        check_custom_code(path, trust_custom_code=False)


def test_mlperf_float_models_pass_the_custom_code_check(shared_data):
    from converter.inputs.keras_model import check_custom_code

    for path in sorted((shared_data / "mlperf_tiny").glob("*/*.h5")):
        check_custom_code(path, trust_custom_code=False)


# --- atomic output ----------------------------------------------------------------------------

def digest(folder: Path) -> dict:
    """Every file under `folder` (aot/ included) -> its sha256."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failure_inside_staging_leaves_the_previous_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with staged_output(out) as staging:
            (staging / "model.tflite").write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert (out / "model.tflite").read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_convert_keeps_the_previous_artifacts(demo_dir, tmp_path, signum, code):
    out = tmp_path / "digits"
    shutil.copytree(demo_dir, out)
    before = digest(out)
    child = subprocess.Popen([sys.executable, "-P", "-m", "converter", "convert", REPO / "models/recipes/default.yaml",
                              "--out", out, "--force"], cwd=REPO, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    seen = []
    for line in child.stderr:  # wait for real work to be under way, not for a time
        seen.append(line)
        if "stage 2/" in line:
            break
    child.send_signal(signum)
    _, rest = child.communicate(timeout=600)
    assert child.returncode == code, "".join(seen) + rest
    assert "interrupted: nothing was written" in rest
    assert digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits"], "staging folder left behind"
