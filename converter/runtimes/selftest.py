"""What the firmware's self-test prints, parsed into a typed result.

main.cc prints `OUT <vector> <output> <offset> <hex>` chunks, `PASS n/n` or `FAIL ...` lines,
`ARENA used <n> of <size> bytes`, and on the emulated Cortex-M also `TICKS <vector> <ticks>` and
`PROFILE <event> <operator> <ticks>` lines for one profiled inference (SysTick under QEMU's
-icount: one tick is INSTRUCTIONS_PER_QEMU_TICK instructions).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# cortex-m-qemu runs with -icount shift=0 (1 instruction per virtual ns) and MPS2's SysTick
# counts at 25 MHz: one tick is 40 instructions.
INSTRUCTIONS_PER_QEMU_TICK = 40

_OUT = re.compile(r"^OUT (\d+) (\d+) (\d+) ([0-9a-f]*)$")
_SUMMARY = re.compile(r"^(PASS|FAIL) (\d+)/(\d+)")
_ARENA = re.compile(r"^ARENA used (\d+) of (\d+) bytes$")
_TICKS = re.compile(r"^TICKS (\d+) (\d+)$")
_PROFILE_EVENT = re.compile(r"^PROFILE (\d+) (\S+) (\d+)$")
_PROFILE_TOTAL = re.compile(r"^PROFILE total (\d+)$")


@dataclass(frozen=True)
class OperatorCost:
    index: int          # position in the inference (the interpreter's invoke order)
    operator: str       # TFLM's name for it (e.g. CONV_2D, or a decompression step's function)
    instructions: int


@dataclass
class SelfTest:
    passed: int = 0
    total: int = 0
    ok: bool = False
    arena_used: int | None = None
    arena_size: int | None = None
    outputs: dict[tuple[int, int], bytes] = field(default_factory=dict)  # (vector, output) -> bytes
    ticks: dict[int, int] = field(default_factory=dict)  # vector -> SysTick ticks of its Invoke()
    profile: list[OperatorCost] = field(default_factory=list)
    profiled_instructions: int | None = None   # the whole profiled Invoke()
    failures: list[str] = field(default_factory=list)
    log: str = ""

    @property
    def instructions_per_inference(self) -> int | None:
        """Median over the golden vectors; None when the firmware does not count (host)."""
        if not self.ticks:
            return None
        return int(np.median(list(self.ticks.values()))) * INSTRUCTIONS_PER_QEMU_TICK


def parse_selftest(text: str) -> SelfTest:
    """Parse what the firmware's main.cc prints; tolerant of \\r\\n and interleaved logs."""
    result = SelfTest(log=text)
    chunks: dict[tuple[int, int], dict[int, bytes]] = {}
    for line in (raw.strip() for raw in text.splitlines()):
        if m := _OUT.match(line):
            v, j, offset = (int(g) for g in m.groups()[:3])
            chunks.setdefault((v, j), {})[offset] = bytes.fromhex(m.group(4))
        elif line.startswith("FAIL vector") or line.startswith("ERROR"):
            result.failures.append(line)
        elif m := _SUMMARY.match(line):
            result.ok = m.group(1) == "PASS"
            result.passed, result.total = int(m.group(2)), int(m.group(3))
        elif m := _ARENA.match(line):
            result.arena_used, result.arena_size = int(m.group(1)), int(m.group(2))
        elif m := _TICKS.match(line):
            result.ticks[int(m.group(1))] = int(m.group(2))
        elif m := _PROFILE_TOTAL.match(line):
            result.profiled_instructions = int(m.group(1)) * INSTRUCTIONS_PER_QEMU_TICK
        elif m := _PROFILE_EVENT.match(line):
            result.profile.append(OperatorCost(int(m.group(1)), m.group(2),
                                               int(m.group(3)) * INSTRUCTIONS_PER_QEMU_TICK))
    for key, parts in chunks.items():
        result.outputs[key] = b"".join(parts[o] for o in sorted(parts))
    return result


def compare_with_golden(result: SelfTest, golden_npz: Path) -> list[str]:
    """Differences between printed outputs and golden.npz's output_<j>; empty when bit-identical."""
    problems = []
    with np.load(golden_npz) as golden:
        outputs = sorted((k for k in golden.files if k.startswith("output_")),
                         key=lambda k: int(k.split("_")[1]))
        for key in outputs:
            j, expected = int(key.split("_")[1]), golden[key]
            for v in range(expected.shape[0]):
                want = np.ascontiguousarray(expected[v]).tobytes()
                got = result.outputs.get((v, j))
                if got is None:
                    problems.append(f"vector {v} output {j}: not printed by the firmware")
                elif got != want:
                    k = next(i for i in range(min(len(got), len(want)) + 1)
                             if i == min(len(got), len(want)) or got[i] != want[i])
                    problems.append(f"vector {v} output {j}: first differing byte {k}")
    return problems
