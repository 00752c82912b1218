"""The default recipe's artifacts: content, consistency and that the C/C++ compiles and holds the bytes."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from converter.emit.c_arrays import c_bytes, parse_c_array
from converter.reports.manifest import sha256
from converter.tflm.runners import run_tflm
from converter.tflite.model import read_model

from .conftest import cxx
from .firmware_tools import tflm_root

EXPECTED_FILES = {"model.tflite", "model_data.h", "model_data.cc", "model_ops.h", "model_settings.h",
                  "golden_vectors.h", "golden_vectors.cc", "golden.npz", "manifest.json", "report.md"}
# the AOT runtime's sources (docs/aot.md), in aot/: default.yaml's model is inside its operator set
AOT_FILES = {f"aot/{name}" for name in ("aot_model.h", "aot_model.c", "aot_kernels.h", "aot_fixedpoint.h",
                                         "aot_reference.h", "aot_kernels_common.c", "aot_kernels_portable.c",
                                         "aot_kernels_cmsis.c", "aot_kernels_decode.c")}


def test_c_array_round_trip():
    data = bytes(range(256)) * 3 + b"\x01"
    source = "const unsigned char g_x_model_data[] = {\n" + c_bytes(data) + "\n};"
    assert parse_c_array(source, "g_x_model_data") == data


def test_output_holds_exactly_the_documented_artifacts(demo_dir):
    assert {path.name for path in demo_dir.iterdir()} == EXPECTED_FILES | {"aot"}
    assert {f"aot/{path.name}" for path in (demo_dir / "aot").iterdir()} == AOT_FILES
    assert not list(demo_dir.parent.glob(".digits.*")), "staging folders were left behind"


def test_manifest_describes_every_artifact_truthfully(demo_dir):
    manifest = json.loads((demo_dir / "manifest.json").read_text())
    listed = {entry["file"]: entry for entry in manifest["artifacts"]}
    assert set(listed) == (EXPECTED_FILES - {"manifest.json"}) | AOT_FILES
    for name, entry in listed.items():
        content = (demo_dir / name).read_bytes()
        assert entry["bytes"] == len(content) and entry["sha256"] == sha256(content), name
    assert [record["stage"] for record in manifest["stages"]] == ["train", "prune", "cluster", "quantize"]
    prune = manifest["stages"][1]
    assert prune["sparsity_after"] == pytest.approx(0.5, abs=0.03)
    cluster = manifest["stages"][2]
    assert all(row["max_unique_per_channel"] <= 16 + 1 for row in cluster["layers"])  # 16 centroids (+ kept zero)
    assert manifest["arena_bytes"] > 0 and manifest["tensor_arena_size"] >= manifest["arena_bytes"]
    for pair in ("tflm_vs_c_array", "tflm_vs_litert_reference", "tflm_vs_litert_optimized"):
        assert {"equal", "total", "max_lsb"} <= set(manifest["validation"][pair])
    assert manifest["validation"]["tflm_vs_c_array"]["equal"] == manifest["validation"]["tflm_vs_c_array"]["total"]
    assert manifest["tools"]["tensorflow"].startswith("2.21")


def test_golden_outputs_are_what_tflm_computes(demo_dir):
    model = (demo_dir / "model.tflite").read_bytes()
    golden = np.load(demo_dir / "golden.npz")
    assert golden["input_0"].dtype == np.int8 and len(golden["input_0"]) == 10
    assert len(np.unique(golden["input_0"].reshape(10, -1), axis=0)) == 10, "golden inputs should be distinct"
    outputs = run_tflm(model, [golden["input_0"]])
    assert np.array_equal(outputs[0], golden["output_0"])


def test_resolver_registers_exactly_the_model_operators(demo_dir):
    header = (demo_dir / "model_ops.h").read_text()
    operators = read_model((demo_dir / "model.tflite").read_bytes()).operators
    assert f"constexpr int kNumOps = {len(operators)};" in header
    assert header.count("resolver.Add") == len(operators)
    for method in ("AddConv2D", "AddDepthwiseConv2D", "AddFullyConnected", "AddSoftmax"):
        assert f"resolver.{method}(" in header
    # int8 activations and filters: the int8-only kernels (the generic ones also link float, int16, int4 paths)
    assert "resolver.AddConv2D(tflite::Register_CONV_2D_INT8())" in header
    assert "resolver.AddSoftmax(tflite::Register_SOFTMAX_INT8())" in header


def test_settings_header_matches_the_model(demo_dir):
    header = (demo_dir / "model_settings.h").read_text()
    manifest = json.loads((demo_dir / "manifest.json").read_text())
    assert f"constexpr int kTensorArenaSize = {manifest['tensor_arena_size']};" in header
    assert f"constexpr int kArenaMeasuredBytes = {manifest['arena_bytes']};" in header
    assert "constexpr int kInput0Dims[] = {1, 28, 28, 1};" in header
    assert "constexpr int kLabelCount = 10;" in header


def _compile_and_run(tmp_path: Path, demo_dir: Path, main_source: str, sources: list[str]) -> bytes:
    (tmp_path / "main.cc").write_text(main_source)
    binary = tmp_path / "check"
    command = [cxx(), "-std=c++17", "-Wall", "-Werror", "-I", str(demo_dir), str(tmp_path / "main.cc"),
               *[str(demo_dir / s) for s in sources], "-o", str(binary)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return subprocess.run([str(binary)], check=True, capture_output=True).stdout


def test_model_data_cc_compiles_aligned_and_holds_model_tflite(demo_dir, tmp_path):
    stdout = _compile_and_run(tmp_path, demo_dir, """
#include <cstdint>
#include <cstdio>
#include "model_data.h"
int main() {
  if (reinterpret_cast<std::uintptr_t>(g_digits_model_data) % 16 != 0) return 3;
  fwrite(g_digits_model_data, 1, g_digits_model_data_len, stdout);
  return 0;
}
""", ["model_data.cc"])
    assert stdout == (demo_dir / "model.tflite").read_bytes()


def test_golden_arrays_compile_and_hold_golden_npz(demo_dir, tmp_path):
    stdout = _compile_and_run(tmp_path, demo_dir, """
#include <cstdio>
#include "golden_vectors.h"
#include "model_settings.h"
using namespace digits_model;
static_assert(sizeof(kGoldenInput0) == kGoldenCount * kInputBytes[0], "input size");
static_assert(sizeof(kGoldenOutput0) == kGoldenCount * kOutputBytes[0], "output size");
int main() {
  fwrite(kGoldenInput0, 1, sizeof(kGoldenInput0), stdout);
  fwrite(kGoldenOutput0, 1, sizeof(kGoldenOutput0), stdout);
  return 0;
}
""", ["golden_vectors.cc"])
    golden = np.load(demo_dir / "golden.npz")
    assert stdout == golden["input_0"].tobytes() + golden["output_0"].tobytes()


def tflm_include_flags() -> list[str]:
    from converter.tflm.tree import include_dirs

    return [f"-I{path}" for path in include_dirs(tflm_root())]


def test_ops_and_settings_headers_compile_against_tflm(demo_dir, tmp_path):
    flags = tflm_include_flags()
    source = tmp_path / "check.cc"
    source.write_text("""
#include "model_ops.h"
#include "model_settings.h"
TfLiteStatus Register() {
  static digits_model::OpResolver resolver;
  static_assert(digits_model::kTensorArenaSize > 0, "arena");
  return digits_model::RegisterOps(resolver);
}
""")
    result = subprocess.run([cxx(), "-std=c++17", "-fsyntax-only", "-DTF_LITE_STATIC_MEMORY", "-I", str(demo_dir),
                             *flags, str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
