"""Federated fine-tuning (Flower on Ray): Keras -> Keras, like any other stage.

Everything that can be wrong with the settings or data is checked before the first client trains:
partition feasibility, the by_key field, a usable loss, a model that clients can rebuild, and a
DP budget the accountant can bound.
"""
from __future__ import annotations

import numpy as np

from ..errors import KitError, foreign_text
from ..federated.partition import partition
from ..federated.settings import FederatedSettings
from ..inputs.dataset import Dataset
from ..system import tf_env
from ..progress import Note
from .base import KerasStage, register

PLOT = "federated_accuracy.png"


def _check_loss(model, settings: FederatedSettings, data: Dataset) -> None:
    from ..federated.local_training import loss_function

    if not model.trainable_variables:
        raise KitError("the model has no trainable weights to fine-tune federated", "remove the federated stage")
    x, y = data.x_train[:8], data.y_train[:8]
    try:
        value = float(loss_function(model, settings.loss)(y, model(x, training=False)))
    except Exception as exc:  # Keras raises many types for a loss that does not fit the outputs
        raise KitError(f"loss {settings.loss} does not fit this model's outputs and labels "
                       f"({foreign_text(exc, with_type=True)})",
                       "set federated.loss to one that matches the model (classification: "
                       "sparse_categorical_crossentropy with class indices; regression: mse)") from None
    if not np.isfinite(value):
        raise KitError(f"loss {settings.loss} is {value} on the first training samples",
                       "check the labels and the model's last layer (probabilities vs logits)")


def _model_json(model) -> str:
    """Clients rebuild the model from its Keras JSON: refuse models that cannot round-trip."""
    try:
        text = model.to_json()
        tf_env.keras().models.model_from_json(text)
    except Exception as exc:  # custom layers, Lambda closures, subclassed models
        raise KitError(f"the model cannot be rebuilt from its Keras config on the clients ({type(exc).__name__})",
                       "use built-in Keras layers for federated fine-tuning") from None
    return text


def check(model, settings: FederatedSettings, data: Dataset, seed: int):
    """All input checks; returns (partition, model JSON, privacy or None). Trains nothing."""
    from ..federated.privacy import account

    if not data.trainable:
        raise KitError("federated needs training data (x_train and y_train) to split among clients",
                       "add x_train/y_train to the data, or remove the federated stage")
    if not data.labeled_eval:
        raise KitError("federated scores the global model each round on a held-out labeled eval set, and "
                       "the data has none", "add x_eval/y_eval (x_test/y_test in an .npz) to the data")
    split = partition(settings, data.y_train, data.keys, seed)
    privacy = account(settings) if settings.dp else None
    if settings.dp and not settings.freeze_batch_norm and any(
            type(layer).__name__ == "BatchNormalization" for layer in model.layers):
        raise KitError("dp with freeze_batch_norm: false would add noise to BatchNormalization statistics "
                       "(a noised variance can turn negative)", "keep freeze_batch_norm: true with dp")
    _check_loss(model, settings, data)
    return split, _model_json(model), privacy


def _round_reporter(events):
    def report(number: int, rounds: int, scores: dict) -> None:
        events(Note(f"  federated: round {number}/{rounds}, held-out "
                    + ", ".join(f"{name} {value:.4f}" for name, value in scores.items())))
    return report


def _check_finite(outcome) -> None:
    if all(np.isfinite(w).all() for w in outcome.weights):
        return
    first = next((r["round"] for r in outcome.rounds if not np.isfinite(r.get("eval_loss", 0.0))), "?")
    raise KitError(f"federated training diverged: the global model has NaN/inf weights (held-out loss "
                   f"not finite from round {first})", "lower federated.learning_rate (e.g. 10x smaller)")


def _federate(model, settings: FederatedSettings, data: Dataset, seed: int, events):
    from ..federated.server import ServerPlan
    from ..federated.simulation import simulate

    split, model_json, privacy = check(model, settings, data, seed)
    plan = ServerPlan(settings=settings, model_json=model_json, initial_weights=model.get_weights(),
                      x_eval=data.x_eval, y_eval=data.y_eval, seed=seed, on_round=_round_reporter(events))
    shards = [(data.x_train[idx], data.y_train[idx]) for idx in split.shards]
    outcome = simulate(plan, shards)
    _check_finite(outcome)
    trained = tf_env.keras().models.clone_model(model)
    trained.set_weights(outcome.weights)
    details = {
        "trained_federated": True,
        "engine": {"flower": _version("flwr"), "ray": _version("ray"), "ray_address": settings.ray_address,
                   "workers": settings.workers, "cpus_per_client": settings.cpus_per_client},
        "partition": split.summary(data.y_train) | {"kind": settings.partition},
        "clients_per_round": settings.clients_per_round,
        "eval_before": outcome.initial,
        "rounds": outcome.rounds,
        "bytes_exchanged": int(sum(r["bytes_sent"] + r["bytes_received"] for r in outcome.rounds)),
        "federated_seconds": outcome.seconds,
    }
    if privacy is not None:
        details["privacy"] = privacy.as_dict()
    return trained, details


def with_ray_address(recipe, address: str | None):
    """The recipe with every federated stage sent to the Ray cluster at `address` (None: unchanged)."""
    if not address:
        return recipe
    stages = [stage.model_copy(update={"federated": stage.federated.model_copy(update={"ray_address": address})})
              if stage.kind == "federated" else stage for stage in recipe.stages]
    return recipe.model_copy(update={"stages": stages})


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


@register
class Federated(KerasStage):
    """Fine-tune on partitioned data with Flower clients (simulated on Ray), optionally with DP."""

    name, Settings, must_not_follow = "federated", FederatedSettings, ("prune", "cluster", "qat")
    extra = "federated"

    def transform(self, model, settings, context):
        return _federate(model, settings, context.data, context.seed, context.events)

    def report_note(self, record) -> str:
        from ..federated.presentation import accuracy_series, describe_run

        plotted = accuracy_series(record.as_dict()) is not None  # the condition artifacts() plots under
        return describe_run(record.as_dict()) + (f"; plot: {PLOT}" if plotted else "")

    def report_section(self, record) -> list[str]:
        from ..federated.presentation import rounds_table

        return rounds_table(record.as_dict())

    def artifacts(self, record) -> dict[str, bytes]:
        from ..federated.presentation import accuracy_plot_png

        png = accuracy_plot_png({"federated": record.as_dict()})
        return {PLOT: png} if png is not None else {}
