"""Kernel scratch bytes per back-end variant. The portable kernels need none; CMSIS-NN's sizes
follow its *_get_buffer_size functions (filled in with the CMSIS-NN back-end)."""
from __future__ import annotations

from dataclasses import replace

from .graph import AotGraph
from .lower import Step


def scratch_sizes(step: Step, graph: AotGraph) -> Step:
    return replace(step, scratch={"portable": 0, "cmsis-c": 0, "cmsis-dsp": 0, "cmsis-mve": 0})
