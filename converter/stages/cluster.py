"""Weight clustering with TF-MOT (optionally per channel and sparsity-preserving), then stripped."""
from __future__ import annotations

import warnings
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ..errors import KitError, foreign_text
from ..system import tf_env
from .base import KerasStage, StageContext, StageRecord, StageSettings, register
from .training import LOSSES, compile_for_training, fit, freeze_batch_norm, rounded_losses

_INIT = {
    "kmeans_plus_plus": "KMEANS_PLUS_PLUS",
    "linear": "LINEAR",
    "density_based": "DENSITY_BASED",
    "random": "RANDOM",
}


def _cluster_count(count: int) -> int:
    if count == 1:
        raise ValueError("a layer's cluster count is 0 (leave it unclustered) or 2..256")
    return count


class ClusterSettings(StageSettings):
    loss: LOSSES = "sparse_categorical_crossentropy"
    clusters: int = Field(16, ge=2, le=256)
    per_layer: dict[str, Annotated[int, Field(ge=0, le=256), AfterValidator(_cluster_count)]] = Field(
        default_factory=dict, description="layer name -> its own cluster count (others get 'clusters'); "
                                          "0 leaves the layer unclustered")
    per_channel: bool = True
    preserve_sparsity: bool = True
    centroid_init: Literal["kmeans_plus_plus", "linear", "density_based", "random"] = "kmeans_plus_plus"
    epochs: int = Field(1, ge=0, le=1000)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    freeze_batch_norm: bool = Field(True, description="fine-tune with BatchNormalization in inference mode (its "
                                    "moving statistics stay the float model's)")


@register
class Cluster(KerasStage):
    """At most `clusters` distinct values per kernel (per channel), fine-tuned; zeros kept on request.
    TF-MOT cannot cluster a model wrapped for quantization-aware training: cluster comes before qat."""
    keras3_instead = ("TF-MOT clustering takes tf_keras models only: drop the stage and use compress lut: true or "
                      "int4: true after quantize (the kit's own weight sharing), or build the model with tf_keras")

    name, Settings, must_not_follow = "cluster", ClusterSettings, ("qat",)

    def transform(self, model, settings: ClusterSettings, context: StageContext):
        return _cluster(model, settings, context)

    def report_note(self, record: StageRecord) -> str:
        worst = max((row["max_unique_per_channel"] for row in record.layers or []), default=0)
        note = f"≤ {worst} distinct values per channel"
        notes = record.details_dict().get("notes")
        if notes:
            note += (f"; {len(notes)} layer(s) left as they were "
                     "(no more weights per channel than clusters)")
        return note


def _cluster(model, settings: ClusterSettings, context: StageContext):
    import tensorflow_model_optimization as tfmot

    data, seed = context.data, context.seed
    clustering = tfmot.clustering.keras
    init = getattr(clustering.CentroidInitialization, _INIT[settings.centroid_init])
    # preserve_sparsity and cluster_per_channel are documented as experimental; the public
    # cluster_weights forwards them to the same implementation.
    counts = clusters_per_layer(model, settings)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            options = {"cluster_centroids_init": init, "preserve_sparsity": settings.preserve_sparsity,
                       "cluster_per_channel": settings.per_channel}
            if settings.per_layer:
                # TF-MOT's model-level call takes one count; wrapping layer by layer in clone_model
                # (TF-MOT's documented pattern) gives each layer its own.
                def wrap(layer):
                    if counts.get(layer.name) == 0:  # 0: leave this layer as it is
                        return layer
                    return clustering.cluster_weights(
                        layer, number_of_clusters=counts.get(layer.name, settings.clusters), **options)

                wrapped = tf_env.keras().models.clone_model(model, clone_function=wrap)
            else:
                wrapped = clustering.cluster_weights(model, number_of_clusters=settings.clusters, **options)
        if settings.freeze_batch_norm:
            freeze_batch_norm(wrapped)
        compile_for_training(wrapped, settings.loss, settings.learning_rate)
        losses = fit(wrapped, data, settings.epochs, settings.batch_size, seed, stage="cluster",
                     events=context.events)
    except tf_env.tensorflow().errors.InvalidArgumentError as exc:
        # k-means++ needs at least as many (non-zero, same-sign) weights per channel as clusters.
        raise KitError(f"clustering into {settings.clusters} clusters failed: a layer has too few weights "
                       f"per channel ({foreign_text(exc.message)})",
                       "use fewer clusters, per_channel: false, or centroid_init: linear") from None
    except ValueError as exc:
        raise KitError(f"TF-MOT cannot cluster this model: {foreign_text(exc)}",
                       "remove the cluster stage or replace the unsupported layer") from None
    stripped = clustering.strip_clustering(wrapped)
    freeze_batch_norm(stripped, frozen=False)  # later stages train BN as usual
    # TF-MOT leaves a layer unclustered (with a warning) when a channel has no more weights than
    # clusters; such a layer already has at most that many values per channel, but say so.
    notes = sorted({" ".join(str(w.message).split()) for w in caught if "clustering" in str(w.message)})
    return stripped, {"loss_per_epoch": rounded_losses(losses), "notes": notes,
                      "clusters_per_layer": counts}


def clusters_per_layer(model, settings: ClusterSettings) -> dict[str, int]:
    """Layer name -> cluster count for every layer with weights; unknown per_layer names are an error."""
    names = [layer.name for layer in model.layers]
    unknown = sorted(set(settings.per_layer) - set(names))
    if unknown:
        raise KitError(f"cluster.per_layer names layer(s) {', '.join(unknown)}, which the model does not have",
                       f"use layer names of the model: {', '.join(names)[:200]}")
    return {layer.name: settings.per_layer.get(layer.name, settings.clusters)
            for layer in model.layers if layer.weights}

