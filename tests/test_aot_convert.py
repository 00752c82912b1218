"""convert's AOT runtime: `runtime: tflm | aot | both` (default both), the AOT sources in --out/aot/ only
after they gave TFLM's bytes on the host, refusals on one line with nothing written, and the record in
manifest.json and report.md. Tiny flatbuffer models (tests/aot_models.py): no TensorFlow, seconds each."""
import json
import shutil

import pytest

from converter import KitError, convert, parse_recipe
from tests.aot_models import ModelBuilder, break_maxpool_kernel, chain_model, random_model

from .conftest import run_kit

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host C compiler (gcc)")


def _outside_the_set() -> bytes:
    """MAXIMUM: TFLM runs it, the AOT runtime does not implement it."""
    b = ModelBuilder()
    x, y, z = b.activation((1, 4), 0.05, 3), b.activation((1, 4), 0.05, 3), b.activation((1, 4), 0.05, 3)
    b.op("MAXIMUM", (x, y), (z,))
    b.io((x, y), (z,))
    return b.to_bytes()


def _recipe(tmp_path, model: bytes, **changes):
    (tmp_path / "m.tflite").write_bytes(model)
    data = {"name": "tiny", "model": {"path": str(tmp_path / "m.tflite")},
            "data": {"random": {"samples": 12, "low": -1.0, "high": 1.0}}, "golden": {"vectors": 4}} | changes
    return parse_recipe(data, base_dir=tmp_path)


def test_default_writes_the_checked_aot_sources_and_records_them(tmp_path):
    model = chain_model(11, int4=True)
    manifest = convert(_recipe(tmp_path, model), tmp_path / "out").manifest
    aot = manifest["aot"]
    assert aot["bit_exact"] and aot["validated"][0]["golden_identical"] == aot["validated"][0]["golden"] == 4
    assert aot["validated"][0]["vectors"] == 4 + 6
    assert {"aot/aot_model.h", "aot/aot_model.c", "aot/aot_kernels_portable.c"} <= \
        {a["file"] for a in manifest["artifacts"]}
    assert "AOT_MODEL_BUFFER_BYTES" in (tmp_path / "out/aot/aot_model.h").read_text()
    assert manifest["summary"]["aot_buffer_bytes"]["host"] == aot["buffer_bytes"]["host"] > 0
    # never more than TFLM's arena (which also holds the input, the output and TFLM's own structures)
    assert aot["buffer_bytes"]["cortex-m4"] <= manifest["arena_bytes"]
    assert any("=" in entry["tensor"] for entry in aot["plan_host"])   # RESHAPE: one buffer, two tensors
    assert "## AOT runtime" in (tmp_path / "out/report.md").read_text()
    written = json.loads((tmp_path / "out/manifest.json").read_text())["aot"]
    assert [o["kind"] for o in written["operators"]] == ["CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "RESHAPE",
                                                          "FULLY_CONNECTED", "SOFTMAX"]
    # --force replaces the output, aot/ included: every file it holds is in the record
    convert(_recipe(tmp_path, model), tmp_path / "out", force=True)


def test_runtime_tflm_writes_no_aot(tmp_path):
    manifest = convert(_recipe(tmp_path, random_model(["CONV_2D"], 1, 1), runtime="tflm"), tmp_path / "out").manifest
    assert "aot" not in manifest and not (tmp_path / "out/aot").exists()


def test_outside_the_set_by_default_is_skipped_with_a_note(tmp_path):
    notes = []
    manifest = convert(_recipe(tmp_path, _outside_the_set()), tmp_path / "out", log=notes.append).manifest
    assert "aot" not in manifest and not (tmp_path / "out/aot").exists()
    assert any("AOT runtime skipped" in line and "MAXIMUM" in line for line in notes), notes


def test_outside_the_set_when_asked_fails_on_one_line_and_writes_nothing(tmp_path):
    recipe = tmp_path / "r.yaml"
    (tmp_path / "m.tflite").write_bytes(_outside_the_set())
    recipe.write_text("name: tiny\nmodel: {path: m.tflite}\ndata: {random: {samples: 8}}\nruntime: aot\n")
    result = run_kit("convert", recipe, "--out", tmp_path / "out")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "MAXIMUM" in errors[0] and "runtime: tflm" in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def test_no_compiler_is_one_line_or_a_skip(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CC", raising=False)
    model = random_model(["CONV_2D"], 1, 2)
    with pytest.raises(KitError, match="no C compiler"):
        convert(_recipe(tmp_path, model, runtime="both"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    notes = []
    manifest = convert(_recipe(tmp_path, model), tmp_path / "out", log=notes.append).manifest
    assert "aot" not in manifest and any("no C compiler" in line for line in notes)


def test_code_that_differs_from_tflm_is_never_written(tmp_path, monkeypatch):
    """A kernel bug (max-pool taking the minimum): `runtime: aot` fails naming the operator and writes
    nothing; left at its default, the conversion goes on without aot/ and says why."""
    break_maxpool_kernel(monkeypatch)
    monkeypatch.delenv("CMSIS_NN_ROOT", raising=False)
    model = chain_model(2)
    with pytest.raises(KitError, match="MAX_POOL_2D") as error:
        convert(_recipe(tmp_path, model, runtime="aot"), tmp_path / "out")
    assert error.value.code == "aot-differs" and not (tmp_path / "out").exists()
    notes = []
    manifest = convert(_recipe(tmp_path, model), tmp_path / "out", log=notes.append).manifest
    assert "aot" not in manifest and not (tmp_path / "out/aot").exists()
    assert any("AOT runtime skipped" in line and "MAX_POOL_2D" in line for line in notes), notes
