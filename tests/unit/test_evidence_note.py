"""optimize warns when its guards are judged on too few held-out inputs to separate candidates."""
from converter.optimize.guards import FEW_SELECTION_INPUTS, evidence_note


def test_a_small_selection_set_is_named_with_what_one_input_weighs():
    note = evidence_note(22)  # the MLPerf SWW search: half of the 45 real windows
    assert "22 held-out inputs" in note and "4.5 points" in note and str(FEW_SELECTION_INPUTS) in note


def test_enough_inputs_say_nothing():
    assert evidence_note(FEW_SELECTION_INPUTS) is None and evidence_note(1000) is None
