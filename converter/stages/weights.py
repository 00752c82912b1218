"""What optimization did to the weights: sparsity and distinct values per layer and per channel."""
from __future__ import annotations

import numpy as np


def kernel_of(layer) -> np.ndarray | None:
    """The layer's main weight tensor (kernel / depthwise kernel), or None if it has none."""
    for weight in layer.weights:
        name = weight.name.split("/")[-1]
        if "kernel" in name:
            return np.asarray(weight.numpy())
    return None


def weight_stats(model) -> list[dict]:
    """One row per layer with a kernel. Channels are the last axis (Keras' output channels),
    except depthwise kernels, whose channels are axis 2."""
    rows = []
    for layer in model.layers:
        kernel = kernel_of(layer)
        if kernel is None:
            continue
        channel_axis = 2 if type(layer).__name__ == "DepthwiseConv2D" else kernel.ndim - 1
        per_channel = np.moveaxis(kernel, channel_axis, 0).reshape(kernel.shape[channel_axis], -1)
        unique_per_channel = [len(np.unique(channel)) for channel in per_channel]
        rows.append({
            "layer": layer.name,
            "type": type(layer).__name__,
            "weights": int(kernel.size),
            "sparsity": round(float(np.mean(kernel == 0)), 5),
            "unique_values": int(len(np.unique(kernel))),
            "max_unique_per_channel": int(max(unique_per_channel)),
        })
    return rows


def overall_sparsity(rows: list[dict]) -> float:
    total = sum(row["weights"] for row in rows)
    return round(sum(row["sparsity"] * row["weights"] for row in rows) / total, 5) if total else 0.0
