"""The generated resolver's type-specialised kernels, their pricing, and the labelled target arena (no TensorFlow)."""
import os
from pathlib import Path

import pytest

from converter.emit.sources import with_arena
from converter.errors import KitError
from converter.reports.deployed import DeployedComparison
from converter.tflite.tflite_model import TfliteModel
from converter.tflm import target_arena
from converter.tflm.footprint import deployed_flash, model_flash
from converter.tflm.kernels import choose_kernels, registered_variants
from converter.tflm.ports import load_port

DATA = Path(__file__).resolve().parent.parent / "data"
INT4 = 17  # schema TensorType


def _two_inputs(int4_filters: tuple[int, ...] = ()) -> bytes:
    """ADD -> FULLY_CONNECTED x2, all int8; the named FULLY_CONNECTED nodes' filters retyped INT4."""
    model = TfliteModel.from_bytes((DATA / "two_inputs.tflite").read_bytes())
    fcs = [op for op in model.operators if model.operator_name(op) == "FULLY_CONNECTED"]
    for n in int4_filters:
        model.tensors[int(fcs[n].inputs[1])].type = INT4
    return model.to_bytes()


def test_each_operator_gets_the_kernel_of_its_types():
    assert registered_variants(_two_inputs()) == {"ADD": "INT8", "FULLY_CONNECTED": "INT8"}
    assert registered_variants(_two_inputs((0, 1))) == {"ADD": "INT8", "FULLY_CONNECTED": "INT4"}
    # one node int4, the other int8: a resolver holds one FULLY_CONNECTED, so the generic one
    assert registered_variants(_two_inputs((0,))) == {"ADD": "INT8"}


def test_a_port_without_the_registration_gets_the_generic_kernel():
    model = _two_inputs((0, 1))
    ops, counts = ["ADD", "FULLY_CONNECTED"], {"ADD": 1, "FULLY_CONNECTED": 2}
    upstream = {c.op: c.registration for c in choose_kernels(model, ops, counts, load_port("tflite-micro").registrations)}
    arduino = {c.op: c.registration for c in
               choose_kernels(model, ops, counts, load_port("Arduino_TensorFlowLite").registrations)}
    assert upstream == {"ADD": "Register_ADD_INT8", "FULLY_CONNECTED": "Register_FULLY_CONNECTED_INT4"}
    assert arduino == {"ADD": "Register_ADD_INT8", "FULLY_CONNECTED": None}


def test_specialised_kernels_are_priced_from_their_own_measurement():
    model = _two_inputs()
    generic = deployed_flash(len(model), ["ADD", "FULLY_CONNECTED"], "cortex-m4")
    lean = model_flash(model, "cortex-m4")
    assert set(lean.kernels) == {"ADD/INT8", "FULLY_CONNECTED/INT8"}
    assert lean.total < generic.total
    assert model_flash(model, "cortex-m0plus").target == "cortex-m0plus"


def test_model_settings_takes_another_arena_and_refuses_foreign_text():
    text = "namespace x {\n// Tensor arena: 27856 bytes host\n// more\nconstexpr int kArenaMeasuredBytes = 27856;\n" \
           "constexpr int kTensorArenaSize = 30656;\n\nconstexpr int kInputCount = 1;\n"
    out = with_arena(text, 15332, 16880, "// Tensor arena: 15332 bytes measured on cortex-m4")
    assert "kTensorArenaSize = 16880;" in out and "27856" not in out and "kInputCount = 1" in out
    with pytest.raises(KitError):
        with_arena("constexpr int kTensorArenaSize = 1;", 1, 16, "// x")


def test_every_arena_figure_says_where_it_comes_from():
    device = target_arena.measured(15332, "cortex-m4")
    host = target_arena.host(27856, "x86_64")
    assert device.on_device and "cortex-m4 under QEMU" in device.source
    assert not host.on_device and "not a device figure" in host.source
    assert target_arena.arena_core("cortex-m4f") == ("cortex-m4", "")
    assert target_arena.arena_core("cortex-m0plus") == ("cortex-m0plus", "")
    core, note = target_arena.arena_core("xtensa-lx7")
    assert core == "cortex-m4" and "cannot be emulated" in note
    assert target_arena.with_margin(15332, 0.10) == 16880 and target_arena.with_margin(15332, 0.0) == 15344


def test_the_deployed_line_labels_target_and_host_figures():
    line = DeployedComparison("cortex-m4", "TFLM code-size data for cortex-m4", 132464, 118768,
                              target_arena.measured(1, "cortex-m4").source, 15428, 15332, True, "x86_64",
                              16288, 27856).line()
    assert "arena 15,428 -> 15,332 B (-96; measured on cortex-m4 under QEMU" in line
    assert "host x86_64, not the device's: 16,288 -> 27,856 B" in line


def test_device_check_setting(monkeypatch):
    from converter.runtimes import device_check

    monkeypatch.setenv(device_check.ENV, "off")
    assert device_check.resolve_setting("auto") is None
    assert device_check.resolve_setting("off") is None
    monkeypatch.setenv("TFLM_ROOT", "/nonexistent")
    with pytest.raises(KitError) as missing:
        device_check.resolve_setting("cortex-m7")
    assert "TFLM_ROOT" in str(missing.value)
    with pytest.raises(KitError):
        device_check.resolve_setting("cortex-m5")
    monkeypatch.setenv(device_check.ENV, "auto")
    assert device_check.resolve_setting("auto") is None  # no library under /nonexistent: auto stays off
    assert os.environ["TFLM_ROOT"] == "/nonexistent"
