"""The compress stage's line in report.md names every method it used, and int4's agreement (it is lossy)."""
from converter.stages.base import StageRecord
from converter.stages.compress import Compress
from converter.stages.compressors import CompressRecord, Int4, Int4Record, Lut, Prune, StepOutcome
from converter.tflite.compression.int4 import Int4Choice
from converter.tflite.compression.lut import LutChoice
from converter.tflite.compression.prune import PruneChoice
from converter.tflite.strip import StripResult
from converter.tflm.offline_plan import OfflinePlanResult


def lut_choice(tensor: int, bits: int) -> LutChoice:
    return LutChoice(0, tensor, f"t{tensor}", (4, 4), ("CONV_2D",), 2 ** bits, 2 ** bits, 0, bits, 16, 8)


def prune_choice(tensor: int) -> PruneChoice:
    return PruneChoice(0, tensor, f"t{tensor}", (4, 4), ("FULLY_CONNECTED",), 4, 16, 12)


def int4_choice(tensor: int) -> Int4Choice:
    return Int4Choice(tensor, f"t{tensor}", "CONV_2D", (4, 4), 0, 16, 8)


def _note(record: CompressRecord) -> str:
    return Compress().report_note(StageRecord("compress", {}, record))


def test_note_names_lut_prune_and_int4():
    int4 = Int4().outcome(Int4Record((int4_choice(5), int4_choice(6)), {}, 0.965))
    record = CompressRecord(1000, 600, (int4,), encoded=((Lut(), (lut_choice(1, 4), lut_choice(2, 2))),
                                                         (Prune(), (prune_choice(3),))), verification={})
    assert _note(record) == ("2 tensors LUT-compressed (2/4-bit indices), 1 PRUNE-encoded, "
                             "2 int4 filters (top-1 agreement with the int8 model 96.5%), model 1,000 → 600 B")
    assert record.tensors_changed and [t.tensor for t in record.tensors] == [1, 2, 3]


def test_note_of_an_unchanged_model_is_the_reason():
    record = CompressRecord(1000, 1000, note="no tensor qualified for LUT compression; the model is unchanged")
    assert _note(record) == "no tensor qualified for LUT compression; the model is unchanged"
    assert not record.tensors_changed


def test_a_step_remark_follows_the_note_and_int4_without_filters_changes_no_tensor():
    no_filter = Int4().outcome(Int4Record(note="no filter"))
    plan = StepOutcome("memory_plan", OfflinePlanResult(False, "no offline memory plan: greedy is optimal"),
                       remark="no offline memory plan: greedy is optimal")
    record = CompressRecord(1000, 900, (no_filter,), (plan,), note="no tensor qualified for LUT compression")
    assert _note(record) == "no tensor qualified for LUT compression; no offline memory plan: greedy is optimal"
    assert not record.tensors_changed and record.step("int4") is no_filter


def test_record_keys_are_in_the_manifest_order():
    """as_dict is what manifest.json holds: the order earlier manifests had (artifacts stay byte-identical)."""
    int4 = Int4().outcome(Int4Record((int4_choice(5),), {"equal": 1}, 1.0))
    strip = StepOutcome("strip", StripResult({"names_and_signatures": 10}, -4), "stripped")
    changed = CompressRecord(1000, 600, (int4,), (strip,), ((Lut(), (lut_choice(1, 4),)),),
                             rejected=(lut_choice(9, 2),), verification={"equal": 1}, decode_operators=1)
    assert list(changed.as_dict()) == ["bytes_before", "int4", "rejected", "strip", "bytes_after",
                                       "tensor_bytes_before", "tensor_bytes_after", "decode_operators",
                                       "largest_decoded_tensor_bytes", "tensors", "skipped", "verification"]
    assert changed.as_dict()["int4"]["top1_agreement_vs_int8"] == 1.0
    unchanged = CompressRecord(1000, 1000, note="why")
    assert list(unchanged.as_dict()) == ["bytes_before", "bytes_after", "tensors", "skipped", "verification", "note"]
    assert StageRecord("compress", {}, unchanged).as_dict()["note"] == "why"


def test_only_a_compress_stage_that_changed_tensors_asks_for_the_comparison():
    """Stripping or a memory plan changes no kernel: no deployed comparison; DECODE or int4 tensors do."""
    from converter.reports.deployed import tensors_compressed

    stripped = StepOutcome("strip", StripResult({}, 0), "stripped")
    strip_only = StageRecord("compress", {}, CompressRecord(9, 8, (Int4().outcome(Int4Record()),), (stripped,)))
    lut = StageRecord("compress", {}, CompressRecord(9, 8, encoded=((Lut(), (lut_choice(3, 4),)),)))
    int4 = StageRecord("compress", {}, CompressRecord(9, 8, (Int4().outcome(Int4Record((int4_choice(5),), {}, 0.9)),)))
    train = StageRecord("train", {}, {"tensors": [{"tensor": 1}]})
    assert not tensors_compressed([train, strip_only])
    assert tensors_compressed([train, lut]) and tensors_compressed([int4])
