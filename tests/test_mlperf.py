"""Real models no one here wrote: the MLPerf Tiny reference models from ../shared/data."""
import json

import pytest

from .conftest import REPO, run_kit


def convert_recipe(recipe: str, out):
    result = run_kit("convert", REPO / "models/recipes" / recipe, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "manifest.json").read_text())


def test_image_classification_resnet8_ptq_on_real_cifar10(ic_dir):
    manifest = json.loads((ic_dir / "manifest.json").read_text())
    quantize = manifest["stages"][-1]
    # CIFAR-10 here is JPEG re-encoded (see ../shared/data/README.md): float ResNet-8 scores
    # about 75% on its first 1,000 test images, below the 85% it reaches on pristine pixels.
    float_accuracy = quantize["quality_before"]["eval_accuracy"]
    int8_accuracy = quantize["quality_after"]["eval_accuracy"]
    assert float_accuracy > 0.70
    assert int8_accuracy >= float_accuracy - 0.02
    assert quantize["quality_after"]["eval_samples"] == 1000
    assert {"CONV_2D", "ADD", "FULLY_CONNECTED", "SOFTMAX"} <= set(manifest["model"]["operators"])
    assert manifest["model"]["inputs"][0]["type"] == "int8"
    exact = manifest["validation"]["tflm_vs_c_array"]
    assert exact["equal"] == exact["total"] == 10
    assert 50_000 < manifest["arena_bytes"] < 200_000


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["mlperf_vww.yaml", "mlperf_kws.yaml", "mlperf_ad.yaml"])
def test_other_mlperf_models_convert_and_validate(shared_data, tmp_path, recipe):
    manifest = convert_recipe(recipe, tmp_path / "out")
    exact = manifest["validation"]["tflm_vs_c_array"]
    assert exact["equal"] == exact["total"]
    reference = manifest["validation"]["tflm_vs_litert_reference"]
    assert reference["total"] == exact["total"] and reference["max_lsb"] is not None
