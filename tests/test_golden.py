"""Golden-output regression: record, check, catch a flipped weight byte, and the pytest plugin."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from converter.errors import KitError
from converter.flows.golden import GoldenMismatch, check
from converter.tflite.model import read_graph
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from .conftest import REPO, run_kit


@pytest.fixture(scope="module")
def recorded(demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("golden") / "digits"
    result = run_kit("golden", "record", demo_dir / "model.tflite", "--out", out, "--vectors", 16)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def flip_largest_weight(model_bytes: bytes) -> tuple[bytes, int]:
    """Negate the largest-magnitude weight of the last FULLY_CONNECTED: one byte, a sure output change."""
    graph = read_graph(model_bytes)
    node = [n for n in graph.nodes if n.op == "FULLY_CONNECTED"][-1]
    model = schema.Model.GetRootAs(model_bytes, 0)
    buffer = model.Buffers(model.Subgraphs(0).Tensors(node.inputs[1]).Buffer())
    start = buffer._tab.Vector(buffer._tab.Offset(4))
    weights = np.frombuffer(model_bytes, np.int8, buffer.DataLength(), start)
    position = start + int(np.argmax(np.abs(weights.astype(np.int16))))
    flipped = bytearray(model_bytes)
    flipped[position] = np.uint8(np.int8(-max(-127, np.frombuffer(model_bytes, np.int8, 1, position)[0])).view(np.uint8))
    return bytes(flipped), position


def test_recorded_goldens_pass_on_the_same_model(recorded):
    result = run_kit("golden", "check", recorded)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "PASS: 16 vectors" in result.stdout and "same model bytes" in result.stdout


def test_a_flipped_weight_byte_fails_naming_output_and_index(recorded, demo_dir, tmp_path):
    flipped, _ = flip_largest_weight((demo_dir / "model.tflite").read_bytes())
    path = tmp_path / "flipped.tflite"
    path.write_bytes(flipped)
    result = run_kit("golden", "check", recorded, path)
    assert result.returncode == 1
    assert "FAIL:" in result.stderr and "output 0 index" in result.stderr and "expected" in result.stderr
    assert "model bytes changed since recording" in result.stderr
    with pytest.raises(GoldenMismatch, match=r"vector \d+ output 0 index \d+: expected -?\d+, got -?\d+"):
        check(recorded, path)


def test_strict_model_refuses_other_bytes(recorded, demo_dir, tmp_path):
    path = tmp_path / "flipped.tflite"
    path.write_bytes(flip_largest_weight((demo_dir / "model.tflite").read_bytes())[0])
    with pytest.raises(KitError, match="--strict-model"):
        check(recorded, path, strict_model=True)


def test_goldens_from_another_model_are_refused(recorded, tmp_path):
    other = REPO / "tests" / "data" / "not_this_model.tflite"
    if not other.exists():
        pytest.skip("fixture model missing")
    result = run_kit("golden", "check", recorded, other)
    assert result.returncode == 2 and "are from another model" in result.stderr


def test_convert_output_is_a_golden_folder(demo_dir):
    assert check(demo_dir)["vectors"] == 10


def test_pytest_plugin_catches_a_changed_output_in_a_user_suite(recorded, demo_dir, tmp_path):
    suite = tmp_path / "user_suite"
    suite.mkdir()
    (suite / "model.tflite").write_bytes((demo_dir / "model.tflite").read_bytes())
    (suite / "test_model.py").write_text(textwrap.dedent(f"""
        def test_model_matches_goldens(tflm_golden):
            tflm_golden.check({str(recorded)!r}, "model.tflite")
    """))
    run = lambda: subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],  # noqa: E731
                                 cwd=suite, capture_output=True, text=True)
    passing = run()
    assert passing.returncode == 0, passing.stdout[-2000:]
    (suite / "model.tflite").write_bytes(flip_largest_weight((demo_dir / "model.tflite").read_bytes())[0])
    failing = run()
    assert failing.returncode == 1
    assert "golden outputs changed" in failing.stdout and "output 0 index" in failing.stdout


def test_a_two_input_two_output_model_records_and_checks(tmp_path):
    from .multi_input import TFLITE

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", input_0=rng.uniform(-1, 1, (5, 6)).astype(np.float32),
             input_1=rng.uniform(-1, 1, (5, 6)).astype(np.float32))
    out = tmp_path / "goldens"
    result = run_kit("golden", "record", TFLITE, "--data", tmp_path / "d.npz", "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    with np.load(out / "golden.npz") as vectors:
        assert sorted(vectors.files) == ["input_0", "input_1", "output_0", "output_1"]
        assert vectors["output_0"].shape == (5, 3) and vectors["output_1"].shape == (5, 1)
    assert check(out)["outputs"] == 2


# --- damaged golden folders: a one-line error, never a pass or a traceback ------------------------

def _copy(recorded, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(recorded, folder)
    return folder


def _rewrite_vectors(folder, change):
    with np.load(folder / "golden.npz") as vectors:
        arrays = dict(vectors)
    change(arrays)
    np.savez(folder / "golden.npz", **arrays)


@pytest.mark.parametrize("damage, expected", [
    (lambda f: (f / "golden.json").write_text((f / "golden.json").read_text()[:40]), "is not valid JSON (truncated"),
    (lambda f: (f / "golden.json").write_text("[1, 2]"), "does not hold a JSON object"),
    (lambda f: (f / "golden.json").write_text((f / "golden.json").read_text().replace('"vectors": 16', '"vectors": 99')),
     "says 99 vectors but golden.npz holds 16"),
    (lambda f: (f / "golden.json").write_text((f / "golden.json").read_text().replace('"outputs": 1', '"outputs": 7')),
     "says 7 outputs but golden.npz holds 1"),
    (lambda f: (f / "golden.json").write_text((f / "golden.json").read_text().replace('"vectors": 16', '"vectors": "x"')),
     "has no valid 'vectors'"),
    (lambda f: _rewrite_vectors(f, lambda a: a.update(output_0=a["output_0"][:9])),
     "does not hold the same number of vectors (at least one) in every array (input_0: 16, output_0: 9)"),
    (lambda f: _rewrite_vectors(f, lambda a: a.update(output_0=np.array([None] * 16, dtype=object))),
     "holds Python objects"),
    (lambda f: _rewrite_vectors(f, lambda a: a.update(output_0=a["output_0"].astype(np.complex64))), "is complex"),
    (lambda f: _rewrite_vectors(f, lambda a: a.update(output_2=a.pop("output_0"))), "has output arrays [2]"),
    (lambda f: _rewrite_vectors(f, lambda a: a.update(extra=a["output_0"])), "arrays the golden format does not have"),
    (lambda f: (f / "golden.npz").write_bytes(b"PK\x03\x04 cut"), "is not a readable .npz"),
])
def test_damaged_goldens_are_one_line_errors(recorded, tmp_path, damage, expected):
    folder = _copy(recorded, tmp_path)
    damage(folder)
    with pytest.raises(KitError) as error:
        check(folder)
    assert expected in error.value.problem and error.value.fix and "\n" not in str(error.value)


def test_a_damaged_golden_folder_fails_golden_check_with_exit_2(recorded, tmp_path):
    folder = _copy(recorded, tmp_path)
    (folder / "golden.json").write_text((folder / "golden.json").read_text()[:40])
    result = run_kit("golden", "check", folder)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is not valid JSON (truncated" in errors[0] and "fix:" in errors[0]


def test_golden_record_refuses_object_arrays_in_data(demo_dir, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([{"not": "numbers"}], dtype=object))
    out = tmp_path / "goldens"
    result = run_kit("golden", "record", demo_dir / "model.tflite", "--data", tmp_path / "d.npz", "--out", out)
    assert result.returncode == 2 and "holds Python objects" in result.stderr and not out.exists()
