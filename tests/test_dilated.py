"""Dilated convolutions (issue 18): the TFLite converter lowers them to SPACE_TO_BATCH_ND -> convolution
-> BATCH_TO_SPACE_ND with a static batch of 1 where the ops produce prod(block); TFLM trusts it, computes
half the data and reads other memory into the outputs (the host agreed with itself, a Cortex-M4 failed
0/8). The kit folds the chain into one dilated convolution (proven against LiteRT's reference kernels),
and refuses, naming the operators and tensors, whatever it does not fold: in convert, validate and
golden record. Differences from LiteRT beyond the explained FULLY_CONNECTED rounding fail a conversion
unless the recipe accepts them.
"""
import json
import re

import numpy as np
import pytest

from converter.compare.divergence import compare_pair, explained
from converter.errors import KitError
from converter.flows.convert import convert
from converter.flows.convert_output import check_litert_differences
from converter.recipe import parse_recipe
from converter.tflite.dilation import fold_dilated_convolutions
from converter.tflite.model import Graph, Node, TensorInfo, read_model
from converter.tflite.tflite_model import TfliteModel
from converter.tflm.consistency import check_consistent, memory_dependence
from converter.tflm.runners import run_model

from .conftest import run_kit
from .firmware_tools import need_tools, tflm_root

# kind -> (input shape, layer), each as a user writes it; the expected fold (op, dilation (h, w), padding)
MODELS = {
    "conv1d": ((32, 4), ("CONV_2D", (1, 2), "VALID")),
    "conv2d": ((12, 12, 3), ("CONV_2D", (2, 2), "SAME")),
    "depthwise": ((12, 12, 4), ("DEPTHWISE_CONV_2D", (2, 3), "VALID")),
    # its depthwise half: EXPAND_DIMS comes before SPACE_TO_BATCH_ND, whose block is (1, 2)
    "separable1d": ((32, 4), ("DEPTHWISE_CONV_2D", (1, 2), "SAME")),
}


def _keras_model(kind):
    import tf_keras as keras

    shape = MODELS[kind][0]
    inputs = keras.Input(shape)
    x = {"conv1d": lambda: keras.layers.Conv1D(12, 3, dilation_rate=2, activation="relu")(inputs),
         "conv2d": lambda: keras.layers.Conv2D(8, 3, dilation_rate=2, padding="same")(inputs),
         "depthwise": lambda: keras.layers.DepthwiseConv2D(3, dilation_rate=(2, 3))(inputs),
         "separable1d": lambda: keras.layers.SeparableConv1D(8, 3, dilation_rate=2, padding="same")(inputs)}[kind]()
    outputs = keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="session")
def dilated(tmp_path_factory):
    """kind -> (folder with model.h5, data.npz and the converter's unfolded model.tflite)."""
    from converter.inputs.dataset import Dataset
    from converter.stages.quantize import QuantizeSettings, convert as tflite_convert
    from converter.system import tf_env

    tf_env.deterministic(0)
    made = {}
    for kind in MODELS:
        folder = tmp_path_factory.mktemp(kind)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(48, *MODELS[kind][0])).astype(np.float32)
        y = rng.integers(0, 4, 48)
        model = _keras_model(kind)
        model.save(folder / "model.h5")
        np.savez(folder / "data.npz", x_train=x[:32], y_train=y[:32], x_test=x[32:], y_test=y[32:])
        data = Dataset(x_train=x[:32], y_train=y[:32], x_calibration=x[:32], x_eval=x[32:], y_eval=y[32:], labels=None)
        (folder / "model.tflite").write_bytes(tflite_convert(model, QuantizeSettings(calibration_samples=32), data))
        made[kind] = folder
    return made


def _vectors(model_bytes, count=8, seed=1):
    info = read_model(model_bytes)
    return [np.random.default_rng(seed).integers(-128, 128, (count, *t.shape[1:]), dtype=np.int8) for t in info.inputs]


def _ops(model_bytes):
    model = TfliteModel.from_bytes(model_bytes)
    return [model.operator_name(op) for op in model.operators]


@pytest.mark.parametrize("kind", MODELS)
def test_the_chain_folds_into_one_dilated_convolution_equal_to_litert(kind, dilated):
    original = (dilated[kind] / "model.tflite").read_bytes()
    assert {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"} <= set(_ops(original))
    folded = fold_dilated_convolutions(original)
    op, dilation, padding = MODELS[kind][1]
    assert [(f.op, f.dilation, f.padding) for f in folded.folds] == [(op, dilation, padding)]
    assert not {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"} & set(_ops(folded.model_bytes))
    assert folded.operators_before["SPACE_TO_BATCH_ND"] == 1 and "SPACE_TO_BATCH_ND" not in folded.operators_after
    # a standard convolution with its dilation options: what TFLM, CMSIS-NN and an AOT runtime read
    model = TfliteModel.from_bytes(folded.model_bytes)
    conv = next(o for o in model.operators if model.operator_name(o) == op)
    assert (conv.builtinOptions.dilationHFactor, conv.builtinOptions.dilationWFactor) == dilation
    for signature in model.root.signatureDefs:  # renumbered with the tensors: LiteRT's signature runner reads them
        assert [int(t.tensorIndex) for t in signature.outputs] == [int(t) for t in model.subgraph.outputs]
    inputs = _vectors(original)
    expected = run_model(original, inputs, "litert_reference").outputs[0]
    assert np.array_equal(run_model(folded.model_bytes, inputs, "litert_reference").outputs[0], expected)
    assert np.array_equal(run_model(folded.model_bytes, inputs, "tflm").outputs[0], expected)  # no FC rounding here
    check_consistent(folded.model_bytes, [x[:2] for x in inputs])  # passes: nothing reads other memory


@pytest.mark.parametrize("kind", MODELS)
def test_the_unfolded_model_is_refused_naming_the_operators_and_tensors(kind, dilated):
    original = (dilated[kind] / "model.tflite").read_bytes()
    with pytest.raises(KitError) as caught:
        check_consistent(original, [x[:2] for x in _vectors(original)])
    message = str(caught.value)
    assert caught.value.code == "runtime-shape-mismatch" and "\n" not in message
    assert re.search(r"SPACE_TO_BATCH_ND \(operator \d\) to BATCH_TO_SPACE_ND", message) and "SpaceToBatchND'" in message


def test_tflm_outputs_that_move_with_the_arena_are_found(dilated):
    """The second symptom, checked on its own: the same inputs, tensors placed otherwise, other outputs."""
    original = (dilated["conv1d"] / "model.tflite").read_bytes()
    inputs = [x[:2] for x in _vectors(original)]
    assert memory_dependence(original, inputs) is not None
    assert memory_dependence(fold_dilated_convolutions(original).model_bytes, inputs) is None


def test_memory_dependence_alone_is_refused_naming_the_operator(dilated, monkeypatch):
    """Whatever the operator: with the shape check blinded, the placement check still refuses."""
    import converter.tflm.consistency as consistency

    monkeypatch.setattr(consistency, "shape_mismatches", lambda *args: [])
    original = (dilated["conv1d"] / "model.tflite").read_bytes()
    with pytest.raises(KitError) as caught:
        check_consistent(original, [x[:2] for x in _vectors(original)])
    assert caught.value.code == "memory-dependent-output" and "the same inputs give other outputs" in str(caught.value)


def _recipe(folder, tmp_path, **changes):
    return parse_recipe({"name": "dilated", "model": {"path": str(folder / "model.h5")},
                         "data": {"npz": str(folder / "data.npz")}, "golden": {"vectors": 8}} | changes,
                        base_dir=tmp_path)


def test_convert_rewrites_a_dilated_conv1d_and_is_bit_exact(dilated, tmp_path):
    manifest = convert(_recipe(dilated["conv1d"], tmp_path), tmp_path / "out")
    (rewrite,) = manifest["rewrites"]
    assert rewrite["operators_before"]["BATCH_TO_SPACE_ND"] == 1 and "BATCH_TO_SPACE_ND" not in rewrite["operators_after"]
    assert rewrite["proof"]["litert_reference_rewritten_vs_original"]["equal"] == 8
    assert rewrite["proof"]["tflm_rewritten_vs_litert_reference_original"]["equal"] == 8
    for pair in ("tflm_vs_c_array", "tflm_vs_litert_reference"):
        assert manifest["validation"][pair]["equal"] == manifest["validation"][pair]["total"] == 8
    assert "SPACE_TO_BATCH_ND" not in manifest["model"]["operators"]
    quantize = manifest["stages"][0]
    assert quantize["tflite_bytes"] == manifest["model"]["bytes"] < quantize["tflite_bytes_before_rewrite"]
    assert "Rewrite: SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND chains folded" in (tmp_path / "out/report.md").read_text()


@pytest.mark.parametrize("kind", ["conv2d", "depthwise"])
def test_convert_rewrites_a_tflite_source(kind, dilated, tmp_path):
    recipe = _recipe(dilated[kind], tmp_path, model={"path": str(dilated[kind] / "model.tflite")})
    manifest = convert(recipe, tmp_path / "out")
    assert manifest["rewrites"][0]["folds"][0]["op"] == MODELS[kind][1][0]
    assert manifest["summary"]["bit_exact_on_tflm"]
    assert manifest["validation"]["tflm_vs_litert_reference"]["equal"] == 8


def test_convert_without_the_rewrite_refuses_and_writes_nothing(dilated, tmp_path):
    recipe = _recipe(dilated["conv1d"], tmp_path, model={"path": str(dilated["conv1d"] / "model.tflite")},
                     validation={"rewrite_dilated_convolutions": False})
    with pytest.raises(KitError, match="SPACE_TO_BATCH_ND .* to BATCH_TO_SPACE_ND"):
        convert(recipe, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_validate_and_golden_record_refuse_in_one_line(dilated, tmp_path):
    model = dilated["conv1d"] / "model.tflite"
    result = run_kit("validate", model, "--vectors", "4")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "BATCH_TO_SPACE_ND" in errors[0] and "SpaceToBatchND" in errors[0]
    from converter.flows.golden import record

    with pytest.raises(KitError, match="disagree on tensor shapes"):
        record(model, None, tmp_path / "golden", vectors=4, seed=0)
    assert not (tmp_path / "golden").exists()


def test_a_shape_mismatch_between_runtimes_is_a_finding_not_a_traceback():
    """divergence.py compared intermediates by reshaping both to one row: (1,360) vs (1,180) raised."""
    tensor = TensorInfo("t", "INT8", (1, 180), 1.0, 0)
    graph = Graph((Node(0, "BATCH_TO_SPACE_ND", (0,), (1,)),), {0: tensor, 1: tensor})
    golden = [{1: np.zeros((1, 180), np.int8)}]
    other = [{1: np.zeros((2, 180), np.int8)}]
    report = compare_pair(graph, golden, other, "BUILTIN_REF")
    assert report["first_divergences"][0]["shape_mismatch"] and report["vectors_differing"] == 1


def test_litert_differences_fail_unless_explained_or_accepted(dilated):
    assert explained({"op": "FULLY_CONNECTED", "max_lsb": 1})
    assert not explained({"op": "FULLY_CONNECTED", "max_lsb": 2}) and not explained({"op": "CONV_2D", "max_lsb": 1})
    original = (dilated["conv1d"] / "model.tflite").read_bytes()  # TFLM parts from LiteRT at SPACE_TO_BATCH_ND
    inputs = _vectors(original, count=2)
    validation = {"tflm_vs_litert_reference": {"equal": 0, "total": 2}}
    with pytest.raises(KitError, match=r"part from TFLM at SPACE_TO_BATCH_ND .*accept_litert_differences: "
                                       r"\[SPACE_TO_BATCH_ND\]"):
        check_litert_differences(validation, original, inputs, [])
    accepted = check_litert_differences(validation, original, inputs, ["SPACE_TO_BATCH_ND"])
    assert accepted["accepted"] == ["SPACE_TO_BATCH_ND"]
    with pytest.raises(KitError, match="not a TFLite builtin operator name"):
        parse_recipe({"name": "x", "model": {"path": "m.tflite"}, "data": {"random": {}},
                      "validation": {"accept_litert_differences": ["CONV2D"]}})


@pytest.mark.slow  # builds TFLM firmware and runs it under QEMU: about 60 s on a busy machine
def test_the_rewritten_conv1d_passes_on_an_emulated_cortex_m4(dilated, tmp_path):
    """The issue's device failure: the unfolded model gave 0/8 on Cortex-M4 firmware."""
    from converter.flows.firmware import load_board, render_firmware
    from converter.flows.flash import flash

    root = tflm_root(load_board("cortex-m-qemu")["tflm_target"])
    need_tools("make", "arm-none-eabi-gcc", "qemu-system-arm")
    out = tmp_path / "out"
    convert(_recipe(dilated["conv1d"], tmp_path), out)
    render_firmware("cortex-m-qemu", out, tmp_path / "fw")
    summary = flash(tmp_path / "fw", str(root))
    assert summary["exit_status"] == 0 and summary["pass"], summary["failures"]
    assert (summary["passed"], summary["total"]) == (8, 8)
    assert json.loads((out / "manifest.json").read_text())["rewrites"]
