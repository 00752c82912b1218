"""The bundled default model: a small CNN for 28x28 handwritten digits.

It trains in seconds on the MNIST subset shipped in models/data/ (see models/data/README.md),
so `make demo` needs nothing but this repository.
"""
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "digits_subset.npz"


def _digit_cnn(filters: int, first_stride: int, name: str):
    import tf_keras as keras

    layers = keras.layers
    return keras.Sequential([
        layers.Input((28, 28, 1), name="image"),
        layers.Conv2D(filters, 3, strides=first_stride, activation="relu", name="conv"),
        layers.DepthwiseConv2D(3, activation="relu", name="depthwise"),
        layers.Conv2D(2 * filters, 1, activation="relu", name="pointwise"),
        layers.MaxPool2D(2, name="pool"),
        layers.Flatten(name="flatten"),
        layers.Dense(10, name="logits"),
        layers.Softmax(name="probabilities"),
    ], name=name)


def build_model(filters: int = 8):
    """Untrained Keras 2 model using the operators typical of MCU vision models:
    CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED and SOFTMAX."""
    return _digit_cnn(filters, first_stride=1, name="digits")


def build_student(filters: int = 4):
    """Untrained student for distilling build_model (about 10x fewer parameters): a strided first
    convolution shrinks the feature map before the classifier, where the teacher spends most weights."""
    return _digit_cnn(filters, first_stride=2, name="digits_student")


def load_data(path: str | None = None):
    """Pixels scaled to [0, 1] with a channel axis, as the model takes them."""
    archive = np.load(path or DATA)

    def images(key):
        return (archive[key].astype(np.float32) / 255.0)[..., np.newaxis]

    return {
        "x_train": images("x_train"), "y_train": archive["y_train"].astype(np.int64),
        "x_eval": images("x_test"), "y_eval": archive["y_test"].astype(np.int64),
        "labels": [str(x) for x in archive["labels"]],
    }
