"""Bytes as C array initializers, and the reverse (to prove the emitted array is the model)."""
from __future__ import annotations

import re

import numpy as np

BYTES_PER_LINE = 16
_HEX = [f"0x{b:02x}" for b in range(256)]


def c_bytes(data: bytes, indent: str = "    ") -> str:
    lines = []
    for start in range(0, len(data), BYTES_PER_LINE):
        lines.append(indent + ", ".join(_HEX[b] for b in data[start:start + BYTES_PER_LINE]) + ",")
    return "\n".join(lines)


def parse_c_array(source: str, symbol: str) -> bytes:
    """The bytes of `symbol`'s initializer in generated C source."""
    match = re.search(re.escape(symbol) + r"\s*\[\s*\]\s*=\s*\{(.*?)\};", source, re.S)
    if match is None:
        raise ValueError(f"no array named {symbol} in the source")
    values = re.findall(r"0x([0-9a-fA-F]{2})", match.group(1))
    return bytes(int(v, 16) for v in values)


def raw_bytes(array: np.ndarray) -> bytes:
    """Little-endian bytes in C order: the layout of the tensor in a little-endian MCU's memory."""
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
