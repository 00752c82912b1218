"""One client's local work: rebuild the model, take the global weights, run SGD on its shard.

Plain SGD in an eager loop (no optimizer state, no traced function kept between rounds) so the
result depends only on the weights, the shard and the seed: the same round on the same client
gives the same update whichever Ray worker runs it. FedProx adds mu/2 * ||w - w_global||^2.
BatchNormalization layers are frozen by default (fine-tuning a pretrained model on small shards).
"""
from __future__ import annotations

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


def train(plan: LocalPlan, weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[list[np.ndarray], float]:
    """New weights after plan.epochs of SGD on (x, y), and the mean training loss of the last epoch."""
    from ..system import tf_env

    tf = tf_env.tensorflow()
    tf.keras.utils.set_random_seed(plan.seed)  # dropout and other random layers
    model = build_model(plan.model_json)
    model.set_weights(weights)
    # the update goes back in exactly the order the server sent, whatever trainable flags change below
    in_server_order = list(model.weights)
    if plan.freeze_batch_norm:
        # Keras 2 runs a non-trainable BatchNormalization in inference mode: the pretrained statistics
        # stay, instead of being re-estimated from a client's few samples per batch.
        for layer in model.layers:
            if isinstance(layer, tf_env.keras().layers.BatchNormalization):
                layer.trainable = False
    loss_fn = loss_function(model, plan.loss)
    trainable = model.trainable_variables
    anchors = [tf.constant(v.numpy()) for v in trainable]
    rng = np.random.default_rng(plan.seed)
    last_epoch = []
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
    return [np.asarray(v.numpy()) for v in in_server_order], float(np.mean(last_epoch)) if last_epoch else 0.0


def evaluate(model, x: np.ndarray, y: np.ndarray, loss: str, batch_size: int = 256) -> dict:
    """Loss and (for class labels) accuracy of a model on a held-out set."""
    from ..stages.training import accuracy, predict

    outputs = predict(model, x, batch_size)
    value = float(loss_function(model, loss)(y, outputs))
    score = accuracy(outputs, y)
    return {"loss": round(value, 5)} | ({} if score is None else {"accuracy": round(score, 5)})
