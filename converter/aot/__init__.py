"""The interpreter-free (AOT) runtime: a validated .tflite compiled to plain C99 whose outputs are
bit-identical to TFLM's (docs/aot.md).

    program = generate(model_bytes)     # AotProgram; KitError for an operator outside the set
    program.write(folder)               # aot_model.h, aot_model.c, the kernels
    program.buffer_bytes("cortex-m4")   # the static RAM buffer for that core
    print(program.memory_plan())        # offset, size, tensor

Modules: graph (the model, typed; the op-set check), quant (TFLM's Prepare arithmetic), lower (one
kernel call per operator), decode (TFLM_DECODE's LUT and PRUNE tensors, decoded into the buffer), scratch
(kernel scratch per back-end), plan (the static buffer), emit (C text), program (generate, AotProgram),
validate (gcc build vs TFLM), kernels/ (C, package data).
"""
from __future__ import annotations

from .graph import NotCompilable
from .lower import Numerics
from .program import AotProgram, TensorSpec, generate

__all__ = ["AotProgram", "NotCompilable", "Numerics", "TensorSpec", "generate"]
