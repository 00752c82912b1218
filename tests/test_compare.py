"""The one bit-exact comparator (converter/compare/outputs.py) and the golden.npz format
(converter/compare/golden_format.py), without any runtime."""
import numpy as np
import pytest

from converter.compare.golden_format import load_vectors, save_vectors
from converter.compare.outputs import compare_outputs, differing, first_differing_byte, first_mismatch
from converter.errors import KitError


def test_bits_not_values_are_compared():
    zero, negative_zero = np.zeros((1, 2), np.float32), np.array([[0.0, -0.0]], np.float32)
    assert differing(zero, negative_zero).tolist() == [[False, True]]
    nan = np.full((1, 1), np.nan, np.float32)
    assert not differing(nan, nan.copy()).any()
    assert differing(np.zeros((2, 3), np.int8), np.zeros((2, 3), np.uint8)).all(), "another type differs everywhere"


def test_first_mismatch_names_vector_output_and_index():
    expected = [np.zeros((3, 4), np.int8), np.zeros((3, 2), np.int16)]
    actual = [e.copy() for e in expected]
    assert first_mismatch(expected, actual) is None
    actual[1][2, 1] = -7
    actual[1][2, 0] = 5
    mismatch = first_mismatch(expected, actual)
    assert (mismatch.vector, mismatch.output, mismatch.index, mismatch.actual) == (2, 1, 0, 5)
    assert str(mismatch) == "vector 2 output 1 index 0: expected 0, got 5 (2 of 6 values differ)"


def test_compare_outputs_counts_vectors_and_lsb():
    golden = [np.array([[1, 2], [3, 4], [5, 6]], np.int8)]
    candidate = [np.array([[1, 2], [3, 1], [5, 6]], np.int8)]
    result = compare_outputs(golden, candidate)
    assert (result["equal"], result["total"], result["max_lsb"], result["differing_elements"],
            result["first_differing_vector"]) == (2, 3, 3, 1, 1)


@pytest.mark.parametrize("expected, actual, position", [
    (b"abc", b"abc", None), (b"abc", b"abd", 2), (b"abc", b"ab", 2), (b"ab", b"abc", 2), (b"", b"x", 0)])
def test_first_differing_byte(expected, actual, position):
    assert first_differing_byte(expected, actual) == position


def test_golden_vectors_round_trip_with_several_inputs_and_outputs(tmp_path):
    inputs = [np.arange(12, dtype=np.int8).reshape(3, 4), np.ones((3, 2), np.int16)]
    outputs = [np.zeros((3, 5), np.int8), np.full((3, 1), 9, np.int32), np.zeros((3,), np.bool_)]
    save_vectors(tmp_path / "golden.npz", inputs, outputs)
    loaded = load_vectors(tmp_path / "golden.npz")
    assert loaded.vectors == 3 and len(loaded.inputs) == 2 and len(loaded.outputs) == 3
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(loaded.outputs, outputs))


@pytest.mark.parametrize("arrays, expected", [
    ({"output_0": np.zeros((2, 1))}, "has no input_0 array"),
    ({"input_0": np.zeros((2, 1)), "input_2": np.zeros((2, 1)), "output_0": np.zeros((2, 1))},
     "has input arrays [0, 2], not numbered 0 to 1"),
    ({"input_0": np.zeros((0, 1)), "output_0": np.zeros((0, 1))}, "same number of vectors (at least one)"),
    ({"input_0": np.zeros(()), "output_0": np.zeros((2, 1))}, "same number of vectors"),
])
def test_golden_vectors_that_do_not_fit_the_format(tmp_path, arrays, expected):
    np.savez(tmp_path / "golden.npz", **arrays)
    with pytest.raises(KitError, match=expected.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_vectors(tmp_path / "golden.npz")
