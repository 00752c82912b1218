"""Issue 18 Medium 6: a model input without a batch dimension (a rank-1 ADD/SUB operand of shape (8,), as
TFLM's own test models have) is fed samples read along the data's leading axis: --data x_0/x_1 of shape (N, 8)."""
import numpy as np
import pytest

from .test_security import assert_cli_error, kit


@pytest.fixture(scope="module")
def rank1_model(tmp_path_factory):
    """int8 SUB of two (8,) operands and ADD of the result and one of them, from a fixed-shape tf.function."""
    import tensorflow as tf

    spec = tf.TensorSpec([8], tf.float32)

    @tf.function(input_signature=[spec, spec])
    def f(a, b):
        return (a - b) + a

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(32):
            yield [rng.uniform(-1, 1, 8).astype(np.float32), rng.uniform(-1, 1, 8).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    folder = tmp_path_factory.mktemp("rank1")
    (folder / "m.tflite").write_bytes(converter.convert())
    return folder / "m.tflite"


def test_the_fixture_has_rank1_inputs(rank1_model):
    from converter.tflite.model import read_model

    info = read_model(rank1_model.read_bytes())
    assert [t.shape for t in info.inputs] == [(8,), (8,)] and info.outputs[0].shape == (8,)


def test_validate_feeds_samples_along_a_new_leading_axis(rank1_model, tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x_0=rng.uniform(-1, 1, (6, 8)).astype(np.float32),
             x_1=rng.uniform(-1, 1, (6, 8)).astype(np.float32))
    result = kit("validate", rank1_model, "--data", tmp_path / "d.npz", "--out", tmp_path / "report")
    assert result.exit_code == 0, (result.output, result.exception)
    report = (tmp_path / "report" / "report.json").read_text()
    assert '"tflm_vs_litert_reference"' in report and "6 inputs from" in report


def test_a_wrong_sample_shape_names_the_input_in_grammar(rank1_model, tmp_path):
    np.savez(tmp_path / "d.npz", x_0=np.zeros((6, 8), np.float32), x_1=np.zeros((6, 7), np.float32))
    assert_cli_error(kit("validate", rank1_model, "--data", tmp_path / "d.npz"),
                     "data input 1 has shape (7,) per sample but the model takes (8,)")


def test_convert_runs_goldens_and_measures_the_arena_of_a_rank1_model(rank1_model, tmp_path):
    import shutil

    shutil.copyfile(rank1_model, tmp_path / "m.tflite")
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "d.npz", x_train_0=rng.uniform(-1, 1, (10, 8)).astype(np.float32),
             x_train_1=rng.uniform(-1, 1, (10, 8)).astype(np.float32))
    (tmp_path / "recipe.yaml").write_text("name: rank1\nmodel: {path: m.tflite}\ndata: {npz: d.npz}\ngolden: {vectors: 4}\n")
    result = kit("convert", tmp_path / "recipe.yaml", "--out", tmp_path / "out")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "bit-exact on TFLM (C array vs golden): 4/4" in result.output
    with np.load(tmp_path / "out" / "golden.npz") as golden:
        assert golden["input_0"].shape == (4, 8) and golden["output_0"].shape == (4, 8)
