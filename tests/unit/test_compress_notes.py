"""The compress stage's line in report.md names every method it used, and int4's agreement (it is lossy)."""
from converter.stages.base import StageRecord
from converter.stages.compress import Compress


def _note(details: dict) -> str:
    return Compress().report_note(StageRecord("compress", {}, {"bytes_before": 1000, "bytes_after": 600, **details}))


def test_note_names_lut_prune_and_int4():
    note = _note({"tensors": [{"index_bits": 4}, {"index_bits": 2}, {"method": "prune"}],
                  "int4": {"tensors": [{}, {}], "top1_agreement_vs_int8": 0.965}})
    assert note == ("2 tensors LUT-compressed (2/4-bit indices), 1 PRUNE-encoded, "
                    "2 int4 filters (top-1 agreement with the int8 model 96.5%), model 1,000 → 600 B")


def test_note_of_an_unchanged_model_is_the_reason():
    assert _note({"tensors": [], "note": "no tensor qualified for LUT compression; the model is unchanged"}) \
        == "no tensor qualified for LUT compression; the model is unchanged"
