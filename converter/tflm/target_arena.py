"""The tensor arena of the device, not of the PC: which core a board's arena is taken from, and where a figure comes from.

TFLM's Python runtime on this host measures a 64-bit build with reference kernels: its structs are
larger (64-bit pointers) and its kernels ask for other scratch than the target's (the reference
kernels unpack int4 filters into the arena; CMSIS-NN does not). On the demo model: 27,856 B on
x86-64, 15,332 B on the Cortex-M4. So every figure the kit reserves or prints for a device is
an ArenaFigure that says where it comes from:

- "measured": `interpreter.arena_used_bytes()` printed by the golden self-test built for the core and
  run under QEMU (runtimes/device_check.py): cortex-m4 (mps2-an386), cortex-m7 (mps2-an500), cortex-m0plus
  (TFLM's Armv6-M build on mps2-an385);
- "derived": what TFLM's allocator needs on the core, derived from the model without a toolchain or emulator
  (tflm/derived_arena.py: AllocateTensors replayed with 32-bit structs, CMSIS-NN's scratch, the greedy plan);
  what `convert` writes when the device check cannot run (or is off), and what `firmware --board B` writes
  for a core it can neither take from the conversion nor measure;
- "host": TFLM's Python runtime on this machine (tflm/arena.py), only as a labelled extra, or when
  nothing else is there (a model the derivation does not model), labelled as not the device's.

A board whose core the kit cannot emulate (an Xtensa ESP32-S3, a Cortex-M4F with a different TFLM
port) takes the figure of the closest emulated core, labelled so (`arena_core`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

# board profile `core` -> the emulated core whose measurement is used (same CMSIS-NN build and 32-bit layout)
EMULATED_CORES = {"cortex-m4": "cortex-m4", "cortex-m4f": "cortex-m4", "cortex-m7": "cortex-m7",
                  "cortex-m0plus": "cortex-m0plus"}
DEFAULT_CORE = "cortex-m4"
QEMU_MACHINES = {"cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500",
                 "cortex-m0plus": "mps2-an385, Armv6-M code on its Cortex-M3"}


@dataclass(frozen=True)
class ArenaFigure:
    """Bytes of tensor arena TFLM used (before any margin), on `core`, and how that is known."""
    bytes: int
    core: str        # "cortex-m4", "cortex-m7", or the host's machine ("x86_64")
    kind: str        # "measured" (on the core under QEMU) | "derived" (from the model) | "host" (TFLM's Python runtime here)
    source: str      # for people: "measured on cortex-m4 under QEMU (mps2-an386)"

    @property
    def on_device(self) -> bool:
        return self.kind != "host"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ArenaFigure":
        return cls(int(data["bytes"]), str(data["core"]), str(data["kind"]), str(data["source"]))


def measured(bytes_used: int, core: str) -> ArenaFigure:
    return ArenaFigure(bytes_used, core, "measured",
                       f"measured on {core} under QEMU ({QEMU_MACHINES.get(core, 'emulated')})")


CORE_NAMES = {"cortex-m4": "Cortex-M4", "cortex-m4f": "Cortex-M4F", "cortex-m7": "Cortex-M7",
              "cortex-m0plus": "Cortex-M0+", "cortex-m33": "Cortex-M33", "cortex-m55": "Cortex-M55"}


def derived(bytes_needed: int, core: str) -> ArenaFigure:
    return ArenaFigure(bytes_needed, core, "derived",
                       f"derived for {CORE_NAMES.get(core, core)} (32-bit) from the model's plan, not measured")


def host(bytes_used: int, machine: str) -> ArenaFigure:
    return ArenaFigure(bytes_used, machine, "host",
                       f"host {machine}: TFLM's Python runtime, 64-bit, reference kernels; not a device figure")


def arena_core(board_core: str) -> tuple[str, str]:
    """(the emulated core whose arena a board with `board_core` reserves, a note when it is only the closest)."""
    if board_core in EMULATED_CORES:
        return EMULATED_CORES[board_core], ""
    return DEFAULT_CORE, (f"{board_core} cannot be emulated here: the arena is {DEFAULT_CORE}'s (same 32-bit "
                          "layout; its port's optimized kernels may ask for other scratch), check "
                          "arena_used_bytes() on the board")

