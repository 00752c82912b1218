"""Data for optimizing the MLPerf Tiny IC ResNet-8 (bench/optimize_ic.yaml).

Fine-tuning and calibration: the 4,660 CIFAR-10 training images with their original pixels
(cifar10_exact_train_subset.npz), so compression is not tuned to JPEG artefacts. Selection: the
official test images, which exist here only JPEG-re-encoded (cifar10_jpeg.npz; say so when reporting).
The model takes raw 0-255 pixels as float.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load_data(test_images: int = 1000):
    shared = Path(os.environ["TFLM_KIT_SHARED_DATA"]) / "cifar10"
    with np.load(shared / "cifar10_exact_train_subset.npz") as exact, np.load(shared / "cifar10_jpeg.npz") as jpeg:
        # every class alike: the test set is sorted by nothing, so the first N are a fair sample
        return {"x_train": exact["x_train"].astype(np.float32), "y_train": exact["y_train"].astype(np.int64),
                "x_eval": jpeg["x_test"][:test_images].astype(np.float32),
                "y_eval": jpeg["y_test"][:test_images].astype(np.int64), "labels": LABELS}
