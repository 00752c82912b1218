"""The fast tier: pure logic, no TensorFlow. Every test here fails if it made TensorFlow load.

In `make test` these tests run after integration tests that loaded TensorFlow, so the check is
on what each test adds, not on what the session already had."""
import sys

import pytest

HEAVY = ("tensorflow", "tf_keras", "tensorflow_model_optimization")


@pytest.fixture(autouse=True)
def no_tensorflow():
    before = {name for name in HEAVY if name in sys.modules}
    yield
    loaded = sorted(name for name in HEAVY if name in sys.modules and name not in before)
    assert not loaded, f"this unit test imported {', '.join(loaded)}; the fast tier must not"
