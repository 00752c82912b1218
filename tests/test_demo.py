"""`make demo`: models/recipes/demo.yaml ends with a compressed model (int4 filters) and `convert` prints
its deployed flash and arena next to the uncompressed int8 model's: flash from the footprint data with
the specialised kernels (no TFLM_ROOT, no cross compiler: a fresh clone); the arenas here are the Cortex-M4's,
derived from the model (converter/tflm/derived_arena.py), labelled so, the host's only as an extra (with the
tools, tests/test_device_check.py: measured under QEMU, and equal to the derived figure)."""
import json
import re

from converter.tflite.model import read_model
from converter.tflm.derived_arena import derive
from converter.tflm.footprint import model_flash



def test_demo_ends_compressed_and_prints_what_the_device_stores(make_demo_run):
    out, result = make_demo_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert [record["stage"] for record in manifest["stages"]] == ["train", "quantize", "compress"]
    compress = manifest["stages"][-1]
    int4_ops = {row["operator"] for row in compress["int4"]["tensors"]}
    assert "FULLY_CONNECTED" in int4_ops  # the big filter: per tensor, so TFLM's FULLY_CONNECTED takes int4
    assert compress["int4"]["top1_agreement_vs_int8"] >= 0.95
    model = (out / "model.tflite").read_bytes()
    operators = read_model(model).operators
    assert "TFLM_DECODE" not in operators  # int4 needs no DECODE kernel
    exact = manifest["validation"]["tflm_vs_c_array"]
    assert exact["equal"] == exact["total"] == 10

    deployed = manifest["deployed"]
    assert deployed["target"] == "cortex-m4" and "code-size data for cortex-m4" in deployed["flash_source"]
    assert deployed["flash"] == model_flash(model, "cortex-m4").total  # Register_CONV_2D_INT4 & co. priced
    # int4 halves the filters and adds no kernel: the image shrinks by more than the FC filter's half
    assert deployed["flash_uncompressed"] - deployed["flash"] > 11_000
    assert deployed["arena"] == manifest["arena_bytes"]
    # no toolchain here: the arenas are the Cortex-M4's, derived from each model, and say so; the host's (its
    # reference kernels unpack int4 into scratch: more than the uncompressed model) only as a labelled extra
    target = manifest["arena"]["target"]
    assert deployed["arena_on_device"] and target["kind"] == "derived" and target["core"] == "cortex-m4"
    assert deployed["arena"] == target["bytes"] == derive(model, "cortex-m4").needed
    assert deployed["arena_host"] == manifest["arena"]["host"]["bytes"] > deployed["arena"]
    line = next(text for text in result.stdout.splitlines() if text.startswith("deployed"))
    numbers = [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?= B)", line)]
    assert numbers == [deployed["flash"], deployed["arena"], deployed["arena_host"]], line
    assert f"{deployed['flash_uncompressed']:,} -> {deployed['flash']:,} B" in line
    assert f"arena {deployed['arena_uncompressed']:,} -> {deployed['arena']:,} B" in line
    assert "derived for Cortex-M4 (32-bit) from the model's plan, not measured" in line
    assert f"host {manifest['arena']['host']['core']}, not the device's" in line
    settings = (out / "model_settings.h").read_text()
    assert f"kArenaMeasuredBytes = {target['bytes']};" in settings and "derived for Cortex-M4 (32-bit)" in settings

    # the AOT runtime (docs/aot.md): the model compiled to C, its golden vectors byte-identical on the host
    portable = manifest["aot"]["validated"][0]
    assert portable["backend"] == "portable" and portable["golden_identical"] == portable["golden"] == 10
    assert manifest["aot"]["bit_exact"] and (out / "aot" / "aot_model.h").exists()
    assert "AOT (portable, host gcc) vs TFLM: 10/10 golden vectors" in result.stdout


def test_an_uncompressed_conversion_prints_no_comparison(demo_dir):
    manifest = json.loads((demo_dir / "manifest.json").read_text())
    assert "compress" not in [record["stage"] for record in manifest["stages"]]
    assert "deployed" not in manifest
