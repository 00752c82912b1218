"""tflm-kit: Keras model -> optimized int8 .tflite -> validated TFLM firmware artifacts."""
from . import tf_env as _tf_env  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

__version__ = "0.1.0"
