"""Weight clustering with TF-MOT (optionally per channel and sparsity-preserving), then stripped."""
from __future__ import annotations

import warnings

import tensorflow_model_optimization as tfmot

from ..system import tf_env
from ..errors import KitError
from ..recipe import ClusterSettings
from .training import compile_for_training, fit
from . import StageResult, timed_keras_stage

_INIT = {
    "kmeans_plus_plus": "KMEANS_PLUS_PLUS",
    "linear": "LINEAR",
    "density_based": "DENSITY_BASED",
    "random": "RANDOM",
}


def _cluster(model, settings: ClusterSettings, data, seed):
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
        compile_for_training(wrapped, settings.loss, settings.learning_rate)
        losses = fit(wrapped, data, settings.epochs, settings.batch_size, seed, stage="cluster")
    except tf_env.tensorflow().errors.InvalidArgumentError as exc:
        # k-means++ needs at least as many (non-zero, same-sign) weights per channel as clusters.
        raise KitError(f"clustering into {settings.clusters} clusters failed: a layer has too few weights "
                       f"per channel ({' '.join(exc.message.split())[:120]})",
                       "use fewer clusters, per_channel: false, or centroid_init: linear") from None
    except ValueError as exc:
        raise KitError(f"TF-MOT cannot cluster this model: {' '.join(str(exc).split())[:200]}",
                       "remove the cluster stage or replace the unsupported layer") from None
    stripped = clustering.strip_clustering(wrapped)
    # TF-MOT leaves a layer unclustered (with a warning) when a channel has no more weights than
    # clusters; such a layer already has at most that many values per channel, but say so.
    notes = sorted({" ".join(str(w.message).split()) for w in caught if "clustering" in str(w.message)})
    return stripped, {"loss_per_epoch": [round(x, 5) for x in losses], "notes": notes,
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


def run(model, settings: ClusterSettings, data, seed: int = 0) -> StageResult:
    return timed_keras_stage("cluster", _cluster, model, settings, data, seed)
