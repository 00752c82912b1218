"""Fitting and scoring Keras models: the shared part of the Keras stages."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import KitError
from ..progress import Epoch, Sink, silent
from ..system import tf_env

if TYPE_CHECKING:
    from ..inputs.dataset import Dataset

LOSSES = Literal["sparse_categorical_crossentropy", "categorical_crossentropy", "mse", "binary_crossentropy"]


def _outputs_probabilities(model) -> bool:
    """True when the model ends in a softmax, so the loss must not expect logits."""
    last = model.layers[-1]
    last = getattr(last, "layer", last)  # look through TF-MOT's pruning/clustering wrappers
    activation = getattr(last, "activation", None)
    return type(last).__name__ == "Softmax" or getattr(activation, "__name__", "") == "softmax"


def compile_for_training(model, loss: str, learning_rate: float):
    keras = tf_env.keras_of(model)  # a Keras 3 model compiles with Keras 3's losses and optimizers
    from_logits = not _outputs_probabilities(model)
    loss_fn = {
        "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        "categorical_crossentropy": keras.losses.CategoricalCrossentropy(from_logits=from_logits),
        "binary_crossentropy": keras.losses.BinaryCrossentropy(from_logits=from_logits),
        "mse": keras.losses.MeanSquaredError(),
    }[loss]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss_fn)
    return model


def freeze_batch_norm(model, frozen: bool = True) -> int:
    """Run every BatchNormalization layer in inference mode while fine-tuning (Keras 2: a layer with
    trainable=False normalizes with its moving statistics and leaves them as they are); returns how many.
    Why: compression fine-tunes for an epoch or two on a few thousand inputs; in training mode BN would
    normalize each batch by its own statistics and pull the moving statistics towards the fine-tuning
    set, so the deployed model (which folds the moving statistics into its filters) drifts away from
    the float model. Measured on the MLPerf Tiny IC ResNet-8 (docs/optimize.md).
    frozen=False makes them trainable again (for the stages after this one)."""
    keras = tf_env.keras_of(model)
    count = 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # look through TF-MOT's wrappers
        if isinstance(inner, keras.layers.BatchNormalization):
            inner.trainable = not frozen
            if inner is not layer:
                layer.trainable = not frozen
            count += 1
    return count


def epoch_reporter(stage: str, epochs: int, events: Sink, model=None):
    """A Keras callback (of the model's Keras) that sends an Epoch event (with the loss) after each epoch."""
    keras = tf_env.keras() if model is None else tf_env.keras_of(model)

    class EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            events(Epoch(stage, epoch + 1, epochs, None if loss is None else float(loss)))

    return EpochProgress()


def fit_arrays(model, x, y, epochs: int, batch_size: int, seed: int, callbacks=(), stage: str = "training",
               events: Sink = silent) -> list[float]:
    """model.fit, seeded, quiet, reporting epochs; returns the loss per epoch."""
    tf_env.reseed(seed)
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size,
                        callbacks=[*callbacks, epoch_reporter(stage, epochs, events, model)], verbose=0, shuffle=True)
    return [float(value) for value in history.history.get("loss", [])]


def fit(model, data: Dataset, epochs: int, batch_size: int, seed: int, callbacks=(), stage: str = "training",
        events: Sink = silent) -> list[float]:
    if epochs == 0:
        return []
    if not data.trainable:
        raise KitError(f"{stage} needs training data (x_train and y_train) and the data source has none",
                       "add x_train/y_train to the data, or remove the stage / set its epochs to 0")
    return fit_arrays(model, data.x_train, data.y_train, epochs, batch_size, seed, callbacks, stage, events)


def rounded_losses(losses: list[float]) -> list[float]:
    return [round(x, 5) for x in losses]


def predict(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float | None:
    """Top-1 accuracy when outputs are class scores and labels are class indices, else None."""
    labels = np.asarray(labels)
    if outputs.ndim != 2 or outputs.shape[1] < 2 or labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        return None
    return float(np.mean(np.argmax(outputs, axis=1) == labels))


def keras_quality(model, data: Dataset) -> dict:
    """Quality of a float model on the eval set; empty when there are no labels to score against."""
    if not data.labeled_eval or len(model.outputs) != 1:  # as tflite_quality: one output to score
        return {}
    score = accuracy(predict(model, data.x_eval), data.y_eval)
    return {} if score is None else {"eval_accuracy": round(score, 5), "eval_samples": len(data.y_eval)}
