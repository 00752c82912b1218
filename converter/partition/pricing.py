"""Price every cut (and each device running the whole model) from the measurements.

A Cortex-M part is priced from the per-core QEMU measurements (measure.py); an Ethos-U part
from Vela's estimates for that part (vela.py), one Vela compilation per distinct part.
"""
from __future__ import annotations

from . import cost as costing
from .cost import PartCost, PartMemory
from .measure import FOOTPRINT_RUNTIME, CoreMeasurement, mcu_part_cost, measured_memory
from .profiles import Device
from .qemu import BOARDS
from .report import tensor_label
from .vela import VelaEstimate, compile_part
from ..runtimes.base import Figure, Runtime
from ..runtimes.boards import load_board
from ..tflite.model import read_model
from ..tflm.arena import ARENA_MARGIN, arena_with_margin

ARENA_SOURCE = "TFLM arena measured on the host + 10%"


def arena_size(measured: int) -> int:
    """kTensorArenaSize as the part's model_settings.h gets it (as convert sizes it)."""
    return arena_with_margin(measured, ARENA_MARGIN)


class VelaCache:
    """One Vela run per (part, accelerator): whole-model rows and cuts share parts."""

    def __init__(self):
        self.estimates: dict[tuple[bytes, str], VelaEstimate] = {}

    def get(self, model: bytes, accelerator: str) -> VelaEstimate:
        key = (model, accelerator)
        if key not in self.estimates:
            self.estimates[key] = compile_part(model, accelerator)
        return self.estimates[key]


def io_bytes(model: bytes, received: bool) -> int:
    """The part's input and output arrays, which a runtime whose buffer holds only intermediate tensors (AOT: the
    caller's arrays) leaves to the application; the inputs of a part fed by the link are its receive buffer,
    counted as such."""
    info = read_model(model)
    return sum(t.nbytes for t in info.outputs) + (0 if received else sum(t.nbytes for t in info.inputs))


def deployed_ram(runtime: Runtime, model: bytes, arena: int, core: str, received: bool = False) -> int:
    """The static RAM the runtime needs for `model` on `core` (TFLM: the arena given, inputs and outputs inside;
    AOT: its planned buffer and the part's input/output arrays)."""
    if runtime.name == FOOTPRINT_RUNTIME:
        return arena_size(arena)
    code_size = load_board(BOARDS[core])["code_size"]
    return runtime.price(model, Figure(arena_size(arena), ARENA_SOURCE), code_size).ram.bytes + io_bytes(model, received)


def runtime_memory(runtime: Runtime, measured: CoreMeasurement, model: bytes, operator_names, arena: int,
                   received: bool = False) -> PartMemory:
    """A part's flash and RAM with `runtime`: TFLM's from the measurement of its profiling firmware (footprint.py);
    any other from its own price on the core's code-size data (runtimes/: AOT's kernels and
    constant arrays, its planned buffer) plus the allowance the core's board profile makes for the rest of the
    firmware (startup, main, libc; the stack), as `tflm-kit firmware` budgets it, and the part's input/output
    arrays (io_bytes)."""
    if measured.footprint is not None and measured.runtime == runtime.name:
        return measured_memory(measured, len(model), operator_names, arena_size(arena))
    board = load_board(BOARDS[measured.core])
    deployed = runtime.price(model, Figure(arena_size(arena), ARENA_SOURCE), board["code_size"])
    arrays = io_bytes(model, received)
    return PartMemory(runtime.name, deployed.flash.bytes + board["platform_flash_bytes"],
                      deployed.ram.bytes + arrays + board["reserve_ram_bytes"],
                      f"{deployed.flash.source} + platform {board['platform_flash_bytes']:,} B ({board['name']} profile); "
                      f"RAM: {deployed.ram.source} + input/output arrays {arrays:,} B + reserve "
                      f"{board['reserve_ram_bytes']:,} B (stack, profile)")


def npu_part_cost(device: Device, estimate: VelaEstimate, operators: int, receive_bytes: int = 0) -> PartCost:
    """Flash: Vela's .tflite (weights + command stream); RAM: Vela's SRAM for feature maps. The host CPU's
    runtime and any CPU-fallback operators are not priced (listed in the record instead)."""
    return PartCost(device=device.name, operators=operators, model_bytes=len(estimate.model),
                    flash_bytes=len(estimate.model), ram_bytes=estimate.sram_bytes + receive_bytes,
                    instructions=None, cycles=estimate.cycles_total, ms=estimate.ms(device.mhz),
                    flash_budget=device.flash_bytes, ram_budget=device.ram_bytes, runtime="ethos-u (Vela)",
                    memory_source="Vela's .tflite (weights + command stream) and SRAM estimate")


def _part(device, measured, vela, model, operators, names, arena, runtime, receive_bytes=0) -> tuple[PartCost, list]:
    if device.is_npu:
        estimate = vela.get(model, device.accelerator)
        notes = [f"{device.name}: CPU-fallback operators not priced: {', '.join(estimate.cpu_operators)}"] \
            if estimate.cpu_operators else []
        return npu_part_cost(device, estimate, len(operators), receive_bytes), notes
    core = measured[device.core]
    memory = runtime_memory(runtime, core, model, [names[i] for i in operators], arena, receive_bytes > 0)
    return mcu_part_cost(device, core, operators, memory, len(model), receive_bytes), []


def price_cuts(view, splits, arenas, whole_arena, measured, devices, link, source, runtime: Runtime,
               vela: VelaCache | None = None) -> list:
    vela = vela or VelaCache()
    names = {op.index: op.name for op in view.ops}
    rows = []
    for number, (s, (head_arena, tail_arena)) in enumerate(zip(splits, arenas)):
        payload, link_ms = costing.link_cost(link, s.link_bytes)
        head, head_notes = _part(devices[0], measured, vela, s.head, s.cut.head, names, head_arena, runtime)
        tail, tail_notes = _part(devices[1], measured, vela, s.tail, s.cut.tail, names, tail_arena, runtime, payload)
        rows.append(costing.CutCost(f"cut {number}", s.cut.tensors, tuple(tensor_label(view, t) for t in s.cut.tensors),
                                    s.cut.head[-1], payload, link_ms, (head, tail), costing.energy([head, tail], devices),
                                    head_notes + tail_notes))
    # The input is produced on the first device (the sensor): running whole on the second one
    # means sending the model's input over the link.
    every = tuple(op.index for op in view.ops)
    input_bytes = sum(x[0].nbytes for x in source.inputs)
    for device, sent in zip(devices, (0, input_bytes)):
        part, notes = _part(device, measured, vela, source.model, every, names, whole_arena, runtime, sent)
        payload, link_ms = costing.link_cost(link, sent) if sent else (0, 0.0)
        rows.append(costing.CutCost(f"whole on {device.name}", (), (), None, payload, link_ms, (part,),
                                    costing.energy([part], [device]), notes))
    return rows
