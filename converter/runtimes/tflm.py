"""The `tflm` runtime: TFLM's MicroInterpreter with the model's flatbuffer, op resolver and arena.

Flash is counted as measured TFLM code (converter/tflm/footprint.py: core + the kernels of the
model's operators) + the model + the golden vectors + the board's platform code (its OS/SDK: an
estimate the profile states); RAM as the tensor arena + the board's RAM reserve. The board's TFLM
port (converter/tflm/ports.py) must have every operator of the model.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from typing_extensions import override

from ..errors import KitError
from ..tflite.model import read_model
from ..tflm.footprint import Footprint, deployed_flash, model_flash
from ..tflm.ports import load_port
from .boards import RECORD_NAME
from .base import Deployed, Figure, ModelSources, ProjectNeeds, Runtime, check_fits
from .facts import MODEL_SOURCES, ModelFacts, read_model_dir

DECODE = "TFLM_DECODE"
# The TFLM commit the templates were built and tested against (see converter/tflm/ops.py).
TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"
# Defines libtensorflow-microlite.a is compiled with on the host; TF_LITE_STATIC_MEMORY
# changes TfLiteTensor's layout, so application code must use the same set.
HOST_DEFINES = ("-DTF_LITE_STATIC_MEMORY -DTF_LITE_DISABLE_X86_NEON "
                "-DKERNELS_OPTIMIZED_FOR_SPEED -DTF_LITE_USE_CTIME")
# Copied beside the sources for `tflm-kit flash` to compare against; no firmware uses it.
MODEL_EXTRAS = ("golden.npz",)


def _port_variants(board: dict, facts: ModelFacts) -> dict[str, str]:
    """The specialised kernels the board's TFLM copy declares (the others are priced as generic)."""
    declared = load_port(board["port"]).registrations
    return {op: v for op, v in facts.kernel_variants.items()
            if declared is None or f"Register_{op}_{v}" in declared}


def check_port(board: dict, facts: ModelFacts, other_boards: dict[str, dict]) -> None:
    """KitError naming the missing operators and the alternatives when the board's TFLM port lacks some."""
    port = load_port(board["port"])
    missing = port.missing(facts.operators)
    if not missing:
        return
    able = sorted(name for name, profile in other_boards.items()
                  if not load_port(profile["port"]).missing(facts.operators))
    fixes = (["an uncompressed model (convert without `compress: {lut: true}`)"] if DECODE in missing else
             ["a model without those operators"])
    fixes.append(f"another board: {', '.join(able)}" if able else "no bundled board has them all")
    raise KitError(f"'{facts.name}' uses {', '.join(missing)}, which {board['name']}'s TFLM ({port.name}, "
                   f"{port.source}) does not have", "use " + " or ".join(fixes))


@dataclass(frozen=True)
class TflmBudget:
    flash_needed_bytes: int | None
    ram_needed_bytes: int
    flash_bytes: int | None
    ram_bytes: int | None
    footprint: Footprint | None       # None on the host (no flash budget)
    platform_flash_bytes: int = 0
    lut_image_delta_bytes: int | None = None  # LUT models: image size minus the uncompressed model's image

    def as_dict(self) -> dict:
        return asdict(self)


def check_budget(board: dict, facts: ModelFacts) -> TflmBudget:
    """Flash and RAM the firmware needs on this board; KitError when either does not fit."""
    variants = _port_variants(board, facts)
    footprint = deployed_flash(facts.model_bytes, facts.operators, board["code_size"],
                               variants) if board.get("code_size") else None
    platform_bytes = board.get("platform_flash_bytes", 0)
    flash_need = footprint.total + facts.golden_bytes + platform_bytes if footprint else None
    ram_need = facts.arena_bytes + board.get("reserve_ram_bytes", 0)
    checks = [("RAM", ram_need, board.get("ram_bytes"),
               f"tensor arena {facts.arena_bytes} + runtime reserve {board.get('reserve_ram_bytes', 0)}")]
    if footprint:
        checks.insert(0, ("flash", flash_need, board.get("flash_bytes"),
                          f"model {facts.model_bytes} + TFLM kernels {footprint.runtime - footprint.core}"
                          f" + TFLM core {footprint.core} + golden vectors {facts.golden_bytes}"
                          f" + platform {platform_bytes}"))
    check_fits(facts.name, board, checks,
               "shrink the model (prune/cluster/int8, fewer golden vectors) or pick a bigger board")
    delta = None
    if footprint and facts.uncompressed_model_bytes and DECODE in facts.operators:
        plain = deployed_flash(facts.uncompressed_model_bytes, [op for op in facts.operators if op != DECODE],
                               board["code_size"], variants)  # the same kernels as the LUT model's, less DECODE
        delta = footprint.total - plain.total
    return TflmBudget(flash_needed_bytes=flash_need, ram_needed_bytes=ram_need, flash_bytes=board.get("flash_bytes"),
                      ram_bytes=board.get("ram_bytes"), footprint=footprint, platform_flash_bytes=platform_bytes,
                      lut_image_delta_bytes=delta)


def budget_lines(record: dict) -> list[str]:
    """Where the flash and RAM go, and for LUT models what compression costs as well as saves."""
    lines, footprint = [], record.get("footprint")
    if footprint:
        kernels = footprint["total"] - footprint["model"] - footprint["core"]
        have = f" of {record['flash_bytes']:,}" if record.get("flash_bytes") else ""
        lines.append(f"flash {record['flash_needed_bytes']:,}{have} bytes: model {record['model_bytes']:,}"
                     f" + TFLM kernels {kernels:,} + TFLM core {footprint['core']:,} + golden vectors"
                     f" {record['golden_bytes']:,} + platform {record['platform_flash_bytes']:,}"
                     f" (TFLM code measured on {footprint['target']})")
    have = f" of {record['ram_bytes']:,}" if record.get("ram_bytes") else ""
    lines.append(f"RAM {record['ram_needed_bytes']:,}{have} bytes: tensor arena {record['arena_bytes']:,}"
                 f" ({record['arena_measured_bytes']:,} + margin; {record.get('arena_source') or 'measured'}) + reserve"
                 f" {record['ram_needed_bytes'] - record['arena_bytes']:,}")
    if record.get("lut_image_delta_bytes") is not None:
        saved = record["uncompressed_model_bytes"] - record["model_bytes"]
        decode = footprint["kernels"]["TFLM_DECODE"]
        lines.append(f"LUT compression: the model is {saved:,} bytes smaller ({record['uncompressed_model_bytes']:,}"
                     f" -> {record['model_bytes']:,}) but the DECODE kernel adds {decode:,} bytes of code: image"
                     f" {record['lut_image_delta_bytes']:+,} bytes; the arena also holds the decoded weights (largest tensor"
                     f" {record.get('decoded_tensor_bytes') or 0:,} bytes)")
    return lines


def board_arena(profile: dict, facts: ModelFacts, model_dir: Path, measure: bool = True) -> ModelFacts:
    """The facts with the arena of the board's core: the conversion's when it measured (or derived) that core,
    else measured now when this machine can and TFLM_KIT_DEVICE_CHECK is not off (runtimes/device_check.py), else
    derived for that core from the model (tflm/derived_arena.py), else the conversion's figure, labelled with what it is. The host board reserves the host's figure (its firmware runs TFLM's x86-64 build)."""
    from ..tflm.arena import arena_with_margin
    from ..tflm.target_arena import ArenaFigure, arena_core

    figures = {kind: ArenaFigure.from_dict(d) for kind, d in facts.arena.items()
               if kind in ("target", "host") and isinstance(d, dict)}
    target, host = figures.get("target"), figures.get("host")
    if profile.get("runs_on") == "host":
        figure, note = host or target, ""
    else:
        core, note = arena_core(profile["core"])
        figure = target if target is not None and target.on_device and target.core == core else None
        if figure is None and measure:
            figure = _measure_core(core, facts, model_dir)
        if figure is None:
            figure = _derive_core(core, model_dir)
        if figure is None and target is not None:
            figure = target
            note = f"{core} not measured here, so {target.core}'s figure" if target.on_device else ""
    if figure is None:
        return facts
    source = figure.source + (f"; {note}" if note else "")
    if figure.bytes == facts.arena_measured_bytes:  # the conversion's own figure: keep its reservation
        return replace(facts, arena_source=source)
    return replace(facts, arena_measured_bytes=figure.bytes, arena_bytes=arena_with_margin(figure.bytes, facts.arena_margin),
                   arena_source=source)


def _derive_core(core: str, model_dir: Path):
    """The core's arena derived from the folder's model.tflite (tflm/derived_arena.py), or None."""
    from ..tflm.derived_arena import derived_figure

    tflite = model_dir / "model.tflite"
    return derived_figure(tflite.read_bytes(), core) if tflite.is_file() else None


def _measure_core(core: str, facts: ModelFacts, model_dir: Path):
    """The core's arena measured under QEMU now, or None when this machine cannot (or the folder lacks model.tflite)."""
    from .device_check import BOARDS, measure_model_dir, missing_tools, switched_off

    if core not in BOARDS or switched_off() or missing_tools(core) or not (model_dir / "model.tflite").is_file():
        return None
    return measure_model_dir(core, model_dir, facts)


def _settings_for_board(facts: ModelFacts, dest_model: Path) -> None:
    """model_settings.h with the board's arena figure and its source."""
    from ..emit.sources import with_arena

    settings = dest_model / "model_settings.h"
    if not settings.is_file() or "#define TFLM_KIT_ARENA_PROBE" in settings.read_text():
        return  # the device check's probe build keeps its generous arena and the define that searches the smallest
    comment = "\n".join(f"// {line}" for line in (
        f"Tensor arena: {facts.arena_measured_bytes} bytes {facts.arena_source},",
        f"plus a {facts.arena_margin:.0%} margin (written by `tflm-kit firmware` for this board's core).",))
    settings.write_text(with_arena(settings.read_text(), facts.arena_measured_bytes, facts.arena_bytes, comment))


def _resolver_for_port(port: str, facts: ModelFacts, model_dir: Path, dest_model: Path) -> None:
    """model_ops.h again for the board's TFLM copy when it lacks a type-specialised registration the
    converted one uses (Arduino's copy has no _INT4 kernels): the generic kernel there instead."""
    from ..emit.sources import render_model_ops

    tflite = model_dir / "model.tflite"
    if port == "tflite-micro" or not tflite.is_file() or not (dest_model / "model_ops.h").is_file():
        return
    model_bytes = tflite.read_bytes()
    (dest_model / "model_ops.h").write_text(
        render_model_ops(facts.name, "model.tflite", model_bytes, read_model(model_bytes), port))


def price(model: bytes, arena: Figure, target: str) -> Deployed:
    """TFLM's deployed flash from the per-target code-size data with the type-specialised kernels the generated
    resolver registers (tflm/footprint.model_flash); RAM: the arena figure given, with its own source. KitError
    when the data has no figure for the target or an operator."""
    found = model_flash(model, target)
    kernels = int(sum(found.kernels.values()) - found.shared)  # shared code counted once
    return Deployed("tflm", target, Figure(int(found.total), f"footprint data ({target}, TFLM kernels linked alone)"),
                    arena, {"model": found.model, "kernels": kernels, "core": int(found.core)})


class TflmRuntime(Runtime):
    """TFLM's interpreter: the flatbuffer, the generated op resolver and `kTensorArenaSize`."""
    name = "tflm"
    description = "TFLM MicroInterpreter (flatbuffer + op resolver + tensor arena)"

    @override
    def facts(self, model_dir: Path) -> ModelFacts:
        return read_model_dir(model_dir)

    @override
    def check(self, board: dict, facts: ModelFacts, model_dir: Path, boards: dict[str, dict]) -> None:
        check_port(board, facts, boards)

    @override
    def budget(self, board: dict, facts: ModelFacts, model_dir: Path) -> TflmBudget:
        return check_budget(board, facts)

    @override
    def budget_lines(self, record: dict) -> list[str]:
        return budget_lines(record)

    @override
    def price(self, model: bytes, arena: Figure, target: str) -> Deployed:
        return price(model, arena, target)

    @override
    def needs(self, board: dict) -> ProjectNeeds:
        cortex = board.get("runs_on") == "qemu" or "arch_flags" in board
        return ProjectNeeds(
            sources=MODEL_SOURCES,
            include_dirs=("$(TFLM_ROOT)", "$(TFLM_DOWNLOADS)/flatbuffers/include", "$(TFLM_DOWNLOADS)/gemmlowp",
                          "$(TFLM_DOWNLOADS)/ruy", "$(TFLM_DOWNLOADS)/kissfft"),
            defines=tuple((HOST_DEFINES if not cortex else
                           "-DTF_LITE_STATIC_MEMORY -DTF_LITE_MCU_DEBUG_LOG -DCMSIS_NN -DTF_LITE_DISABLE_X86_NEON "
                           "-DKERNELS_OPTIMIZED_FOR_SPEED").split()),
            libraries=(f"$(TFLM_ROOT)/gen/{board.get('tflm_target', '')}/lib/libtensorflow-microlite.a",),
            settings=("TFLM_ROOT",))

    @override
    def board_facts(self, board: dict, facts: ModelFacts, model_dir: Path, measure: bool) -> ModelFacts:
        return board_arena(board, facts, model_dir, measure)

    @override
    def emit(self, model_dir: Path, dest: Path, board: dict, facts: ModelFacts) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        copied = []
        for name in MODEL_SOURCES + MODEL_EXTRAS:
            if (model_dir / name).is_file():
                target = dest / name
                if target.suffix == ".cc" and board.get("cc_suffix"):
                    target = target.with_suffix(board["cc_suffix"])
                shutil.copyfile(model_dir / name, target)
                copied.append(target)
        _resolver_for_port(board["port"], facts, model_dir, dest)
        _settings_for_board(facts, dest)
        return copied

    @override
    def template(self, board: dict) -> tuple[str, dict[str, str]]:
        return board["template"], board["files"]

    @override
    def context(self, board: dict, facts: ModelFacts, model_dir: Path) -> dict:
        return {"host_defines": HOST_DEFINES, "tflm_commit": TFLM_COMMIT}

    @override
    def record_extras(self) -> dict:
        return {"tflm_commit": TFLM_COMMIT}

    @override
    def model_sources(self, model: bytes, inputs: list, outputs: list) -> ModelSources:
        """Nothing beyond the reference artifacts (flatbuffer as C array, resolver, arena) every model
        directory holds: the golden outputs are TFLM's own."""
        return ModelSources()

    bare_main = ("bare/tflm.cc.j2", "bare.cc")
    model_data_note = "the flatbuffer array g_<name>_model_data"

    @override
    def model_data_bytes(self, project: Path, elf: Path) -> int:
        from .bare import symbol_sizes

        record = json.loads((project / RECORD_NAME).read_text())
        return symbol_sizes(elf).get(f"g_{record['name']}_model_data", 0)
