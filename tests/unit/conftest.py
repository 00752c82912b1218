"""The fast tier: pure logic, no TensorFlow. Every test here fails if it made TensorFlow load."""
import sys

import pytest


@pytest.fixture(autouse=True)
def no_tensorflow():
    yield
    loaded = sorted(name for name in ("tensorflow", "tf_keras", "tensorflow_model_optimization") if name in sys.modules)
    assert not loaded, f"this unit test imported {', '.join(loaded)}; the fast tier must not"
