"""Knowledge distillation: a student model learns from the current (teacher) model's softened outputs.

Loss (Hinton et al. 2015, as in Keras' distillation example):
    alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))
The T^2 keeps the soft term's gradients on the scale of the hard term's as T grows. Teacher logits
are computed once over the training inputs (the teacher is frozen and there is no augmentation),
then packed next to the labels so a plain `model.fit` trains the student and stays seeded.
A model that ends in softmax contributes log-probabilities, which differ from its logits by a
per-sample constant that the tempered softmax cancels.

The student (untrained, from `student_builder`) replaces the model for every later stage.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from ..errors import KitError
from ..inputs.builders import load_function
from ..system import tf_env
from .base import KerasStage, StageContext, StageSettings, register
from .training import _outputs_probabilities, fit_arrays, predict, rounded_losses


class DistillSettings(StageSettings):
    """Knowledge distillation: train a (smaller) student on the current model's softened outputs.
    The student then replaces the model for the stages after this one."""

    student_builder: str = Field(description="'file.py:function' (relative to the recipe) or 'module:function'")
    builder_args: dict = Field(default_factory=dict)
    temperature: float = Field(4.0, gt=0, le=100)
    alpha: float = Field(0.1, ge=0.0, le=1.0, description="weight of the hard-label loss; 1 - alpha on the teacher's")
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0)


def _logits(tf, outputs, probabilities: bool):
    return tf.math.log(tf.clip_by_value(outputs, 1e-7, 1.0)) if probabilities else outputs


def distillation_loss(temperature: float, alpha: float, student_probabilities: bool, classes: int):
    tf, keras = tf_env.tensorflow(), tf_env.keras()

    def loss(packed, student_out):
        labels = tf.cast(packed[:, 0], tf.int32)
        teacher = packed[:, 1:1 + classes]
        student = _logits(tf, student_out, student_probabilities)
        hard = keras.losses.sparse_categorical_crossentropy(labels, student, from_logits=True)
        soft_teacher = tf.nn.softmax(teacher / temperature)
        log_soft_student = tf.nn.log_softmax(student / temperature)
        soft = tf.reduce_sum(soft_teacher * (tf.math.log(tf.clip_by_value(soft_teacher, 1e-12, 1.0))
                                             - log_soft_student), axis=-1)
        return alpha * hard + (1.0 - alpha) * temperature ** 2 * soft

    return loss


def _float_bytes(model) -> int:
    return int(sum(np.prod(w.shape) * w.dtype.size for w in model.weights))


def build_student(settings: DistillSettings, teacher, base_dir: Path = Path(".")):
    keras = tf_env.keras()
    student = load_function(settings.student_builder, base_dir, "student")(**settings.builder_args)
    if not isinstance(student, keras.Model):
        raise KitError(f"student builder {settings.student_builder} returned a {type(student).__module__}."
                       f"{type(student).__name__}, not a Keras 2 (tf_keras) model",
                       "build the student with tf_keras (import tf_keras as keras)")
    if tuple(student.input_shape[1:]) != tuple(teacher.input_shape[1:]):
        raise KitError(f"the student takes inputs of shape {tuple(student.input_shape[1:])} but the teacher takes "
                       f"{tuple(teacher.input_shape[1:])}", "give the student the teacher's input shape")
    if tuple(student.output_shape[1:]) != tuple(teacher.output_shape[1:]):
        raise KitError(f"the student outputs shape {tuple(student.output_shape[1:])} but the teacher outputs "
                       f"{tuple(teacher.output_shape[1:])}", "give the student one output per teacher class")
    return student


@register
class Distill(KerasStage):
    name = "distill"

    def input_files(self, settings: DistillSettings) -> list[str]:
        return [settings.student_builder]
    Settings = DistillSettings

    def transform(self, teacher, settings: DistillSettings, context: StageContext):
        keras, data = tf_env.keras(), context.data
        if not data.trainable:
            raise KitError("distill needs training data (x_train and y_train) and the data source has none",
                           "add x_train/y_train to the data, or remove the distill stage")
        y = np.asarray(data.y_train)
        if len(teacher.output_shape) != 2 or teacher.output_shape[1] < 2 or y.ndim != 1 \
                or not np.issubdtype(y.dtype, np.integer):
            raise KitError(f"distill needs a classifier (one output of class scores) and integer class labels; "
                           f"the teacher outputs {teacher.output_shape[1:]} and the labels have shape {y.shape[1:]}, "
                           f"dtype {y.dtype}", "remove the distill stage for this model")
        tf_env.reseed(context.seed)  # the student's initial weights
        student = build_student(settings, teacher, context.base_dir)
        classes = int(teacher.output_shape[1])
        teacher_logits = predict(teacher, data.x_train)
        if _outputs_probabilities(teacher):
            teacher_logits = np.log(np.clip(teacher_logits, 1e-7, 1.0))
        packed = np.concatenate([y[:, None].astype(np.float32), teacher_logits.astype(np.float32)], axis=1)

        student.compile(optimizer=keras.optimizers.Adam(settings.learning_rate),
                        loss=distillation_loss(settings.temperature, settings.alpha,
                                               _outputs_probabilities(student), classes))
        losses = fit_arrays(student, data.x_train, packed, settings.epochs, settings.batch_size, context.seed,
                            stage="distill", events=context.events)
        teacher_params, student_params = int(teacher.count_params()), int(student.count_params())
        return student, {
            "loss_per_epoch": rounded_losses(losses),
            "teacher": {"params": teacher_params, "float32_bytes": _float_bytes(teacher), "name": teacher.name},
            "student": {"params": student_params, "float32_bytes": _float_bytes(student), "name": student.name},
            "params_ratio": round(student_params / max(teacher_params, 1), 4),
        }

