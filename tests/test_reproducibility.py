"""The same recipe, data and seed give byte-identical artifacts (docs/robustness.md says why they can)."""
import hashlib
import json

from .conftest import REPO, run_kit

IDENTICAL = ("model.tflite", "model_data.h", "model_data.cc", "model_settings.h", "model_ops.h",
             "golden_vectors.h", "golden_vectors.cc", "golden.npz")


def without_timings(value):
    """The manifest minus wall-clock figures, the one thing allowed to differ between runs
    (report.md prints the per-stage seconds, so its hash is one of them)."""
    if isinstance(value, dict) and value.get("file") == "report.md":
        return {}
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if "second" not in k and not k.endswith("_time")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def test_default_conversion_twice_gives_identical_bytes(demo_dir, tmp_path):
    again = tmp_path / "digits"
    result = run_kit("convert", REPO / "models/recipes/default.yaml", "--out", again)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in IDENTICAL:
        first, second = (demo_dir / name).read_bytes(), (again / name).read_bytes()
        assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest(), f"{name} differs"
    manifests = [without_timings(json.loads((d / "manifest.json").read_text())) for d in (demo_dir, again)]
    assert manifests[0] == manifests[1]
