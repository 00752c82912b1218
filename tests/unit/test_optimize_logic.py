"""`tflm-kit optimize`'s pure logic: held-out splits, distillation targets, guards against the float model and
Pareto fronts. No TensorFlow (the search itself is tests/test_optimize.py)."""
from dataclasses import replace

import numpy as np
import pytest

from converter.errors import KitError
from converter.inputs.dataset import Dataset
from converter.optimize.guards import CLASSIFIER, REGRESSION, Guards, judge, quality, task_of
from converter.optimize.pareto import pareto_front
from converter.optimize.splits import distillation_targets, split


def _rows(x):
    return {row.tobytes() for row in np.ascontiguousarray(x, dtype=np.float32)}


def _data(train=40, cal=None, eval_=20, seed=0):
    rng = np.random.default_rng(seed)
    x_train = rng.normal(size=(train, 3)).astype(np.float32)
    x_eval = rng.normal(size=(eval_, 3)).astype(np.float32) if eval_ else None
    return Dataset(x_train=x_train, y_train=rng.integers(0, 3, train), x_calibration=x_train if cal is None else cal,
                   x_eval=x_eval, y_eval=None if x_eval is None else rng.integers(0, 3, eval_), labels=None)


def test_selection_set_is_the_eval_set_when_training_inputs_are_separate():
    data = _data()
    parts = split(data, seed=0)
    assert len(parts.x_selection) == 20 and len(parts.x_fit) == 40
    assert not _rows(parts.x_selection) & (_rows(parts.x_fit) | _rows(parts.x_calibration))


def test_a_pool_shared_with_calibration_is_split_seeded_and_disjoint():
    data = _data()
    shared = replace(data, x_train=None, y_train=None, x_calibration=data.x_eval)  # calibrates on its eval inputs
    first, again, other = split(shared, seed=1), split(shared, seed=1), split(shared, seed=2)
    assert not _rows(first.x_selection) & (_rows(first.x_fit) | _rows(first.x_calibration))
    assert len(first.x_selection) + len(first.x_calibration) == 20
    np.testing.assert_array_equal(first.x_selection, again.x_selection)
    assert _rows(first.x_selection) != _rows(other.x_selection)
    assert "seeded" in first.note


def test_training_rows_equal_to_a_selection_row_are_dropped():
    data = _data()
    leaky = replace(data, x_train=np.concatenate([data.x_train, data.x_eval[:3]]),
                    y_train=np.concatenate([data.y_train, data.y_eval[:3]]))
    parts = split(leaky, seed=0)
    assert len(parts.x_fit) == 40 and len(parts.y_fit) == 40
    assert not _rows(parts.x_selection) & _rows(parts.x_fit)
    assert "dropped 3" in parts.note


def test_no_eval_inputs_holds_out_part_of_the_training_inputs():
    parts = split(_data(eval_=0), seed=0)
    assert len(parts.x_selection) == 20 and parts.y_selection is not None
    assert not _rows(parts.x_selection) & (_rows(parts.x_fit) | _rows(parts.x_calibration))


def test_too_little_data_is_refused():
    with pytest.raises(KitError, match="too few"):
        split(_data(train=8, eval_=0), seed=0)


def test_distillation_targets_are_teacher_probabilities_optionally_mixed_with_labels():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]], dtype=np.float32)
    pure = distillation_targets(logits, np.array([2, 1]), classifier=True, softmax_output=False, label_weight=0.0)
    np.testing.assert_allclose(pure.sum(axis=1), 1.0, rtol=1e-6)
    assert pure[0].argmax() == 0  # the teacher's choice, not the label's
    mixed = distillation_targets(logits, np.array([2, 1]), classifier=True, softmax_output=False, label_weight=0.5)
    np.testing.assert_allclose(mixed[0, 2], 0.5 * pure[0, 2] + 0.5, rtol=1e-6)
    regression = distillation_targets(logits, None, classifier=False, softmax_output=False, label_weight=0.5)
    np.testing.assert_array_equal(regression, logits)


def test_classifier_guards_fail_on_agreement_and_accuracy_with_reasons():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(100, 4))
    labels = teacher.argmax(axis=1)
    candidate = teacher.copy()
    candidate[:10] = candidate[:10][:, ::-1]  # 10 of 100 flip their top class
    assert task_of(teacher, labels) == CLASSIFIER
    verdict = judge(Guards.defaults(CLASSIFIER), quality([teacher], [candidate], labels))
    assert not verdict.passed
    assert any("agreement 90.00% < 95.00%" in f for f in verdict.failures)
    assert any("accuracy drop 10.0 points" in f for f in verdict.failures)
    assert verdict.constraints["agreement"] == pytest.approx(0.05) and verdict.constraints["accuracy_drop"] > 0
    holds = judge(Guards.defaults(CLASSIFIER), quality([teacher], [teacher + 1e-3], labels))
    assert holds.passed and all(value <= 0 for value in holds.constraints.values())


def test_regression_guard_is_sqnr_on_every_output():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(50, 16))
    assert task_of(teacher[:, :1], None) == REGRESSION
    guards = Guards.defaults(REGRESSION)
    assert guards.min_sqnr_db == 20.0 and guards.min_agreement is None
    noisy = teacher + rng.normal(scale=0.3, size=teacher.shape)  # ~10 dB
    verdict = judge(guards, quality([teacher[:, :1], teacher], [teacher[:, :1], noisy], None))
    assert not verdict.passed and "SQNR" in verdict.failures[0] and verdict.constraints["sqnr"] > 0
    assert judge(guards, quality([teacher], [teacher], None)).passed  # identical: inf dB


def test_pareto_front_keeps_only_undominated_points():
    points = [(100, 0.99), (50, 0.97), (60, 0.96), (40, 0.90), (50, 0.97), (200, 0.99)]
    assert pareto_front(points) == [3, 1, 4, 0]


def test_a_candidates_flat_params_are_read_in_one_place():
    from converter.optimize.space import Candidate, describe

    params = {"clusters:conv": 0, "clusters:logits": 4, "sparsity": 0.5, "int4:conv": True, "int4:logits": True,
              "memory_plan": True}
    candidate = Candidate.from_params(params)
    assert candidate.clusters == {"conv": 0, "logits": 4} and candidate.sparsity == 0.5 and candidate.memory_plan
    assert candidate.int4_chosen == ("conv", "logits") and candidate.int4_layers == ["conv"]  # logits keeps its LUT
    assert describe(params) == "logits:4 sparsity 0.5 conv:int4"
    assert Candidate.from_params({}) == Candidate({})


def test_a_lever_is_spelled_and_parsed_in_one_place():
    from converter.optimize.space import CLUSTER_CHOICES, SPARSITY_CHOICES, Lever, Space

    space = Space(("conv", "logits"), prune=True, int4=True, int4_candidates=("conv",), memory_plan=True)
    assert space.parameter_names() == ["clusters:conv", "clusters:logits", "sparsity", "int4:conv", "memory_plan"]
    assert [Lever.parse(name) for name in space.parameter_names()] == space.levers()
    assert Lever.parse("clusters:a:b") == Lever("clusters", "a:b") and Lever("int4").param == "int4"
    assert [space.choices(name) for name in space.parameter_names()] == [
        CLUSTER_CHOICES, CLUSTER_CHOICES, SPARSITY_CHOICES, (False, True), (True,)]
    assert space.int4_all() == space.reference() | {"int4:conv": True}
    assert space.only("logits", 4) == space.reference() | {"clusters:logits": 4}
def test_a_flatbuffer_space_searches_int4_and_decode_switches_never_clusters():
    """A model the kit cannot retrain (Keras 3, PyTorch): its space has no cluster or sparsity lever; the
    sensitivity, greedy and small-budget candidates use int4 per filter and the LUT/PRUNE switch instead,
    and Keras spaces keep the fingerprint they had (no new keys in as_dict)."""
    from converter.optimize.search import fixed_candidates, greedy_candidate
    from converter.optimize.space import FLATBUFFER, Space, touched_layers
    from converter.optimize.store import SearchStore
    from converter.optimize.trial import PASSED, TrialResult

    space = Space(("f/a", "f/b"), {"f/a": 100, "f/b": 900}, int4=True, base=FLATBUFFER, lut=True,
                  left_out=("clusters: no",))
    assert space.parameter_names() == ["lut", "int4:f/a", "int4:f/b"]
    assert space.reference() == {"lut": False, "int4:f/a": False, "int4:f/b": False}
    assert space.only("f/b") == space.reference() | {"int4:f/b": True}
    store = SearchStore(folder=None, settings={})
    small = fixed_candidates(space, store, budget=2)
    assert [phase for phase, _ in small] == ["reference", "int4", "int4", "uniform"]
    assert small[1][1]["int4:f/b"] and not small[1][1]["int4:f/a"] and small[3][1]["lut"]
    assert [phase for phase, _ in fixed_candidates(space, store, budget=4)] == ["reference", "sensitivity", "sensitivity"]
    store.trials = [TrialResult(1, "sensitivity", space.only("f/a"), PASSED),
                    TrialResult(2, "sensitivity", space.only("f/b"), "failed guard")]
    assert touched_layers(space.only("f/a")) == ["f/a"]
    assert greedy_candidate(space, store) == {"lut": True, "int4:f/a": True, "int4:f/b": False}
    searched, left_out = space.lever_lines()
    assert any("int4" in lever for lever in searched) and not any("clusters" in lever for lever in searched)
    assert left_out == ["clusters: no"] and space.as_dict()["base"] == FLATBUFFER
    keras = Space(("a",), {"a": 100})
    assert set(keras.as_dict()) == {"layers", "layer_weights", "prune", "int4", "choices"}
    assert keras.parameter_names() == ["clusters:a"] and keras.uniform() == {"clusters:a": 16}


def test_a_filter_is_named_by_the_shortest_suffix_no_other_filter_holds():
    """compress.int4_layers matches by substring: the short name must pick exactly its own filter."""
    from converter.optimize.space import short_name

    every = ["m/conv_1/convolution", "m/pointwise_1/convolution", "m/logits_1/MatMul", "w/Conv2d_1;", "w/Conv2d_10;",
             "a/b", "a/b/c/a/b"]
    assert short_name("m/conv_1/convolution", every) == "conv_1/convolution"
    assert short_name("m/logits_1/MatMul", every) == "MatMul"
    assert short_name("w/Conv2d_1;", every) == "Conv2d_1;"
    assert short_name("a/b", every) is None   # inside another filter's name: cannot be chosen alone
