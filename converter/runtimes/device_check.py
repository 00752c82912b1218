"""The golden self-test on an emulated Cortex-M core during `convert`: device bytes and the device's arena in one run.

Before anything moves into --out, the converted model's cortex-m-qemu (or cortex-m7-qemu) project is
rendered into a scratch folder with a generous arena, built against TFLM_ROOT's library for that core
and run under QEMU. Its output bytes must equal TFLM-on-this-host's golden outputs, else the conversion
fails naming the first differing vector and output (a host-vs-device difference, caught before a user
flashes); and `interpreter.arena_used_bytes()` it prints is the arena the device used, which then goes
into model_settings.h (+ the recipe's margin).

The setting: the recipe's `device_check:` (auto | off | cortex-m4 | cortex-m7 | cortex-m0plus), overridden by
`convert --device-check`; `auto` runs it on cortex-m4 when TFLM_ROOT (with the core's library),
arm-none-eabi-gcc and qemu-system-arm are there, unless TFLM_KIT_DEVICE_CHECK=off (the test suite sets
that: one check costs a compile + link + run, docs/firmware.md has the measured cost).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..compare.golden_format import VECTORS_FILE, save_vectors
from ..errors import KitError
from ..tflm import target_arena
from ..tflm.arena import arena_with_margin
from ..tflm.target_arena import ArenaFigure
from .boards import load_board
from .facts import MODEL_SOURCES, ModelFacts

BOARDS = {"cortex-m4": "cortex-m-qemu", "cortex-m7": "cortex-m7-qemu", "cortex-m0plus": "cortex-m0plus-qemu"}   # emulated core -> board that runs it
SETTINGS = ("auto", "off", *BOARDS)
ENV = "TFLM_KIT_DEVICE_CHECK"


@dataclass(frozen=True)
class DeviceCheck:
    core: str
    board: str
    vectors: int
    arena: ArenaFigure
    seconds: float      # compile + link + run under QEMU
    arena_used: int     # interpreter.arena_used_bytes(); arena.bytes is the smallest arena that allocates and invokes

    def as_dict(self) -> dict:
        return {"core": self.core, "board": self.board, "vectors": self.vectors, "bit_identical": True,
                "arena_bytes": self.arena.bytes, "arena_used_bytes": self.arena_used, "seconds": self.seconds}


def missing_tools(core: str) -> list[str]:
    """What this machine lacks to build and run the self-test for `core` (empty: it can)."""
    missing = [tool for tool in ("make", "arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm")
               if not shutil.which(tool)]
    root = os.environ.get("TFLM_ROOT")
    library = Path(root or "") / "gen" / load_board(BOARDS[core])["tflm_target"] / "lib/libtensorflow-microlite.a"
    if not root or not library.is_file():
        missing.insert(0, f"TFLM_ROOT with {library.relative_to(root) if root else 'the ' + core + ' library'}")
    return missing


def switched_off() -> bool:
    """TFLM_KIT_DEVICE_CHECK=off: no QEMU run unless asked by name (convert's `auto`, firmware's arena measurement)."""
    return os.environ.get(ENV, "auto").lower() in ("off", "0", "no", "false")


def resolve_setting(setting: str) -> str | None:
    """The core to check on, or None. `auto`: cortex-m4 when the tools are there and TFLM_KIT_DEVICE_CHECK
    is not off; a named core: that core, and a KitError naming what is missing when it cannot run."""
    if setting not in SETTINGS:
        raise KitError(f"device_check: {setting!r} is not a setting", f"use one of: {', '.join(SETTINGS)}")
    if setting == "off":
        return None
    if setting == "auto":
        if switched_off():
            return None
        return target_arena.DEFAULT_CORE if not missing_tools(target_arena.DEFAULT_CORE) else None
    missing = missing_tools(setting)
    if missing:
        raise KitError(f"device_check: {setting} needs {', '.join(missing)}, which this machine lacks",
                       "install them (docs/firmware.md), or set device_check: auto / --device-check off")
    return setting


PROBE = "#define TFLM_KIT_ARENA_PROBE 1  // the device check's build: print the smallest arena that works"


def probe_settings(settings_text: str, probe: int) -> str:
    """model_settings.h for the device check: a generous arena, and the define that makes the firmware
    search the smallest one that allocates and invokes (firmware_templates/cortex-m-qemu/main.cc.j2)."""
    from ..emit.sources import with_arena

    return with_arena(settings_text, probe, probe, f"// Tensor arena: a generous probe for the device check\n{PROBE}")


def probe_arena(host_bytes: int) -> int:
    """The arena the check's firmware reserves: twice the host's figure + 64 KiB (the device uses less in
    every model measured; a model that needs more fails to allocate and says so)."""
    return arena_with_margin(2 * host_bytes + 65536, 0.0)


def model_facts(name: str, model_bytes: bytes, info, golden_count: int, arena: int) -> ModelFacts:
    """What rendering a board project needs, for a model not yet written to a folder (no manifest)."""
    from ..tflm.kernels import registered_variants

    per_vector = sum(t.nbytes for t in (*info.inputs, *info.outputs))
    return ModelFacts(name=name, model_bytes=len(model_bytes), arena_bytes=arena, arena_measured_bytes=arena,
                      input_count=len(info.inputs), output_count=len(info.outputs), golden_count=golden_count,
                      golden_bytes=golden_count * per_vector, operators=list(info.operators),
                      kernel_variants=registered_variants(model_bytes))


DEVICE_REFUSES = "device-refuses"   # TFLM's firmware library stops before the first vector (e.g. a Prepare refusal)


def _stop_reason(log: str, exit_status) -> str:
    """Why a self-test ran no vector: TFLM's `Node X (number n) failed to ...` line and the one before it."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for n, line in enumerate(lines):
        if " failed to " in line and line.startswith("Node "):
            return f"{line} ({lines[n - 1]})" if n else line
    errors = [line for line in lines if line.startswith("ERROR")]
    return errors[0] if errors else f"the self-test ran no vector (exit {exit_status})"


def run_device_check(core: str, model_bytes: bytes, sources: dict[str, str],
                     inputs: list[np.ndarray], outputs: list[np.ndarray], facts: ModelFacts) -> DeviceCheck:
    """Build and run the golden self-test for `core` under QEMU; KitError when its outputs differ from
    `outputs` (TFLM on this host) or it fails to run. `sources`: the C artifacts with the probe arena."""
    from .registry import get_runtime
    from .render import _render
    from .run import build_and_run
    from .selftest import compare_with_golden

    board = BOARDS[core]
    profile = load_board(board)
    with tempfile.TemporaryDirectory(prefix="tflm-kit-device-") as work:
        model_dir, project = Path(work) / "model", Path(work) / "fw"
        model_dir.mkdir()
        project.mkdir()
        for file_name, text in sources.items():
            (model_dir / file_name).write_text(text)
        (model_dir / "model.tflite").write_bytes(model_bytes)
        save_vectors(model_dir / VECTORS_FILE, inputs, outputs)
        tflm = get_runtime("tflm")
        _render(board, profile, tflm, facts, tflm.budget(profile, facts, model_dir), model_dir, project, project)
        started = time.perf_counter()
        result, record = build_and_run(project)
        seconds = time.perf_counter() - started
        problems = compare_with_golden(result, model_dir / VECTORS_FILE)
    if result.total == 0:  # the interpreter stopped before the vectors ran: TFLM's own log line names the node
        raise KitError(f"TFLM's {core} build cannot run the model under QEMU ({board}): "
                       f"{_stop_reason(result.log, record.get('exit_status'))}; TFLM on this host runs it",
                       "convert with runtime: aot (the generated C runs it, checked against the host's TFLM; "
                       "docs/aot.md), or with --device-check off to skip the check", code=DEVICE_REFUSES)
    if not problems and (not result.ok or result.arena_used is None):
        problems = [result.failures[0] if result.failures else f"the self-test did not pass (exit {record.get('exit_status')})"]
    if problems:
        raise KitError(f"the golden self-test on {core} under QEMU ({board}) differs from TFLM on this host: "
                       f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                       "report this with the model: the device computes other bytes than the validated ones; "
                       "or convert with --device-check off to skip the check")
    needed = max(result.arena_min or 0, result.arena_used)  # arena_used misses what kernels take while preparing
    return DeviceCheck(core, board, result.total, target_arena.measured(needed, core), round(seconds, 1),
                       result.arena_used)


def measure_model_dir(core: str, model_dir: Path, facts: ModelFacts) -> ArenaFigure:
    """The arena `core` uses for a converted model folder (`firmware --board B` for a core the conversion
    did not measure): the same golden self-test, on the folder's own sources and golden.npz."""
    from ..compare.golden_format import load_vectors

    host_bytes = int(((facts.arena or {}).get("host") or {}).get("bytes") or facts.arena_measured_bytes)
    probe = probe_arena(host_bytes)
    sources = {name: (model_dir / name).read_text() for name in MODEL_SOURCES}
    sources["model_settings.h"] = probe_settings(sources["model_settings.h"], probe)
    golden = load_vectors(model_dir / VECTORS_FILE)
    probe_facts = replace(facts, arena_bytes=probe, arena_measured_bytes=probe)
    return run_device_check(core, (model_dir / "model.tflite").read_bytes(), sources,
                            golden.inputs, golden.outputs, probe_facts).arena
