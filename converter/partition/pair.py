"""Run the two parts' firmware on two QEMU instances whose UART0s are joined by a relay.

Each QEMU connects its UART0 to a Unix socket the relay listens on; the relay copies part 0's
bytes to part 1, counts them, and can flip one payload byte of one frame to show that part 1
detects a corrupted frame (CRC-32) instead of computing on it.
"""
from __future__ import annotations

import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KitError, foreign_text
from ..runtimes.selftest import compare_with_golden, parse_selftest
from .qemu import INSTRUCTIONS_PER_TICK, TIMEOUT_S, qemu_command
from .profiles import FRAME_OVERHEAD_BYTES

HEADER_BYTES = 8


@dataclass
class PairResult:
    passed: int
    total: int
    ok: bool
    errors: list = field(default_factory=list)         # part 1's ERROR/FAIL lines, part 0's FAIL lines
    golden_differences: list = field(default_factory=list)
    link_bytes: int = 0
    instructions: tuple = (None, None)                  # median per inference, part 0 and part 1
    logs: tuple = ("", "")
    images: tuple = (None, None)                        # system.elf_size.ImageSize of each part's firmware


class _Relay(threading.Thread):
    def __init__(self, folder: Path, frame_bytes: int, corrupt_frame: int | None):
        super().__init__(daemon=True)
        self.paths = folder / "part0.sock", folder / "part1.sock"
        self.servers = []
        for path in self.paths:
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(path))
            server.listen(1)
            server.settimeout(TIMEOUT_S)
            self.servers.append(server)
        self.frame_bytes, self.corrupt_frame = frame_bytes, corrupt_frame
        self.forwarded, self.failure = 0, None
        self.connections: list = []  # kept open until part 1 ends: QEMU drops unread input on hang-up

    def run(self) -> None:
        try:
            sender, _ = self.servers[0].accept()
            receiver, _ = self.servers[1].accept()
            self.connections = [sender, receiver]
            sender.settimeout(TIMEOUT_S)
            flip = None if self.corrupt_frame is None else \
                self.corrupt_frame * self.frame_bytes + HEADER_BYTES + (self.frame_bytes - FRAME_OVERHEAD_BYTES) // 2
            while chunk := sender.recv(65536):
                data = bytearray(chunk)
                if flip is not None and self.forwarded <= flip < self.forwarded + len(data):
                    data[flip - self.forwarded] ^= 0x01  # one bit, as line noise would
                receiver.sendall(bytes(data))
                self.forwarded += len(data)
        except OSError as exc:
            self.failure = exc


def _median_instructions(ticks: dict) -> int | None:
    if not ticks:
        return None
    values = sorted(ticks.values())
    return values[len(values) // 2] * INSTRUCTIONS_PER_TICK


def run_pair(elves: tuple[Path, Path], cores: tuple[str, str], payload_bytes: int, golden_npz: Path,
             corrupt_frame: int | None = None) -> PairResult:
    with tempfile.TemporaryDirectory(prefix="tflm-kit-pair-") as folder:
        relay = _Relay(Path(folder), payload_bytes + FRAME_OVERHEAD_BYTES, corrupt_frame)
        relay.start()
        processes = [subprocess.Popen(qemu_command(elf, core, f"socket,id=link,path={path}"),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                     for elf, core, path in zip(elves, cores, relay.paths)]
        try:
            logs = [p.communicate(timeout=TIMEOUT_S)[0] for p in processes]
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            raise KitError(f"the QEMU pair did not finish within {TIMEOUT_S} s", "check both firmware images") from None
        relay.join(timeout=10)
        for connection in relay.servers + relay.connections:
            connection.close()
    head, tail = parse_selftest(logs[0]), parse_selftest(logs[1])
    differences = compare_with_golden(tail, golden_npz)
    errors = [f"part 0: {line}" for line in head.failures] + \
             [f"part 1: {line}" for line in tail.failures] + \
             ([f"relay: {relay.failure}"] if relay.failure else [])
    if not tail.total:
        errors.append("part 1 printed no summary: " + foreign_text(logs[1], tail=True))
    return PairResult(tail.passed, tail.total, tail.ok and head.ok and not differences and not errors,
                      errors, differences, relay.forwarded,
                      (_median_instructions(head.ticks), _median_instructions(tail.ticks)), tuple(logs))
