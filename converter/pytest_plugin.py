"""pytest plugin: golden-output regression tests in one line of a user's test suite.

    def test_model_still_matches(tflm_golden):
        tflm_golden.check("tests/golden/kws", "build/kws/model.tflite")

Installed with tflm-kit (entry point `pytest11`); it imports nothing heavy until used.
"""
from __future__ import annotations

import pytest


class GoldenChecker:
    def check(self, golden_dir, model=None, strict_model: bool = False) -> dict:
        from .errors import KitError
        from .flows.golden import GoldenMismatch, check

        try:
            return check(golden_dir, model, strict_model)
        except GoldenMismatch as mismatch:
            pytest.fail(f"golden outputs changed: {mismatch}", pytrace=False)
        except KitError as error:
            pytest.fail(f"golden check could not run: {error}", pytrace=False)


@pytest.fixture
def tflm_golden() -> GoldenChecker:
    """Checks that a .tflite still gives its recorded TFLM outputs, bit for bit."""
    return GoldenChecker()
