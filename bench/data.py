"""Data builders for the benchmark's recipes: real inputs from ../shared/data where they exist."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _shared() -> Path:
    return Path(os.environ["TFLM_KIT_SHARED_DATA"])


def vww_photos(train: int = 500, calibration: int = 200, eval_images: int = 500) -> dict:
    """No VWW (COCO person) images here: real photographs instead of noise, the CIFAR-10 training images
    with their original pixels (not JPEG re-encoded), resized to the model's 96x96 and scaled to its
    [0, 1] input range; unlabeled for this task (the float model is the teacher). The first `train`
    fine-tune (the first `calibration` of them calibrate); the next `eval_images` are the eval set."""
    from converter import tf_env

    tf = tf_env.tensorflow()
    with np.load(_shared() / "cifar10/cifar10_exact_train_subset.npz") as archive:
        images = archive["x_train"][: train + eval_images]
    resized = np.concatenate([
        tf.image.resize(images[i:i + 100].astype(np.float32) / 255.0, (96, 96), method="bilinear").numpy()
        for i in range(0, len(images), 100)])
    return {"x_train": resized[:train], "x_calibration": resized[:calibration], "x_eval": resized[train:]}


def sww_windows() -> dict:
    """The 45 real feature windows MLPerf ships for calibration, with their labels. They are all the real
    SWW inputs there are: the recipe calibrates on them and evaluates on them (optimize splits them)."""
    with np.load(_shared() / "mlperf_tiny/streaming_wakeword/calibration_samples.npz") as archive:
        specs, labels = archive["specs"].astype(np.float32), archive["labels"]
    labels = labels.astype(int) if labels.ndim == 1 else labels.argmax(axis=1)
    return {"x_train": specs, "y_train": labels, "x_calibration": specs, "x_eval": specs, "y_eval": labels}
