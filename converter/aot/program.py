"""generate(model) -> AotProgram: the whole AOT compilation of one .tflite, as a typed result."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ..errors import KitError
from . import emit
from .graph import AotGraph, read_graph
from .choice import choose_kernel
from .lower import DEFAULT_NUMERICS, Numerics, Step, lower
from .inplace import DEFAULT_PLAN, PlanOptions
from .plan import VARIANTS, MemoryPlan, plan_memory
from .scratch import scratch_sizes

# Core name -> back-end variant its build uses: CMSIS-NN's DSP path on Armv7E-M and Armv8-M Mainline
# with DSP, MVE on Armv8.1-M, CMSIS-NN's plain C path on Armv6-M and Armv7-M; a host builds the
# portable kernels. A variant name is accepted as is.
CORE_VARIANTS = {"host": "portable", "x86_64": "portable", "riscv": "portable", "xtensa": "portable",
                 "cortex-m0": "cmsis-c", "cortex-m0plus": "cmsis-c", "cortex-m3": "cmsis-c",
                 "cortex-m4": "cmsis-dsp", "cortex-m7": "cmsis-dsp", "cortex-m33": "cmsis-dsp",
                 "cortex-m55": "cmsis-mve", "cortex-m85": "cmsis-mve"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple
    dtype: str                  # "int8", "int16" or "float32" (numpy names)
    scale: float
    zero_point: int

    def as_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "scale": self.scale,
                "zero_point": self.zero_point}


@dataclass(frozen=True)
class OperatorCall:
    index: int                  # operator index in the model
    kind: str
    function: str | None        # the kernel called; None: RESHAPE aliased (no code)
    output: int                 # output tensor index
    output_bytes: int


@dataclass(frozen=True)
class AotProgram:
    files: Mapping[str, str]                 # file name -> text, all in one folder
    inputs: tuple                            # TensorSpec per model input
    outputs: tuple
    plans: Mapping[str, MemoryPlan]          # variant -> plan
    operators: tuple = field(default=())     # OperatorCall per operator, in order

    def buffer_bytes(self, core: str) -> int:
        """The static RAM buffer the build for `core` declares (scratch differs with the back-end)."""
        variant = core if core in VARIANTS else CORE_VARIANTS.get(core)
        if variant is None:
            raise KitError(f"unknown core {core!r} for the AOT buffer size",
                           f"use one of {', '.join(sorted(CORE_VARIANTS))} or a variant {', '.join(VARIANTS)}")
        return self.plans[variant].buffer_bytes

    def plan(self, core: str = "host") -> MemoryPlan:
        return self.plans[core if core in VARIANTS else CORE_VARIANTS[core]]

    def memory_plan(self, core: str = "host") -> str:
        """The printable plan: offset, size, the steps that use it, tensor."""
        return self.plan(core).table()

    def write(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (folder / name).write_text(text)

    def as_dict(self) -> dict:
        return {"inputs": [t.as_dict() for t in self.inputs], "outputs": [t.as_dict() for t in self.outputs],
                "buffer_bytes_by_backend": {v: p.buffer_bytes for v, p in self.plans.items()},
                "buffer_bytes_without_inplace": {v: p.baseline_bytes for v, p in self.plans.items()},
                "operators": [{"index": o.index, "kind": o.kind, "kernel": o.function} for o in self.operators]}


IO_TYPES = {"INT8": "int8", "INT16": "int16", "FLOAT32": "float32"}


def _spec(graph: AotGraph, index: int) -> TensorSpec:
    """An input or output: int8 (or int16) quantized, or float32 (QUANTIZE in, DEQUANTIZE out: int8_io false)."""
    t = graph.tensor(index)
    if t.type not in IO_TYPES:
        from .graph import WAY_OUT, NotCompilable
        raise NotCompilable(f"model input/output '{t.name}' is {t.type.lower()}; the AOT runtime takes int8, int16 "
                            "or float32 inputs and outputs", WAY_OUT, code="aot-unsupported")
    return TensorSpec(t.name, t.shape, IO_TYPES[t.type], t.scale if t.scales else 0.0, t.zero_point)


def generate(model: bytes, numerics: Numerics = DEFAULT_NUMERICS, plan: PlanOptions = DEFAULT_PLAN) -> AotProgram:
    """The model compiled to C. Raises NotCompilable (a KitError) naming an operator or type outside
    the AOT set, with the way out (the `tflm` runtime). `numerics`: which TFLM version's Prepare
    arithmetic to follow where versions differ (default: the kit's golden interpreter's). `plan`: the
    in-place execution the buffer plan may use (default: every proven one; NO_INPLACE: none)."""
    graph = read_graph(model)
    steps: list[Step] = [choose_kernel(scratch_sizes(step)) for step in lower(graph, numerics)]
    inputs = tuple(_spec(graph, t) for t in graph.inputs)
    outputs = tuple(_spec(graph, t) for t in graph.outputs)
    plans = {variant: plan_memory(graph, steps, variant, plan) for variant in VARIANTS}
    files = {"aot_model.h": emit.header(graph, plans), "aot_model.c": emit.source(graph, steps, plans),
             **emit.kernel_sources()}
    return AotProgram(MappingProxyType(files), inputs, outputs, MappingProxyType(plans),
                      tuple(OperatorCall(s.op, s.kind, s.function, s.writes, graph.tensor(s.writes).nbytes)
                            for s in steps))
