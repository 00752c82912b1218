"""The pico project on an emulated RP2040: build it with the real pico-sdk, run its .uf2 on rp2040js.

`tflm-kit flash` on a pico project comes here when everything the emulator needs is on this machine
(`find_tools`): node, the npm package rp2040js (never committed: `npm install --prefix <cache>
rp2040js`, see RP2040JS_INSTALL), the RP2040 boot ROM, pico-sdk and an installed picotool. The
firmware's UART0 carries the same self-test as on QEMU (OUT/PASS/ARENA lines, plus `CYCLES <vector>
<n>` from SysTick on the processor clock); rp2040_run.mjs, the kit's own runner, stops after the
summary. Cycles are rp2040js's emulated Cortex-M0+ cycles: an emulator estimate, not a board's timing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import KitError, foreign_text
from .boards import RECORD_NAME
from .device import ImageSize, device_record
from .run import RunSummary, build_error, build_settings
from .selftest import SelfTest, compare_with_golden, parse_selftest

RP2040JS_VERSION = "1.4.1"     # the version measured here (npm, MIT)
RUNNER = Path(__file__).resolve().parent / "rp2040_run.mjs"
MAX_CYCLES = 4_000_000_000     # about 30 emulated seconds at 125 MHz; a hung firmware stops here
RUN_TIMEOUT_S = 900
_CYCLES = re.compile(r"^CYCLES (\d+) (\d+)$")
_EMULATOR = re.compile(r"^RP2040JS cycles (\d+) stop (\S+)$", re.M)


def npm_cache() -> Path:
    """Where the kit keeps rp2040js: $TFLM_KIT_NPM_CACHE, else ~/.cache/tflm-kit/npm."""
    if os.environ.get("TFLM_KIT_NPM_CACHE"):
        return Path(os.environ["TFLM_KIT_NPM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tflm-kit" / "npm"


def install_command() -> list[str]:
    """The one command that makes rp2040js available to the kit (an argument list)."""
    return ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(npm_cache()),
            f"rp2040js@{RP2040JS_VERSION}"]


@dataclass(frozen=True)
class PicoTools:
    node: str
    rp2040js: Path          # the package folder (dist/esm/index.js inside)
    bootrom: Path           # RP2040 B1 boot ROM, 16,384 bytes
    pico_sdk: Path
    picotool_dir: Path | None  # picotool's lib/cmake/picotool; None: the SDK finds an installed one


def _bootrom(pico_sdk: Path) -> Path | None:
    """$RP2040_BOOTROM, else rp2040-bootrom-b1.bin beside the SDK (as in ../shared/sdk/pico)."""
    candidates = [Path(os.environ["RP2040_BOOTROM"])] if os.environ.get("RP2040_BOOTROM") else []
    candidates.append(pico_sdk.parent / "rp2040-bootrom-b1.bin")
    return next((path for path in candidates if path.is_file()), None)


def find_tools() -> tuple[PicoTools | None, str]:
    """Everything the emulated run needs, or None and what is missing (with how to get it)."""
    node = shutil.which("node")
    package = Path(os.environ.get("TFLM_KIT_RP2040JS", npm_cache() / "node_modules" / "rp2040js"))
    sdk = Path(os.environ.get("PICO_SDK_PATH", "/nonexistent"))
    missing = []
    if node is None:
        missing.append("node (apt-get install nodejs)")
    if not (package / "dist/esm/index.js").is_file():
        missing.append(f"rp2040js ({' '.join(install_command())})")
    if not (sdk / "pico_sdk_init.cmake").is_file():
        missing.append("pico-sdk (export PICO_SDK_PATH; git clone -b 2.2.0 --recurse-submodules "
                       "https://github.com/raspberrypi/pico-sdk)")
    bootrom = _bootrom(sdk) if sdk.is_dir() else None
    if bootrom is None:
        missing.append("the RP2040 boot ROM (export RP2040_BOOTROM=<16 KB rp2040-bootrom-b1.bin>)")
    if missing or node is None or bootrom is None:
        return None, "; ".join(missing)
    picotool = os.environ.get("picotool_DIR")
    return PicoTools(node, package, bootrom, sdk, Path(picotool) if picotool else None), ""


def _cmake_error(output: str) -> str | None:
    """The message of a `CMake Error at ...:` block (the template's FATAL_ERROR texts)."""
    lines = output.splitlines()
    for k, line in enumerate(lines):
        if line.startswith("CMake Error"):
            body: list[str] = []
            for text in lines[k + 1:]:
                if body and not text.strip():
                    break
                body.append(text.strip())
            return " ".join(part for part in body if part)
    return None


def build(project: Path, tools: PicoTools, settings: list[str]) -> Path:
    """Configure and build the project with the real pico-sdk (`settings`: NAME=value, e.g. TFLM_ROOT or
    CMSIS_NN_ROOT, as the project's runtime needs them); returns the .uf2."""
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = ["cmake", *generator, "-S", str(project), "-B", str(project / "build"), "-DPICO_BOARD=pico",
                 f"-DPICO_SDK_PATH={tools.pico_sdk}"]
    if tools.picotool_dir:
        configure.append(f"-Dpicotool_DIR={tools.picotool_dir}")
    configure += [f"-D{setting}" for setting in settings]
    for cmd in (configure, ["cmake", "--build", str(project / "build"), "-j2"]):
        done = subprocess.run(cmd, cwd=project, text=True, capture_output=True)
        if done.returncode != 0:
            output = done.stderr + "\n" + done.stdout
            if (message := _cmake_error(output)) is not None:
                raise KitError(f"configuring {project} failed: {foreign_text(message)}",
                               f"see the output of `{' '.join(configure)}`")
            raise build_error(project, output)
    uf2 = sorted((project / "build").glob("*_fw.uf2"))
    if not uf2:
        raise KitError(f"the build of {project} made no .uf2", "check picotool is installed (see README.md)")
    return uf2[0]


FLASH_BASE, RAM_BASE, RAM_END = 0x10000000, 0x20000000, 0x20042000
# Reservations the SDK's linker script places in RAM for the heap and the stacks (not static data).
RESERVATIONS = (".heap", ".stack_dummy", ".scratch_x", ".scratch_y")


def pico_image_size(elf: Path) -> ImageSize | None:
    """text/data/bss of a pico-sdk image by address, from `arm-none-eabi-size -A`.

    The SDK's .data holds code too, so the Berkeley format counts it as text and reports data 0;
    here text is what lives in flash (XIP), data what is copied from flash to RAM at boot, bss the
    other static RAM (the tensor arena among it), the heap and stack reservations left out."""
    try:
        done = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    text = data = bss = 0
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[0].startswith(".") or not parts[1].isdigit():
            continue
        name, size, address = parts[0], int(parts[1]), int(parts[2])
        if FLASH_BASE <= address < FLASH_BASE + 0x1000000:
            text += size
        elif RAM_BASE <= address < RAM_END and name not in RESERVATIONS:
            data, bss = (data + size, bss) if name in (".data", ".tdata") else (data, bss + size)
    return ImageSize(text, data, bss)


@dataclass(frozen=True)
class EmulatedRun:
    selftest: SelfTest
    cycles_per_inference: int | None   # median of the firmware's CYCLES lines (SysTick, processor clock)
    total_cycles: int | None           # rp2040js's count for the whole run, boot included
    stop: str                          # why the runner stopped: selftest, error, cycle-limit, ...
    exit_status: int


def run_uf2(uf2: Path, tools: PicoTools, max_cycles: int = MAX_CYCLES) -> EmulatedRun:
    """Run a .uf2 on rp2040js until its self-test summary; parse what UART0 printed."""
    cmd = [tools.node, str(RUNNER), str(tools.rp2040js), str(tools.bootrom), str(uf2), str(max_cycles)]
    try:
        done = subprocess.run(cmd, text=True, capture_output=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise KitError(f"{uf2.name} did not finish on rp2040js within {RUN_TIMEOUT_S} s",
                       "check the firmware reaches its self-test summary") from None
    result = parse_selftest(done.stdout)
    cycles = [int(m.group(2)) for line in done.stdout.splitlines() if (m := _CYCLES.match(line.strip()))]
    emulator = _EMULATOR.search(done.stderr)
    if done.returncode == 2 or emulator is None:
        raise KitError(f"rp2040js could not run {uf2.name}: {foreign_text(done.stderr.strip() or '(no output)')}",
                       f"check node and rp2040js ({' '.join(install_command())})")
    return EmulatedRun(result, int(np.median(cycles)) if cycles else None, int(emulator.group(1)),
                       emulator.group(2), done.returncode)


def run_here(project: Path, tools: PicoTools, tflm_root: str | None = None) -> dict:
    """flash's summary for a pico project built here and run on rp2040js; writes device.json and the record."""
    project = Path(project).resolve()
    record = json.loads((project / RECORD_NAME).read_text())
    uf2 = build(project, tools, build_settings(record, tflm_root))
    run = run_uf2(uf2, tools)
    golden = project / record["model_subdir"] / "golden.npz"
    diffs = compare_with_golden(run.selftest, golden) if golden.is_file() else ["golden.npz missing"]
    passed = run.selftest.ok and not diffs and run.exit_status == 0
    size = pico_image_size(uf2.with_suffix(".elf"))
    device = device_record({**record, "core": "cortex-m0plus"}, run.selftest, passed, size)
    device.cycles_per_inference = run.cycles_per_inference
    device.how = device.how.replace("arm-none-eabi-size fw.elf", f"arm-none-eabi-size -A build/{uf2.stem}.elf"
                                    " by address (heap and stack reservations left out)")
    device.how += (f"; cycles: SysTick on the processor clock under rp2040js {RP2040JS_VERSION}, median over the"
                   f" golden vectors (emulated Cortex-M0+ cycles: an emulator estimate, not a board's timing;"
                   f" {run.total_cycles:,} cycles for the whole run, boot included)")
    device.write(project)
    (project / RECORD_NAME).write_text(json.dumps({**record, "device": asdict(device)}, indent=2) + "\n")
    summary = RunSummary(record["board"], passed, run.selftest.passed, run.selftest.total, run.selftest.arena_used,
                         None, run.exit_status, device, run.selftest.failures, diffs)
    return {**summary.as_dict(), "emulator": "rp2040js", "stop": run.stop, "total_cycles": run.total_cycles}
