"""One client's local work: rebuild the model, take the global weights, run SGD on its shard.

Plain SGD in an eager loop (no optimizer state, no traced function kept between rounds) so the
result depends only on the weights, the shard and the seed: the same round on the same client
gives the same update whichever Ray worker runs it. FedProx adds mu/2 * ||w - w_global||^2.
BatchNormalization layers are frozen by default (fine-tuning a pretrained model on small shards):
see exchange_mask.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LocalPlan:
    model_json: str
    loss: str
    epochs: int
    batch_size: int
    learning_rate: float
    proximal_mu: float
    seed: int
    freeze_batch_norm: bool = True


def build_model(model_json: str):
    from ..system import tf_env

    return tf_env.keras().models.model_from_json(model_json)


def loss_function(model, loss: str):
    from ..stages.training import compile_for_training

    return compile_for_training(model, loss, learning_rate=1e-3).loss


def exchange_mask(model, freeze_batch_norm: bool) -> list[bool]:
    """Which of model.weights travel between server and clients: what the clients change.

    With BatchNormalization frozen (Keras 2 then runs it in inference mode, keeping the pretrained
    statistics instead of re-estimating them from a client's few samples per batch) only the
    trainable weights travel; the frozen ones go once per round as fixed values, outside what
    FedAvg averages and DP clips and noises (noise on a moving variance can make it negative).
    Otherwise every weight travels, BatchNorm statistics included. Sets the trainable flags."""
    from ..system import tf_env

    if not freeze_batch_norm:
        return [True] * len(model.weights)
    for layer in model.layers:
        if isinstance(layer, tf_env.keras().layers.BatchNormalization):
            layer.trainable = False
    trained = {id(v) for v in model.trainable_weights}
    return [id(v) in trained for v in model.weights]


def split_weights(weights: list, mask: list[bool]) -> tuple[list, list]:
    """(exchanged, fixed) in model.weights order."""
    return [w for w, m in zip(weights, mask) if m], [w for w, m in zip(weights, mask) if not m]


def merge_weights(exchanged: list, fixed: list, mask: list[bool]) -> list:
    exchanged, fixed = iter(exchanged), iter(fixed)
    return [next(exchanged) if m else next(fixed) for m in mask]


def pack_arrays(arrays: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, *arrays)
    return buffer.getvalue()


def unpack_arrays(data: bytes) -> list[np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]


def train(plan: LocalPlan, exchanged: list[np.ndarray], fixed: list[np.ndarray], x: np.ndarray,
          y: np.ndarray) -> tuple[list[np.ndarray], float]:
    """The exchanged weights after plan.epochs of SGD on (x, y), in the order received, and the mean
    training loss of the last epoch. `fixed`: the weights that do not travel (exchange_mask)."""
    from ..system import tf_env

    tf = tf_env.tensorflow()
    tf.keras.utils.set_random_seed(plan.seed)  # dropout and other random layers
    model = build_model(plan.model_json)
    mask = exchange_mask(model, plan.freeze_batch_norm)
    model.set_weights(merge_weights(exchanged, fixed, mask))
    loss_fn = loss_function(model, plan.loss)
    trainable = model.trainable_variables
    anchors = [tf.constant(v.numpy()) for v in trainable]
    rng = np.random.default_rng(plan.seed)
    last_epoch: list = []
    for _ in range(plan.epochs):
        last_epoch = []
        order = rng.permutation(len(x))
        for start in range(0, len(x), plan.batch_size):
            batch = order[start:start + plan.batch_size]
            with tf.GradientTape() as tape:
                loss = loss_fn(y[batch], model(x[batch], training=True))
                if plan.proximal_mu > 0:
                    loss += plan.proximal_mu / 2 * tf.add_n([tf.reduce_sum(tf.square(v - a))
                                                             for v, a in zip(trainable, anchors)])
            gradients = tape.gradient(loss, trainable)
            for variable, gradient in zip(trainable, gradients):
                if gradient is not None:
                    variable.assign_sub(plan.learning_rate * gradient)
            last_epoch.append(float(loss))
    trained, _ = split_weights([np.asarray(v.numpy()) for v in model.weights], mask)
    return trained, float(np.mean(last_epoch)) if last_epoch else 0.0


def evaluate(model, x: np.ndarray, y: np.ndarray, loss: str, batch_size: int = 256) -> dict:
    """Loss and (for class labels) accuracy of a model on a held-out set."""
    from ..stages.training import accuracy, predict

    outputs = predict(model, x, batch_size)
    value = float(loss_function(model, loss)(y, outputs))
    score = accuracy(outputs, y)
    return {"loss": round(value, 5)} | ({} if score is None else {"accuracy": round(score, 5)})
