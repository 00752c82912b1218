"""The staged write: every check passes before the artifacts replace --out."""
import time
from types import SimpleNamespace

import numpy as np
import pytest

from converter.errors import KitError
from converter.flows.convert_output import check_and_write, check_validation

from .test_records_and_reports import _parts

EXACT = {"equal": 3, "total": 3, "max_lsb": 0, "max_abs_difference": 0}
OFF = {"equal": 2, "total": 3, "max_lsb": 1, "max_abs_difference": 1}


def test_bit_exact_pairs_must_hold(tmp_path):
    check_validation({"tflm_vs_c_array": EXACT, "tflm_vs_litert_optimized": OFF}, tmp_path)  # LiteRT may differ
    with pytest.raises(KitError, match=r"model_data.cc gave different TFLM outputs \(2/3 vectors equal\)"):
        check_validation({"tflm_vs_c_array": OFF}, tmp_path)
    with pytest.raises(KitError, match="remove the compress step"):
        check_validation({"tflm_vs_c_array": EXACT, "tflm_vs_tflm_uncompressed": OFF}, tmp_path)


def _write(out, validation):
    arrays = [np.zeros((1, 4), np.int8)]
    return check_and_write(out, b"model", {"model_data.h": "// h\n"}, arrays, arrays,
                           _parts(validation={"tflm_vs_c_array": validation}),
                           SimpleNamespace(notes=["", ""], sections=[], artifacts={}), time.perf_counter())


def test_a_failed_check_leaves_the_previous_output_as_it_was(tmp_path):
    out = tmp_path / "out"
    manifest = _write(out, EXACT)
    assert {a["file"] for a in manifest["artifacts"]} == {"model.tflite", "model_data.h", "golden.npz", "report.md"}
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(KitError):
        _write(out, OFF)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left behind
