"""tflm-kit: Keras model -> optimized int8 .tflite -> validated TFLM firmware artifacts.

Importing the package has no side effects; modules that import TensorFlow go through
converter.system.tf_env, which selects Keras 2 first.
"""

__version__ = "0.1.0"
