"""PyTorch models through litert-torch: the kit converts a torch.nn.Module to a full-integer int8
flatbuffer (PT2E, calibrated on the recipe's data) in a child process, with channels-last data fed as
the firmware feeds it; then the same flatbuffer stages, bit-exact validation and firmware as any model.

Needs torch and litert-torch (`pip install "tflm-kit[torch]"`, which `make test` installs) in the kit's
Python, or TFLM_KIT_TORCH_PYTHON naming a Python that has them; skips saying so otherwise. The refusals
need neither."""
import importlib.util
import json
import os
import sys

import numpy as np
import pytest
import yaml

from converter.errors import KitError
from converter.flows.convert import convert
from converter.progress import describe
from converter.recipe import parse_recipe

from .conftest import REPO, run_kit
from .firmware_tools import need_tools, tflm_root
from .torch_models import MIX


def need_torch() -> None:
    if os.environ.get("TFLM_KIT_TORCH_PYTHON"):
        return
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("litert_torch") is None:
        pytest.skip('needs torch and litert-torch: pip install "tflm-kit[torch]" (make test installs it), '
                    "or TFLM_KIT_TORCH_PYTHON=<a python that has them>")


def mixer_recipe(tmp_path, **torch_fields) -> dict:
    return {"name": "mixer", "data": {"random": {"samples": 48}}, "golden": {"vectors": 4},
            "model": {"torch": {"builder": f"{REPO / 'tests/torch_models.py'}:channel_mixer",
                                "input_shape": [6, 5, 3], "calibration_samples": 48, **torch_fields}},
            "compress": {"memory_plan": "offline", "strip_metadata": True}}  # lossless: the numbers stay checkable


def test_a_torch_module_converts_channels_last_and_runs_in_firmware(tmp_path):
    """The flatbuffer takes (1, H, W, C) int8 as the data is laid out and computes what the module does
    on the transposed input: MIX times each channel's mean (a wrong layout mixes rows, not channels)."""
    need_torch()
    from converter.flows.firmware import load_board
    from converter.tflite.model import read_model
    from converter.tflm.runners import dequantize, quantize_inputs, run_tflm

    out = tmp_path / "out"
    manifest = convert(parse_recipe(mixer_recipe(tmp_path), base_dir=tmp_path), out, log=lambda _: None).manifest
    assert manifest["summary"]["source"] == "torch" and manifest["summary"]["mode"] == "int8"
    assert [record["stage"] for record in manifest["stages"]] == ["compress"]
    exact = manifest["validation"]["tflm_vs_c_array"]
    assert exact["equal"] == exact["total"] == 4
    model = (out / "model.tflite").read_bytes()
    info = read_model(model)
    assert [(t.type, list(t.shape)) for t in info.inputs] == [("INT8", [1, 6, 5, 3])]
    assert info.outputs[0].type == "INT8"
    x = np.random.default_rng(1).uniform(0, 1, (8, 6, 5, 3)).astype(np.float32)
    got = dequantize(run_tflm(model, quantize_inputs(x, info))[0], info.outputs[0]).reshape(8, 4)
    expected = x.mean(axis=(1, 2)) @ MIX.T
    assert np.max(np.abs(got - expected)) < 4 * info.outputs[0].scale + 4 * info.inputs[0].scale

    root = os.environ.get("TFLM_ROOT") and tflm_root(load_board("host")["tflm_target"])
    if root:
        need_tools("make")
        from converter.flows.firmware import render_firmware
        from converter.flows.flash import flash

        render_firmware("host", out, tmp_path / "fw")
        summary = flash(tmp_path / "fw", str(root))
        assert summary["exit_status"] == 0 and summary["pass"] and summary["golden_differences"] == []


def test_a_quantize_section_is_refused_for_a_torch_model(tmp_path):
    recipe = mixer_recipe(tmp_path) | {"quantize": {"mode": "int8"}}
    with pytest.raises(KitError, match="a PyTorch model is quantized by litert-torch"):
        parse_recipe(recipe, base_dir=tmp_path)


def test_a_torch_python_that_is_not_there_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TFLM_KIT_TORCH_PYTHON", str(tmp_path / "no-such-python"))
    with pytest.raises(KitError, match=r"\$TFLM_KIT_TORCH_PYTHON is .*no-such-python, which is not an executable"):
        convert(parse_recipe(mixer_recipe(tmp_path), base_dir=tmp_path), tmp_path / "out", log=lambda _: None)
    assert not (tmp_path / "out").exists()


def test_a_failing_conversion_is_one_line_with_the_childs_cause(tmp_path):
    """The child's own error comes back on one line (here: litert-torch missing from the named Python, or
    the builder's ValueError where it is installed); nothing is written. (In-process: the CLI prints a
    KitError as one line with exit 2, tests/test_bad_inputs.py.)"""
    recipe = mixer_recipe(tmp_path, builder=f"{REPO / 'tests/torch_models.py'}:failing", python=sys.executable)
    with pytest.raises(KitError) as error:
        convert(parse_recipe(recipe, base_dir=tmp_path), tmp_path / "out", log=lambda _: None)
    text = str(error.value)
    assert "litert-torch could not convert the PyTorch model" in text and "\n" not in text
    assert "builder failed on purpose" in text or "No module named" in text
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def torch_kws(shared_data, tmp_path_factory):
    need_torch()
    out = tmp_path_factory.mktemp("torch_kws") / "torch_kws"
    result = run_kit("convert", REPO / "models/recipes/torch_kws.yaml", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.slow
def test_the_pytorch_kws_ds_cnn_converts_bit_for_bit(torch_kws):
    manifest = json.loads((torch_kws / "manifest.json").read_text())
    summary = manifest["summary"]
    assert summary["source"] == "torch" and summary["mode"] == "int8"
    assert set(summary["operators"]) >= {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED"}
    assert "TRANSPOSE" not in summary["operators"]  # channels-last folded into the graph, not a runtime op
    assert [list(t["shape"]) for t in manifest["model"]["inputs"]] == [[1, 49, 10, 1]]
    # trained briefly on 840 clips: far above chance (1/12), and int8 keeps the float accuracy
    float_accuracy, int8_accuracy = (float(summary[k].rstrip("%")) for k in ("float_quality", "quantized_quality"))
    assert float_accuracy > 40 and abs(float_accuracy - int8_accuracy) < 5
    for check in ("tflm_vs_c_array", "tflm_vs_litert_reference"):
        assert manifest["validation"][check]["equal"] == manifest["validation"][check]["total"] == 10


@pytest.mark.slow
@pytest.mark.parametrize("board", ["host", "cortex-m-qemu"])
def test_the_pytorch_kws_ds_cnn_runs_in_firmware(board, torch_kws, tmp_path):
    from converter.flows.firmware import load_board, render_firmware
    from converter.flows.flash import flash

    root = tflm_root(load_board(board)["tflm_target"])
    need_tools("make", *(("arm-none-eabi-gcc", "qemu-system-arm") if board != "host" else ()))
    render_firmware(board, torch_kws, tmp_path / "fw")
    summary = flash(tmp_path / "fw", str(root))
    count = np.load(torch_kws / "golden.npz")["output_0"].shape[0]
    assert summary["exit_status"] == 0 and summary["pass"], summary["failures"]
    assert (summary["passed"], summary["total"]) == (count, count) and summary["golden_differences"] == []


def test_an_exported_program_needs_trust(tmp_path):
    recipe = mixer_recipe(tmp_path)
    recipe["model"]["torch"] = {"exported": "mixer.pt2", "input_shape": [6, 5, 3]}
    with pytest.raises(KitError, match="torch.export.load, which unpickles the file"):
        parse_recipe(recipe, base_dir=tmp_path)


@pytest.mark.slow  # a second torch child (export, then convert): the builder path is the default-suite one
def test_an_exported_program_converts_when_trusted(tmp_path):
    """A torch.export.save file (channels-first, as exported) converts like a builder's module."""
    need_torch()
    import subprocess

    python = os.environ.get("TFLM_KIT_TORCH_PYTHON") or sys.executable
    save = ("import sys, torch; sys.path.insert(0, sys.argv[1]); from torch_models import channel_mixer; "
            "torch.export.save(torch.export.export(channel_mixer().eval(), (torch.zeros(1, 3, 6, 5),)), sys.argv[2])")
    subprocess.run([python, "-I", "-c", save, str(REPO / "tests"), str(tmp_path / "mixer.pt2")], check=True,
                   capture_output=True)
    recipe = mixer_recipe(tmp_path)
    recipe["model"] = {"trust_custom_code": True, "torch": {"exported": "mixer.pt2", "input_shape": [6, 5, 3]}}
    manifest = convert(parse_recipe(recipe, base_dir=tmp_path), tmp_path / "out", log=lambda _: None).manifest
    assert manifest["summary"]["source"] == "torch"
    assert manifest["validation"]["tflm_vs_c_array"]["equal"] == manifest["validation"]["tflm_vs_c_array"]["total"]
    assert [list(t["shape"]) for t in manifest["model"]["inputs"]] == [[1, 6, 5, 3]]


@pytest.mark.slow  # the torch child (export, PT2E, convert) plus two trials: 95 s on the loaded machine
def test_optimize_searches_a_torch_models_flatbuffer_levers(tmp_path):
    """optimize on a PyTorch recipe: litert-torch's int8 model made once in the child (base.tflite), whose
    float module also gives the reference outputs the guards compare with; int4 per filter, no retraining
    lever (one line says so); the winner rebuilt bit-exact on TFLM."""
    need_torch()
    from converter.flows.optimize import Options, optimize

    recipe = {"name": "convnet", "data": {"random": {"samples": 96}}, "golden": {"vectors": 4},
              "model": {"torch": {"builder": f"{REPO / 'tests/torch_models.py'}:small_convnet",
                                  "input_shape": [8, 8, 3], "calibration_samples": 48}}}
    (tmp_path / "convnet.yaml").write_text(yaml.safe_dump(recipe))
    lines = []
    outcome = optimize(tmp_path / "convnet.yaml", tmp_path / "search",
                       Options(board="cortex-m-qemu", trials=2, workers=1, device=False),
                       events=lambda event: lines.append(describe(event)))
    levers = [line for line in lines if line.startswith("levers for a PyTorch model")]
    assert len(levers) == 1 and "packed int4 per filter (2 of 2" in levers[0] and "left out: clusters" in levers[0]
    store = outcome.store
    assert store.settings["space"]["base"] == "flatbuffer" and (tmp_path / "search/base.tflite").is_file()
    assert [t.phase for t in store.trials] == ["reference", "int4"]
    with np.load(tmp_path / "search/data.npz") as data:  # the float module's outputs, from the child
        assert data["teacher_0"].shape == (len(data["x_test"]), 4)
    assert store.trials[0].passed and store.trials[0].metrics["top1_agreement"] >= 0.95
    assert outcome.reproduced is True
    exact = json.loads((tmp_path / "search/best/manifest.json").read_text())["validation"]["tflm_vs_c_array"]
    assert exact["equal"] == exact["total"] == 4
