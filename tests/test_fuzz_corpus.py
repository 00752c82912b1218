"""Replay the fuzz regression corpus (tools/fuzz_tflite.py, tools/fuzz_recipe.py; docs/robustness.md).

Every case must end as recorded: accepted, or one KitError line of the recorded kind (KitError.kind:
the failure, not its wording, so rewording a message keeps the corpus, and a different failure breaks
it). Cases the structural checks accept are also run in the isolation child, where a runtime crash
must come back as a KitError, never take this process down.
"""
import json
from pathlib import Path

import pytest

from converter.errors import KitError
from converter.tflm.isolation import check_runs_safely
from converter.recipe import load_recipe
from converter.tflite.model import read_graph, read_model
from converter.tflm.deployable import check_deployable

CORPUS = Path(__file__).parent / "fuzz_corpus"
TFLITE = json.loads((CORPUS / "tflite" / "expected.json").read_text())
RECIPES = json.loads((CORPUS / "recipe" / "expected.json").read_text())


def one_line_kind(error: KitError) -> str:
    assert "\n" not in str(error)
    return error.kind


@pytest.mark.parametrize("name", sorted(TFLITE))
def test_tflite_case_ends_as_recorded(name):
    data = (CORPUS / "tflite" / name).read_bytes()
    try:
        read_model(data)
        read_graph(data)
        check_deployable(data)
        check_runs_safely(data, timeout=60)
        got = "ok"
    except KitError as error:
        got = one_line_kind(error)
    assert got == TFLITE[name]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_case_ends_as_recorded(name):
    try:
        load_recipe(CORPUS / "recipe" / name)
        got = "ok"
    except KitError as error:
        got = one_line_kind(error)
    assert got == RECIPES[name]
