"""Device and link profiles: what the cost model knows about each side and the wire between.

A device is `NAME:CORE@MHz` on the command line; its flash and RAM budgets come from a known
profile of that NAME (below, or a board of firmware_templates/boards/), from a suffix
`/FLASH/RAM` (e.g. `a:cortex-m4@64MHz/1M/256K`), or from a --profiles YAML file. A link is
`uart:BAUD` or `spi:HZ`, or a named profile in that file with bytes_per_s and overhead_bytes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import KitError
from ..runtimes.boards import board_budget

MCU_CORES = ("cortex-m4", "cortex-m7")
NPU_CORES = ("ethos-u55", "ethos-u65")
DEVICE_FIELDS = ("core", "mhz", "flash_bytes", "ram_bytes")
LINK_FIELDS = ("bytes_per_s", "overhead_bytes")
FRAME_OVERHEAD_BYTES = 12  # 'TK', vector index, length, CRC-32 (firmware_templates/cortex-m-qemu-pair/link.h.j2)

# Budgets of boards the examples name. Flash/RAM from the vendors' datasheets; active_mw is the
# datasheet's run-mode current at that clock times 3 V, an order of magnitude for --objective energy.
KNOWN_DEVICES = {
    "nano33": {"core": "cortex-m4", "flash_bytes": 983040, "ram_bytes": 262144, "active_mw": 20.0},  # nRF52840
    "h7": {"core": "cortex-m7", "flash_bytes": 2097152, "ram_bytes": 1048576, "active_mw": 300.0},   # STM32H743
    "f7": {"core": "cortex-m7", "flash_bytes": 1048576, "ram_bytes": 327680, "active_mw": 200.0},    # STM32F746
}


@dataclass(frozen=True)
class Device:
    name: str
    core: str            # cortex-m4 | cortex-m7 | ethos-u55 | ethos-u65
    mhz: float
    flash_bytes: int
    ram_bytes: int
    active_mw: float | None = None
    macs: int | None = None   # Ethos-U MACs per cycle (ethos-u55-128: 128)

    @property
    def is_npu(self) -> bool:
        return self.core in NPU_CORES

    @property
    def accelerator(self) -> str | None:
        return f"{self.core}-{self.macs}" if self.is_npu else None


@dataclass(frozen=True)
class Link:
    kind: str
    bytes_per_s: float
    overhead_bytes: int

    def seconds(self, payload: int) -> float:
        return (payload + self.overhead_bytes) / self.bytes_per_s


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


def _size(text: str, what: str) -> int:
    m = _SIZE.match(text.strip())
    if not m:
        raise KitError(f"{what} '{text}' is not a size", "write bytes, or K/M (e.g. 256K, 1M)")
    return int(float(m.group(1)) * {"": 1, "k": 1024, "m": 1 << 20}[m.group(2).lower()])


def _core(text: str) -> tuple[str, int | None]:
    core = text.lower().removesuffix("f") if text.lower() in ("cortex-m4f",) else text.lower()
    for npu in NPU_CORES:
        if core.startswith(npu):
            macs = core[len(npu):].lstrip("-") or "128"
            if not macs.isdigit():
                break
            return npu, int(macs)
    if core in MCU_CORES:
        return core, None
    raise KitError(f"unknown core '{text}'", f"use one of {', '.join(MCU_CORES)}, ethos-u55-<MACs>, ethos-u65-<MACs>")


def parse_device(spec: str, profiles: dict) -> Device:
    m = re.match(r"^([A-Za-z0-9_.-]+):([A-Za-z0-9-]+)@(\d+(?:\.\d+)?)MHz(?:/([^/]+)/([^/]+))?$", spec.strip())
    if not m:
        raise KitError(f"device '{spec}' is not NAME:CORE@MHz", "write e.g. nano33:cortex-m4@64MHz "
                       "(add /FLASH/RAM such as /1M/256K for a board the kit does not know)")
    name, core_text, mhz = m.group(1), m.group(2), float(m.group(3))
    core, macs = _core(core_text)
    fields = dict(KNOWN_DEVICES.get(name) or board_budget(name) or {})
    fields.update(profiles.get(name) or {})
    if m.group(4):
        fields["flash_bytes"], fields["ram_bytes"] = _size(m.group(4), "flash"), _size(m.group(5), "RAM")
    fields.update(core=core, mhz=mhz)
    missing = [f for f in DEVICE_FIELDS if fields.get(f) in (None, "")]
    if missing:
        raise KitError(f"device profile '{name}' has no {', '.join(missing)}",
                       f"give them: {name}:{core_text}@{m.group(3)}MHz/FLASH/RAM (e.g. /1M/256K) or in --profiles")
    return Device(name, core, mhz, int(fields["flash_bytes"]), int(fields["ram_bytes"]),
                  fields.get("active_mw"), macs)


def parse_link(spec: str, profiles: dict) -> Link:
    kind, _, rate = spec.strip().partition(":")
    if kind in profiles:
        fields = profiles[kind]
        missing = [f for f in LINK_FIELDS if fields.get(f) in (None, "")]
        if missing:
            raise KitError(f"link profile '{kind}' has no {', '.join(missing)}",
                           "give bytes_per_s and overhead_bytes (bytes added to every message)")
        return Link(kind, float(fields["bytes_per_s"]), int(fields["overhead_bytes"]))
    if kind not in ("uart", "spi") or not rate.isdigit() or int(rate) <= 0:
        raise KitError(f"link '{spec}' is not uart:BAUD or spi:HZ", "write e.g. uart:921600, or name a link "
                       "profile of --profiles (with bytes_per_s, overhead_bytes)")
    # UART 8N1: 10 bits on the wire per byte. SPI: 8 clocks per byte.
    return Link(kind, int(rate) / (10 if kind == "uart" else 8), FRAME_OVERHEAD_BYTES)


def load_profiles(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KitError(f"cannot read profiles {path} ({type(exc).__name__})", "give a YAML file: name -> fields") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise KitError(f"profiles {path} is not a mapping of name -> fields",
                       "write e.g. 'mcu1: {flash_bytes: 1048576, ram_bytes: 262144}'")
    return data


def parse_devices(text: str, profiles: dict) -> tuple[Device, Device]:
    specs = [s for s in text.split(",") if s.strip()]
    if len(specs) != 2:
        raise KitError(f"--devices names {len(specs)} device(s); a partition has two",
                       "give two, comma-separated: HEAD,TAIL (part 0 runs on the first)")
    return parse_device(specs[0], profiles), parse_device(specs[1], profiles)
