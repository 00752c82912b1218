"""Issue 18 Medium 5: a model whose declared shapes do not follow from its operators, or are larger than any
device, is refused before a runtime runs it (mutants with one dimension set to 65,536 or 100,000 kept
`validate` busy past 60 s). Plain Python: no runtime, no TensorFlow."""
import os
from pathlib import Path

import pytest

from converter.errors import KitError
from converter.tflite.tflite_model import TfliteModel
from converter.tflm.deployable import check_deployable

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("TFLM_KIT_SHARED_DATA", REPO.parent / "shared" / "data")) / "mlperf_tiny"
BUNDLED = [REPO / "tests/data/not_this_model.tflite", REPO / "tests/data/two_inputs.tflite"]
MUTATED = ["keyword_spotting/kws_ref_model.tflite", "image_classification/pretrainedResnet_quant.tflite"]
MLPERF = MUTATED + ["anomaly_detection/ad01_int8.tflite", "visual_wake_words/vww_96_int8.tflite",
                    "streaming_wakeword/str_ww_ref_model.tflite"]


def mutants(model_bytes: bytes):
    """Every activation tensor with one dimension set to 65,536 or 100,000 (shape signature alike)."""
    model = TfliteModel.from_bytes(model_bytes)
    for index, tensor in enumerate(model.subgraphs[0].tensors):
        if model.data(tensor) is not None:
            continue
        for dim in range(len(tensor.shape)):
            for value in (65_536, 100_000):
                mutant = TfliteModel.from_bytes(model_bytes)
                changed = mutant.subgraphs[0].tensors[index]
                changed.shape = changed.shape.copy()
                changed.shape[dim] = value
                if changed.shapeSignature is not None and len(changed.shapeSignature) > dim:
                    changed.shapeSignature = changed.shapeSignature.copy()
                    changed.shapeSignature[dim] = value
                yield f"tensor {index} dim {dim} = {value}", mutant.to_bytes()


def refused_kinds(model_path: Path) -> dict:
    kinds: dict = {}
    for name, data in mutants(model_path.read_bytes()):
        with pytest.raises(KitError) as error:
            check_deployable(data)
        assert "\n" not in str(error.value), name
        kinds[error.value.kind] = kinds.get(error.value.kind, 0) + 1
    return kinds


@pytest.mark.parametrize("model", BUNDLED, ids=lambda p: p.name)
def test_every_dimension_mutant_of_a_bundled_model_is_refused_before_running(model):
    kinds = refused_kinds(model)
    assert set(kinds) <= {"shape-mismatch", "tensor-too-big"}, kinds


def shared(name: str) -> Path:
    if not (SHARED / name).is_file():
        pytest.skip(f"needs the shared MLPerf Tiny models at {SHARED} (present in CI)")
    return SHARED / name


@pytest.mark.parametrize("name", MLPERF)
def test_real_models_are_not_refused(name):
    check_deployable(shared(name).read_bytes())


@pytest.mark.parametrize("name", MUTATED)
def test_the_ic_and_kws_dimension_mutants_are_refused(name):
    """The issue's IC and KWS models (224 mutants in all; 3 kept `validate` busy past 60 s)."""
    kinds = refused_kinds(shared(name))
    assert set(kinds) <= {"shape-mismatch", "tensor-too-big"}, kinds


def test_the_message_names_the_operator_the_tensors_and_both_shapes():
    name, data = next(m for m in mutants(BUNDLED[0].read_bytes()) if m[0] == "tensor 0 dim 1 = 65536")
    with pytest.raises(KitError, match=r"operator 0 \(FULLY_CONNECTED\) declares output '.*' \[1, 4\], but its "
                                       r"inputs \('.*' \[1, 65536\], '.*' \[4, 12\]\) make no output at all"):
        check_deployable(data)
