"""Knowledge distillation stage: the student learns from the teacher's softened outputs."""
import numpy as np
import pytest

from converter.inputs.dataset import Dataset
from converter.errors import KitError
from converter.flows.convert import convert
from converter import DistillSettings, TrainSettings
from converter.recipe import load_recipe, parse_recipe
from converter.stages import distill
from converter.stages import run_stage
from tests.conftest import REPO, tiny_classifier, tiny_dataset


def small_student(input_shape=(8, 8, 4), classes=3):
    import tf_keras as keras

    return keras.Sequential([keras.layers.Input(input_shape), keras.layers.AveragePooling2D(2),
                             keras.layers.Flatten(), keras.layers.Dense(classes, name="logits")])


def wrong_output_student():
    return small_student(classes=5)


@pytest.fixture(scope="module")
def teacher():
    data = tiny_dataset(samples=512)
    model = run_stage("train", tiny_classifier(), TrainSettings(epochs=6, learning_rate=0.01), data).model
    return model, data


def _with_train_labels(data: Dataset, y) -> Dataset:
    return Dataset(data.x_train, y, data.x_calibration, data.x_eval, data.y_eval, data.labels)


def test_soft_targets_alone_teach_the_student(teacher):
    model, data = teacher
    # Shuffled training labels carry no information: only the teacher's outputs can teach here.
    shuffled = _with_train_labels(data, np.random.default_rng(1).permutation(data.y_train))
    settings = DistillSettings(student_builder="tests.test_distill:small_student", alpha=0.0, epochs=15,
                               learning_rate=0.01, temperature=2.0)
    result = run_stage("distill", model, settings, shuffled, seed=0)
    record = result.record
    assert record["quality_before"]["eval_accuracy"] >= 0.9  # the teacher
    assert record["quality_after"]["eval_accuracy"] >= 0.85, record["quality_after"]
    assert record["student"]["params"] < record["teacher"]["params"] / 10
    assert record["loss_per_epoch"][-1] < record["loss_per_epoch"][0]
    assert result.model.name != model.name  # the student replaces the model

    # With alpha=1 the same student sees only the shuffled labels and stays near chance.
    labels_only = run_stage("distill", model, settings.model_copy(update={"alpha": 1.0}), shuffled, seed=0)
    assert labels_only.record["quality_after"]["eval_accuracy"] < 0.6


def test_loss_matches_the_formula():
    import tensorflow as tf

    teacher = np.array([[2.0, 0.5, -1.0]], np.float32)
    student = np.array([[0.2, 0.1, 0.3]], np.float32)
    packed = np.concatenate([[[1.0]], teacher], axis=1).astype(np.float32)
    t, alpha = 3.0, 0.25

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    p, q = softmax(teacher[0] / t), softmax(student[0] / t)
    expected = alpha * -np.log(softmax(student[0])[1]) + (1 - alpha) * t ** 2 * np.sum(p * np.log(p / q))
    loss = distill.distillation_loss(t, alpha, student_probabilities=False, classes=3)
    assert float(loss(tf.constant(packed), tf.constant(student))[0]) == pytest.approx(expected, rel=1e-5)
    # a softmax student gives the same loss from its probabilities
    loss_p = distill.distillation_loss(t, alpha, student_probabilities=True, classes=3)
    probabilities = softmax(student[0])[None].astype(np.float32)
    assert float(loss_p(tf.constant(packed), tf.constant(probabilities))[0]) == pytest.approx(expected, rel=1e-4)


def test_student_must_match_the_teacher(teacher):
    model, data = teacher
    with pytest.raises(KitError, match="student outputs shape"):
        run_stage("distill", model, DistillSettings(student_builder="tests.test_distill:wrong_output_student", epochs=1),
                    data)
    with pytest.raises(KitError, match="has no function"):
        run_stage("distill", model, DistillSettings(student_builder="tests.test_distill:nope", epochs=1), data)


def test_distill_recipe_fields_are_checked():
    base = {"name": "m", "model": {"path": "m.h5"}, "data": {"npz": "d.npz"}}
    with pytest.raises(KitError, match=r"stages\[0\]\.distill\.student_builder' is required"):
        parse_recipe(base | {"stages": [{"distill": {"epochs": 2}}]})
    with pytest.raises(KitError, match=r"stages\[0\]\.distill\.alpha"):
        parse_recipe(base | {"stages": [{"distill": {"student_builder": "s.py:f", "alpha": 1.5}}]})


def test_distill_recipe_on_digits(tmp_path):
    """The bundled recipe: the student (a builder relative to the recipe) is what gets quantized."""
    manifest = convert(load_recipe(REPO / "models/recipes/distill.yaml"), tmp_path / "out", log=lambda _: None).manifest
    stages = {s["stage"]: s for s in manifest["stages"]}
    record = stages["distill"]
    assert record["student"]["params"] < record["teacher"]["params"] / 5
    teacher_accuracy = record["quality_before"]["eval_accuracy"]
    student_accuracy = record["quality_after"]["eval_accuracy"]
    assert teacher_accuracy > 0.9 and student_accuracy > 0.85
    assert stages["quantize"]["quality_before"]["eval_accuracy"] == student_accuracy
    assert manifest["model"]["bytes"] < 12_000  # the teacher's int8 file is about 28 kB
