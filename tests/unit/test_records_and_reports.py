"""Stage records, the manifest's shape and report.md, from typed parts (no model needed)."""
from converter.reports.convert_report import render_report
from converter.reports.manifest import ConversionParts
from converter.stages.base import StageRecord
from converter.stages.registry import get
from converter.tflite.model import ModelInfo, TensorInfo

TENSOR = TensorInfo("x", "INT8", (1, 4), 0.5, -3)


def _parts(**changes) -> ConversionParts:
    records = [
        StageRecord("train", {"epochs": 1}, {"loss_per_epoch": [0.5]}, {"eval_accuracy": 0.8}, {"eval_accuracy": 0.9},
                    [{"layer": "d", "max_unique_per_channel": 200}], 0.0, 1.25),
        StageRecord("quantize", {"mode": "int8"}, {"calibration_samples_used": 10, "tflite_bytes": 2048},
                    {"eval_accuracy": 0.9}, {"eval_accuracy": 0.875, "runtime": "tflm"}, seconds=2.0,
                    seconds_split={"convert": 1.0, "score_float": 0.5, "score_tflm": 0.5}),
    ]
    result = {"equal": 4, "total": 4, "max_lsb": 0, "max_abs_difference": 0}
    fields = dict(name="m", recipe={"name": "m"}, model_bytes=2048, model_sha256="ab" * 32,
                  info=ModelInfo(("FULLY_CONNECTED",), {"FULLY_CONNECTED": 1}, (TENSOR,), (TENSOR,), 1),
                  arena_measured=1000, arena_size=1104, arena_margin=0.1, host="x86_64", stages=records,
                  validation={"tflm_vs_c_array": result, "tflm_vs_litert_reference": result},
                  golden_vectors=4, golden_source="eval set", mode="int8", float_accuracy=0.9,
                  quantized_accuracy=0.875)
    return ConversionParts(**(fields | changes))


def test_record_dict_order_is_the_manifest_order():
    keras, converter = _parts().stages
    assert list(keras.as_dict()) == ["stage", "settings", "loss_per_epoch", "quality_before", "quality_after",
                                     "sparsity_after", "layers", "seconds"]
    assert list(converter.as_dict()) == ["stage", "settings", "calibration_samples_used", "tflite_bytes",
                                         "quality_before", "quality_after", "seconds", "seconds_split"]
    flat = StageRecord("compress", {}, {"bytes_before": 9, "bytes_after": 9}, seconds=0.1)
    assert list(flat.as_dict()) == ["stage", "settings", "bytes_before", "bytes_after", "seconds"]


def test_manifest_content_shape():
    content = _parts().content(seconds=3.5)
    assert list(content) == ["name", "tools", "recipe", "model", "arena_bytes", "tensor_arena_size", "arena_note",
                             "arena", "device_check", "stages", "validation", "summary", "seconds"]
    # no figure given: the arena is described as the host's, never as a device's
    assert "not a device figure" in content["arena_note"] and content["device_check"] == {"ran": False}
    summary = content["summary"]
    assert summary["float_quality"] == "90.00%" and summary["quantized_quality"] == "87.50%"
    assert summary["bit_exact_on_tflm"] is True and "source" not in summary
    assert content["model"]["inputs"][0] == {"name": "x", "type": "int8", "shape": [1, 4], "scale": 0.5,
                                             "zero_point": -3}
    tflite = _parts(float_accuracy=None, source="tflite", stages=[]).content()
    assert tflite["summary"]["float_quality"] == "—" and tflite["summary"]["source"] == "tflite"


def test_report_takes_each_stages_own_note():
    parts = _parts()
    notes = [get(r.kind).report_note(r) for r in parts.stages]
    assert notes == ["", "2,048 B, 10 calibration samples"]
    report = render_report(parts.content(seconds=1.0), notes)
    assert "| quantize | 2.0 | 87.50% |  | 2,048 B, 10 calibration samples |" in report
    assert "| train | 1.25 | 90.00% | 0.0% |  |" in report
    assert "| tflm_vs_c_array | 4/4 | 0 | bit-exact |" in report
    assert "no float or per-stage Keras quality" in render_report(_parts(source="tflite").content(), notes)


def test_cluster_and_compress_notes():
    cluster = StageRecord("cluster", {}, {"notes": ["a"]}, {}, {}, [{"max_unique_per_channel": 16}], 0.5)
    assert get("cluster").report_note(cluster).startswith("≤ 16 distinct values per channel; 1 layer(s)")
    from converter.stages.compressors import CompressRecord, Lut
    from tests.unit.test_compress_notes import lut_choice

    compress = StageRecord("compress", {}, CompressRecord(3000, 2000, encoded=((Lut(), (lut_choice(1, 4),
                                                                                        lut_choice(2, 3))),)))
    assert get("compress").report_note(compress) == "2 tensors LUT-compressed (3/4-bit indices), model 3,000 → 2,000 B"
