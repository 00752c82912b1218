"""Comparing runtimes and models: bit-exact outputs, op-by-op divergence, fidelity to the float model."""
