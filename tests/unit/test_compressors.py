"""The compress stage's methods are rows of one table: a new method is one class and one row, and its
setting, progress words, record, report line and verification message follow (no TensorFlow, no TFLM run)."""
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import Field, ValidationError

from converter.recipe import Recipe, parse_recipe
from converter.stages import compress as compress_stage
from converter.stages.base import StageRecord
from converter.stages.compress import Compress, CompressSettings, apply_compressors, compress_model
from converter.stages.compressors import (COMPRESSORS, SHOWN_ORDER, STAGE_FIELDS, LossyStep, ModelStep, StepOutcome,
                                          TensorEncoding, settings_model)
from converter.tflite.model import read_model
from converter.tflite.strip import strip
from converter.tflite.tflite_model import TfliteModel

MODEL = (Path(__file__).resolve().parents[1] / "data" / "two_inputs.tflite").read_bytes()  # int8, 2 FC weights


@dataclass(frozen=True)
class HalfChoice:
    subgraph: int
    tensor: int
    name: str
    bytes_before: int
    bytes_after: int

    def as_dict(self) -> dict:
        return {"method": "half", "tensor": self.tensor, "bytes_after": self.bytes_after}


class Half(TensorEncoding):
    """A stand-in DECODE encoding: every candidate in half the bytes (so it beats no encoding)."""

    name, label, verb = "half", "HALF", "half-encoded"
    fields = {"half": (bool, Field(False, description="a test encoding"))}

    def enabled(self, settings) -> bool:
        return settings.half

    def planner(self, settings):
        return lambda c: (HalfChoice(c.subgraph, c.tensor, c.name, c.nbytes, c.nbytes // 2), None)

    def encode(self, model_bytes: bytes, choices: list, plan) -> bytes:
        return strip(model_bytes)[0]  # smaller, and still a flatbuffer the stage can read

    def summary(self, choices: list) -> str:
        return f"{len(choices)} halved"


@dataclass(frozen=True)
class Named:
    description: str

    def as_dict(self) -> dict:
        return {"description": self.description}


class Describe(ModelStep):
    """A stand-in whole-model step: writes a description."""

    name, label, verb = "describe", "described", "described"
    fields = {"description": (str, Field("", description="a test step"))}

    def enabled(self, settings) -> bool:
        return bool(settings.description)

    def apply(self, model_bytes: bytes, settings):
        model = TfliteModel.from_bytes(model_bytes)
        model.root.description = settings.description.encode()
        return model.to_bytes(), StepOutcome(self.name, Named(settings.description), "described")


class Twin(LossyStep):
    """A stand-in lossy step: names another model as the reference."""

    name, label, verb = "twin", "twinned", "twinned"
    fields = {"twin": (bool, Field(False))}

    def enabled(self, settings) -> bool:
        return settings.twin

    def apply(self, model_bytes: bytes, settings, data):
        twin = TfliteModel.from_bytes(model_bytes)
        twin.root.description = b"twin"
        return twin.to_bytes(), model_bytes, StepOutcome(self.name, Named("twin"))


ROWS = (*COMPRESSORS, Half(), Describe(), Twin())
Settings = settings_model(ROWS)


@pytest.fixture
def checked(monkeypatch):
    """verify_identical replaced by a recorder: what TFLM would be asked to compare, and in which words."""
    calls = []

    def record(reference, compressed, data, samples, what):
        calls.append((reference, compressed, what))
        return {"equal": 1, "total": 1}

    monkeypatch.setattr(compress_stage, "verify_identical", record)
    return calls


def test_the_settings_are_the_rows_fields_in_the_order_manifests_show():
    expected = set(STAGE_FIELDS).union(*(row.fields for row in COMPRESSORS))
    assert list(CompressSettings.model_fields) == list(SHOWN_ORDER) and set(SHOWN_ORDER) == expected
    assert Recipe.model_fields["compress"].annotation == CompressSettings | None
    assert parse_recipe({"name": "m", "model": {"path": "m.tflite"}, "data": {"npz": "d.npz"},
                         "compress": {"int4": True, "memory_plan": "offline"}}).compress.int4


def test_a_new_row_is_a_setting_with_its_checks():
    assert list(Settings.model_fields)[:len(SHOWN_ORDER)] == list(SHOWN_ORDER)
    assert list(Settings.model_fields)[len(SHOWN_ORDER):] == ["half", "description", "twin"]
    assert Settings(half=True).half and not Settings().half
    with pytest.raises(ValidationError):
        Settings(half="maybe")
    with pytest.raises(ValidationError):
        Settings(huffman=True)  # unknown fields stay errors
    with pytest.raises(ValueError, match="declares settings another row has"):
        settings_model((*COMPRESSORS, Half(), Half()))


def test_the_progress_line_names_each_enabled_row(monkeypatch):
    monkeypatch.setattr(compress_stage, "COMPRESSORS", ROWS)
    line = Compress().phase_detail(Settings(prune=True, half=True, description="x"), None)
    assert line == "compress (LUT + PRUNE + HALF decoded by TFLM DECODE, described)"
    assert Compress().phase_detail(Settings(lut=False), None) == "compress (nothing set)"


def test_a_new_encoding_is_planned_encoded_recorded_and_verified(checked):
    settings = Settings(lut=False, half=True)
    compressed, record, reference = compress_model(MODEL, settings, None, ROWS)
    assert compressed == strip(MODEL)[0] and reference == MODEL
    assert [(row.name, len(choices)) for row, choices in record.encoded] == [("half", 2)]
    assert checked == [(MODEL, compressed, "half-encoded")]
    details = record.as_dict()
    assert [row["method"] for row in details["tensors"]] == ["half", "half"] and details["decode_operators"] == 0
    assert Compress().report_note(StageRecord("compress", {}, record)).startswith("2 halved, model ")
    assert record.tensors_changed


def test_the_three_moments_run_in_order_and_a_lossy_row_names_the_reference(checked):
    settings = Settings(lut=False, twin=True, description="planned")
    compressed, record, reference = compress_model(MODEL, settings, None, ROWS)
    assert read_model(compressed) is not None and reference != MODEL and reference != compressed
    assert checked == [(reference, compressed, "twinned and described")]
    assert list(record.as_dict())[:4] == ["bytes_before", "twin", "describe", "bytes_after"]
    assert record.as_dict()["describe"] == {"description": "planned"}
    assert record.note == "no tensor qualified for LUT compression; only described"
    assert not record.tensors_changed


def test_nothing_enabled_changes_nothing_and_runs_no_check(checked):
    done = apply_compressors(MODEL, Settings(lut=False), None, ROWS)
    assert done.model == done.reference == MODEL and not done.encoded
    compressed, record, _ = compress_model(MODEL, Settings(lut=False), None, ROWS)
    assert compressed == MODEL and not checked and record.verification is None
    assert record.as_dict()["note"] == "no tensor qualified for LUT compression; the model is unchanged"
