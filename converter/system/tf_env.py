"""Import TensorFlow the one way TF-MOT supports: with Keras 2 (tf_keras).

TF-MOT 0.8 wraps Keras 2 layers only. TensorFlow reads TF_USE_LEGACY_KERAS when
it is first imported, so this must run before anything imports tensorflow. With it set,
`tf.keras` is tf_keras while `import keras` is still Keras 3 (which TensorFlow 2.21 installs):
Keras 3 models are converted, trained and scored with Keras 3 itself (`keras_of`).
"""
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The kit trains small models on the CPU; keeping TensorFlow off a GPU makes runs reproducible and
# silences CUDA probing on machines without one. Here, so the CLI and library callers get the same.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def tensorflow():
    """Return the tensorflow module, checking that it runs with Keras 2."""
    import tensorflow as tf

    from ..errors import KitError

    if os.environ.get("TF_USE_LEGACY_KERAS") not in ("1", "true", "True"):
        raise KitError(
            "TF_USE_LEGACY_KERAS is not 1, so TensorFlow uses Keras 3, which TF-MOT cannot optimize",
            "unset TF_USE_LEGACY_KERAS or set it to 1 before running the kit",
        )
    return tf


def keras():
    """Return tf_keras (Keras 2), the Keras every stage works with."""
    tensorflow()
    import tf_keras

    return tf_keras


def keras3():
    """Return Keras 3 (`import keras`), for models built or saved with it."""
    tensorflow()
    import keras

    return keras


def is_keras3(model) -> bool:
    """True for a Keras 3 model (its class, or a base class, comes from the `keras` package);
    read from the class, so asking never imports Keras 3."""
    return any(cls.__module__ == "keras" or cls.__module__.startswith("keras.") for cls in type(model).__mro__)


def keras_of(model):
    """The Keras a model belongs to: its losses, optimizers and callbacks must come from the same one."""
    return keras3() if is_keras3(model) else keras()


def reseed(seed: int) -> None:
    """The one way the kit seeds Python, NumPy and TensorFlow. Called where a result must not depend
    on what ran before: at the start of a flow (builders initialise weights), before a student is
    built, and before every fit, so each stage is reproducible on its own."""
    keras().utils.set_random_seed(seed)
    if "keras" in sys.modules:  # Keras 3 is in use (a builder imported it): its seed generator too
        keras3().utils.set_random_seed(seed)


def deterministic(seed: int) -> None:
    """Seed, and make TensorFlow's ops deterministic (once per flow)."""
    reseed(seed)
    tensorflow().config.experimental.enable_op_determinism()
