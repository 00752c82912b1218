"""`tflm-kit validate`: runtimes compared at the outputs and operator by operator, fidelity, bad input."""
import json

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from converter.errors import KitError
from converter.flows.validate import validate_model

from .conftest import REPO, run_kit

TINY = REPO / "tests" / "data" / "not_this_model.tflite"


def quiet(_):
    pass


def assert_one_line_error(result, expected):
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0] and "fix:" in errors[0], result.stderr[-2000:]


def test_validate_cli_writes_reports_for_the_demo_model(demo_dir, tmp_path):
    out = tmp_path / "report"
    result = run_kit("validate", demo_dir / "model.tflite", "--vectors", 12, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tflm_vs_litert_reference: " in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["data"].startswith("12 seeded random inputs")
    assert set(report["outputs"]) == {"tflm_vs_litert_reference", "tflm_vs_litert_optimized"}
    for pair in report["operators"].values():
        assert pair["vectors"] == 12
        assert set(pair["operators"]) == set(report["model"]["operators"])
        for row in pair["operators"].values():
            assert row["vectors_compared"] == 12
    assert "Where runtimes first differ" in (out / "report.md").read_text()


def test_seeded_inputs_are_reproducible(demo_dir):
    first = validate_model(demo_dir / "model.tflite", vectors=5, seed=3, log=quiet)
    second = validate_model(demo_dir / "model.tflite", vectors=5, seed=3, log=quiet)
    assert first["outputs"] == second["outputs"] and first["operators"] == second["operators"]


def test_float_data_is_quantized_and_labels_give_accuracy(tmp_path):
    """The tiny model: float inputs from --data, its own float twin as the reference."""
    x = np.random.default_rng(0).random((16, 12), np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(16, np.int64))
    report = validate_model(TINY, data=tmp_path / "d.npz", vectors=16, log=quiet)
    assert report["data"] == f"16 inputs from {tmp_path / 'd.npz'}"
    assert report["outputs"]["tflm_vs_litert_reference"]["total"] == 16


def test_divergences_name_the_operator_on_the_mlperf_autoencoder(shared_data):
    """The known case: LiteRT's reference FULLY_CONNECTED rounds differently from TFLM's."""
    model = shared_data / "mlperf_tiny/anomaly_detection/ad01_int8.tflite"
    report = validate_model(model, vectors=10, log=quiet)
    reference = report["operators"]["litert_reference"]
    assert reference["vectors_differing"] > 0
    first = reference["first_divergences"]
    assert first and all(entry["op"] == "FULLY_CONNECTED" for entry in first)
    row = reference["operators"]["FULLY_CONNECTED"]
    assert row["max_lsb"] >= 1 and sum(row["histogram"].values()) == row["elements_differing"]
    assert report["outputs"]["tflm_vs_litert_reference"]["max_lsb"] >= 1


def test_fidelity_and_per_layer_sqnr_against_the_float_resnet(shared_data, tmp_path):
    cifar = np.load(shared_data / "cifar10/cifar10_jpeg.npz")
    np.savez(tmp_path / "d.npz", x=cifar["x_test"][:24].astype(np.float32), y=cifar["y_test"][:24])
    ic = shared_data / "mlperf_tiny/image_classification"
    out = tmp_path / "report"
    result = run_kit("validate", ic / "pretrainedResnet_quant.tflite", "--data", tmp_path / "d.npz",
                     "--float-model", ic / "pretrainedResnet.h5", "--vectors", 24, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    fidelity = report["fidelity"]
    assert fidelity["top1_agreement"] >= 0.8 and fidelity["sqnr_db"] > 10
    assert {"rmse", "mae", "relative_l2", "cosine_similarity", "accuracy_float", "accuracy_quantized"} <= set(fidelity)
    layers = report["per_layer_sqnr"]
    assert len(layers) >= 8 and all(0 < row["sqnr_db"] < 80 for row in layers)
    assert (out / "differences.png").stat().st_size > 1000


def with_opcode(model_bytes: bytes, builtin: int) -> bytes:
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    model.operatorCodes[0].builtinCode = builtin
    model.operatorCodes[0].deprecatedBuiltinCode = min(builtin, 127)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize("content, expected", [
    (b"", "the model file is empty"),
    (b"this is not a model at all", "not a TFLite flatbuffer"),
    ("truncated", "truncated or corrupt"),
    ("unsupported", "TFLM has no kernel for operator(s) TOPK_V2"),
])
def test_bad_models_are_one_line_errors(tmp_path, content, expected):
    model = TINY.read_bytes()
    if content == "truncated":
        content = model[: len(model) // 2]
    elif content == "unsupported":
        content = with_opcode(model, schema.BuiltinOperator.TOPK_V2)
    path = tmp_path / "m.tflite"
    path.write_bytes(content)
    out = tmp_path / "out"
    assert_one_line_error(run_kit("validate", path, "--out", out), expected)
    assert not out.exists()


@pytest.mark.parametrize("x, expected", [
    (np.zeros((4, 13), np.float32), "data inputs have shape (13,) per sample but the model takes (12,)"),
    (np.zeros((4, 12), np.uint8), "data inputs are uint8 but the model input is int8"),
])
def test_data_that_does_not_fit_the_model(tmp_path, x, expected):
    np.savez(tmp_path / "d.npz", x=x)
    with pytest.raises(KitError) as error:
        validate_model(TINY, data=tmp_path / "d.npz", log=quiet)
    assert expected in str(error.value)


def test_a_runtime_crash_while_validating_is_a_kit_error(tmp_path, monkeypatch):
    """The child process dies by a signal (as a runtime would on a malformed model); the kit reports it,
    naming the runtime the child said it was running."""
    import converter.tflm.child as child

    crasher = tmp_path / "crasher"
    crasher.write_text("#!/bin/sh\n"
                       "echo '{\"kind\": \"progress\", \"message\": \"running TFLM\", \"data\": {\"runtime_name\": \"TFLM\"}}'\n"
                       "kill -SEGV $$\n")
    crasher.chmod(0o755)
    monkeypatch.setattr(child.sys, "executable", str(crasher))
    heard = []
    with pytest.raises(KitError, match=r"TFLM crashed \(SIGSEGV\) while validating"):
        validate_model(TINY, log=heard.append)
    assert heard[-1] == "running TFLM"


def test_validate_in_child_gives_the_same_report(demo_dir):
    from converter.flows.validate import validate_in_child

    child = validate_in_child(demo_dir / "model.tflite", vectors=4, seed=1, log=quiet)
    here = validate_model(demo_dir / "model.tflite", vectors=4, seed=1, log=quiet)
    assert child["outputs"] == here["outputs"] and child["operators"] == here["operators"]


# --- several inputs and outputs ----------------------------------------------------------------

def test_a_two_input_model_validates_from_data_per_input(tmp_path):
    from .multi_input import TFLITE

    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x_0=rng.uniform(-1, 1, (7, 6)).astype(np.float32),
             x_1=rng.integers(-128, 128, (7, 6)).astype(np.float32) / 128)
    report = validate_model(TFLITE, data=tmp_path / "d.npz", vectors=7, log=quiet)
    assert len(report["model"]["inputs"]) == 2 and len(report["model"]["outputs"]) == 2
    assert report["outputs"]["tflm_vs_litert_reference"]["total"] == 7
    assert set(report["operators"]["litert_reference"]["operators"]) == {"ADD", "FULLY_CONNECTED"}
    seeded = validate_model(TFLITE, vectors=4, seed=2, log=quiet)
    assert seeded["outputs"]["tflm_vs_litert_optimized"]["total"] == 4


def test_a_two_input_model_needs_data_for_each_input(tmp_path):
    from .multi_input import TFLITE

    np.savez(tmp_path / "d.npz", x=np.zeros((3, 6), np.float32))
    with pytest.raises(KitError, match=r"the model has 2 inputs but data file .* does not hold x_0 … x_1"):
        validate_model(TFLITE, data=tmp_path / "d.npz", log=quiet)
    np.savez(tmp_path / "d.npz", x_0=np.zeros((3, 6), np.float32), x_1=np.zeros((2, 6), np.float32))
    with pytest.raises(KitError, match=r"different numbers of samples per input \(\[3, 2\]\)"):
        validate_model(TFLITE, data=tmp_path / "d.npz", log=quiet)


@pytest.mark.slow
def test_a_two_input_float_model_gives_fidelity_per_output(tmp_path):
    from .multi_input import FLOAT_MODEL, TFLITE

    rng = np.random.default_rng(3)
    np.savez(tmp_path / "d.npz", x_0=rng.uniform(-1, 1, (16, 6)).astype(np.float32),
             x_1=rng.uniform(-1, 1, (16, 6)).astype(np.float32))
    report = validate_model(TFLITE, data=tmp_path / "d.npz", float_model=FLOAT_MODEL, vectors=16, log=quiet)
    assert len(report["fidelity_per_output"]) == 2 and report["fidelity"] == report["fidelity_per_output"][0]
    assert all(metrics["vectors"] == 16 for metrics in report["fidelity_per_output"])
    from converter.reports.validation_report import render_markdown

    assert "| metric | output 0 | output 1 |" in render_markdown(report)


# --- bad input at the boundary: one line, exit 2, nothing written --------------------------------

@pytest.mark.parametrize("arrays, expected", [
    ({"x": np.array([object(), None], dtype=object)}, "holds Python objects (a pickle)"),
    ({"x": np.zeros((3, 12), np.complex64)}, "array 'x' is complex (complex64)"),
    ({"x": np.array(["a", "b"])}, "(not numeric)"),
])
def test_data_files_the_kit_does_not_read(tmp_path, arrays, expected):
    np.savez(tmp_path / "d.npz", **arrays)
    out = tmp_path / "out"
    assert_one_line_error(run_kit("validate", TINY, "--data", tmp_path / "d.npz", "--out", out), expected)
    assert not out.exists()


def test_a_negative_seed_is_a_one_line_error(tmp_path):
    assert_one_line_error(run_kit("validate", TINY, "--seed", -5), "seed must be a whole number of 0 or more")
    with pytest.raises(KitError, match="vectors must be"):
        validate_model(TINY, vectors=0, log=quiet)


def test_each_runtime_runs_once_in_the_child():
    """TFLM once (outputs and intermediates from the same invokes), LiteRT reference once, the
    optimized kernels with XNNPACK (outputs) and without it (intermediates): no smoke run first."""
    heard = []
    validate_model(TINY, vectors=3, log=heard.append)
    assert [m for m in heard if m.startswith("running ") and "vectors" not in m] == [
        "running TFLM", "running LiteRT", "running LiteRT optimized kernels",
        "running LiteRT optimized kernels (no XNNPACK)"]


def test_a_stripped_model_is_refused_by_litert_with_the_reason_and_the_way_out(demo_dir, tmp_path):
    """compress strip_metadata keeps one zero point for per-channel tensors (TFLM expands it); LiteRT refuses
    such a model, and the fix must say why and what to validate instead, not 're-export the model'."""
    from converter import strip_metadata

    stripped, saved = strip_metadata((demo_dir / "model.tflite").read_bytes())
    assert saved  # the demo's per-channel tensors had repeated zero points to drop
    (tmp_path / "stripped.tflite").write_bytes(stripped)
    result = run_kit("validate", tmp_path / "stripped.tflite", "--vectors", 2, "--out", tmp_path / "report")
    assert result.returncode == 2 and "strip_metadata" in result.stderr.split("fix:")[1]
    assert not (tmp_path / "report").exists()
