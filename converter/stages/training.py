"""Fitting and scoring Keras models: the shared part of the train, prune and cluster stages."""
from __future__ import annotations

import numpy as np

from .. import progress
from ..system import tf_env
from ..inputs.dataset import Dataset
from ..errors import KitError


def _outputs_probabilities(model) -> bool:
    """True when the model ends in a softmax, so the loss must not expect logits."""
    last = model.layers[-1]
    last = getattr(last, "layer", last)  # look through TF-MOT's pruning/clustering wrappers
    activation = getattr(last, "activation", None)
    return type(last).__name__ == "Softmax" or getattr(activation, "__name__", "") == "softmax"


def compile_for_training(model, loss: str, learning_rate: float):
    keras = tf_env.keras()
    from_logits = not _outputs_probabilities(model)
    loss_fn = {
        "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        "categorical_crossentropy": keras.losses.CategoricalCrossentropy(from_logits=from_logits),
        "binary_crossentropy": keras.losses.BinaryCrossentropy(from_logits=from_logits),
        "mse": keras.losses.MeanSquaredError(),
    }[loss]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss_fn)
    return model


def fit(model, data: Dataset, epochs: int, batch_size: int, seed: int, callbacks=(), stage: str = "training"):
    if epochs == 0:
        return []
    if not data.trainable:
        raise KitError(f"{stage} needs training data (x_train and y_train) and the data source has none",
                       "add x_train/y_train to the data, or remove the stage / set its epochs to 0")
    tf_env.tensorflow().keras.utils.set_random_seed(seed)
    history = model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size,
                        callbacks=[*callbacks, progress.epoch_callback(stage, epochs)], verbose=0, shuffle=True)
    return [float(x) for x in history.history.get("loss", [])]


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
    if not data.labeled_eval:
        return {}
    score = accuracy(predict(model, data.x_eval), data.y_eval)
    return {} if score is None else {"eval_accuracy": round(score, 5), "eval_samples": int(len(data.x_eval))}
