"""Data builders for the benchmark's recipes: real inputs from ../shared/data where they exist."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _shared() -> Path:
    return Path(os.environ["TFLM_KIT_SHARED_DATA"])


def vww_proxy(samples: int = 200) -> dict:
    """No VWW images here: CIFAR-10 test images resized to 96x96, scaled to [0, 1], unlabeled.
    Real photographs exercise the network far more like its task than uniform noise does."""
    from converter import tf_env

    tf = tf_env.tensorflow()
    with np.load(_shared() / "cifar10/cifar10_jpeg.npz") as archive:
        images = archive["x_test"][: 2 * samples]
    resized = tf.image.resize(images.astype(np.float32) / 255.0, (96, 96), method="bilinear").numpy()
    return {"x_calibration": resized[:samples], "x_eval": resized[samples:]}


def sww_windows() -> dict:
    """The 45 real feature windows MLPerf ships for calibration, with their labels (also the eval set)."""
    with np.load(_shared() / "mlperf_tiny/streaming_wakeword/calibration_samples.npz") as archive:
        specs, labels = archive["specs"].astype(np.float32), archive["labels"]
    labels = labels.astype(int) if labels.ndim == 1 else labels.argmax(axis=1)
    return {"x_calibration": specs, "x_eval": specs, "y_eval": labels}
