"""Render a firmware project for one board from a converted model directory.

The model directory is what `tflm-kit convert` writes (docs/artifacts.md). A board is a
data file, firmware_templates/boards/<board>.yaml, plus a template folder (the board's name,
or the profile's `template`: cortex-m7-qemu renders cortex-m-qemu for another core); rendering
copies the C/C++ artifacts in and fills the templates, after checking that the board's TFLM
port can run the model and that it fits the board's flash and RAM (flows/firmware_checks.py).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import jinja2
import yaml

from converter.errors import KitError
from converter.flows.firmware_checks import (MODEL_SOURCES, Budget, ModelFacts, check_budget, check_port,
                                             read_model_dir)
from converter.system import out_lock
from converter.system.outdir import check_output_path, staged_output

__all__ = ["render_firmware", "list_boards", "load_board", "read_model_dir", "check_budget", "MODEL_SOURCES"]


def _templates_dir() -> Path:
    """firmware_templates/ beside the package in a checkout, inside it in an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    beside = package.parent / "firmware_templates"
    return beside if beside.is_dir() else package / "firmware_templates"


TEMPLATES_DIR = _templates_dir()
BOARDS_DIR = TEMPLATES_DIR / "boards"
RECORD_NAME = ".tflm-kit-firmware.json"
# The TFLM commit the templates were built and tested against (see converter/tflm/ops.py).
TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"
# Defines libtensorflow-microlite.a is compiled with on the host; TF_LITE_STATIC_MEMORY
# changes TfLiteTensor's layout, so application code must use the same set.
HOST_DEFINES = ("-DTF_LITE_STATIC_MEMORY -DTF_LITE_DISABLE_X86_NEON "
                "-DKERNELS_OPTIMIZED_FOR_SPEED -DTF_LITE_USE_CTIME")

# Copied beside the sources for `tflm-kit flash` to compare against; no firmware uses it.
MODEL_EXTRAS = ("golden.npz",)


def list_boards() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


def load_board(board: str) -> dict:
    path = BOARDS_DIR / f"{board}.yaml"
    if board not in list_boards():  # a name, never a path: `../x` must not reach a YAML file elsewhere
        raise KitError(f"unknown board '{board}'", f"use one of: {', '.join(list_boards())}")
    profile = yaml.safe_load(path.read_text())
    profile.setdefault("template", board)
    return profile


def all_boards() -> dict[str, dict]:
    return {name: load_board(name) for name in list_boards()}




def _check_out(out: Path, force: bool, model_dir: Path) -> None:
    check_output_path(out, force, inputs=(model_dir,))
    if force and out.is_dir() and any(out.iterdir()) and not (out / RECORD_NAME).is_file():
        raise KitError(f"{out} is not a tflm-kit firmware project, refusing to replace it",
                       "choose another --out directory")


@out_lock.released_after  # the arena measurement or the budget may fail after --out was checked and locked
def render_firmware(board: str, model_dir: Path, out: Path, force: bool = False, measure: bool = True) -> dict:
    """Render the project for `board` into `out`; returns the record also saved in `out`.
    The output guard comes first: an --out that would lose the model folder is refused before it is read.
    measure: when the conversion did not measure the board's core, measure its arena under QEMU now if the
    tools are there (one more build; False keeps the conversion's figure, for callers that run the firmware
    themselves)."""
    profile = load_board(board)
    model_dir, out = Path(model_dir).resolve(), Path(out).resolve()
    _check_out(out, force, model_dir)
    facts = read_model_dir(model_dir)
    check_port(profile, facts, all_boards())
    facts = _board_arena(profile, facts, model_dir, measure)
    budget = check_budget(profile, facts)
    with staged_output(out) as staging:
        record = _render(board, profile, facts, budget, model_dir, out, staging)
        _settings_for_board(facts, staging / profile["model_dir"])  # not in _render: the device check renders its own
    return record


def _render(board: str, profile: dict, facts: ModelFacts, budget: Budget, model_dir: Path, out: Path,
            staging: Path) -> dict:
    """Write the project into `staging`; paths in the record name its final place `out`."""

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    dest_model = staging / profile["model_dir"]
    info = facts.as_dict()
    ctx = dict(info, board=profile, project=out.name, model_dir=profile["model_dir"],
               # Headers are included relative to the source that includes them.
               model_prefix="" if profile["model_dir"] == "." else "model/",
               host_defines=HOST_DEFINES, tflm_commit=TFLM_COMMIT)
    files = []
    for template, dest in profile["files"].items():
        target = staging / env.from_string(dest).render(ctx)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(env.get_template(f"{profile['template']}/{template}").render(ctx))
        files.append(target.relative_to(staging).as_posix())
    dest_model.mkdir(parents=True, exist_ok=True)
    for name in MODEL_SOURCES + MODEL_EXTRAS:
        if (model_dir / name).is_file():
            target = dest_model / name
            if target.suffix == ".cc" and profile.get("cc_suffix"):
                target = target.with_suffix(profile["cc_suffix"])
            shutil.copyfile(model_dir / name, target)
            files.append(target.relative_to(staging).as_posix())
    _resolver_for_port(profile["port"], facts, model_dir, dest_model)

    record = {"board": board, "project": str(out), "model_dir": str(model_dir),
              "model_subdir": profile["model_dir"], "port": profile["port"], **info, **budget.as_dict(),
              "files": sorted(files), "tflm_commit": TFLM_COMMIT}
    (staging / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _board_arena(profile: dict, facts: ModelFacts, model_dir: Path, measure: bool = True) -> ModelFacts:
    """The facts with the arena of the board's core: the conversion's when it measured that core, else
    measured now when this machine can and TFLM_KIT_DEVICE_CHECK is not off (flows/device_check.py), else
    the conversion's figure, labelled with what it is. The host board reserves the host's figure (its
    firmware runs TFLM's x86-64 build)."""
    from converter.tflm.arena import arena_with_margin
    from converter.tflm.target_arena import ArenaFigure, arena_core

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


def _measure_core(core: str, facts: ModelFacts, model_dir: Path):
    """The core's arena measured under QEMU now, or None when this machine cannot (or the folder lacks model.tflite)."""
    from converter.flows.device_check import BOARDS, measure_model_dir, missing_tools, switched_off

    if core not in BOARDS or switched_off() or missing_tools(core) or not (model_dir / "model.tflite").is_file():
        return None
    return measure_model_dir(core, model_dir, facts)


def _settings_for_board(facts: ModelFacts, dest_model: Path) -> None:
    """model_settings.h with the board's arena figure and its source."""
    from converter.emit.sources import with_arena

    settings = dest_model / "model_settings.h"
    if not settings.is_file():
        return
    comment = "\n".join(f"// {line}" for line in (
        f"Tensor arena: {facts.arena_measured_bytes} bytes {facts.arena_source},",
        f"plus a {facts.arena_margin:.0%} margin (written by `tflm-kit firmware` for this board's core).",))
    settings.write_text(with_arena(settings.read_text(), facts.arena_measured_bytes, facts.arena_bytes, comment))


def _resolver_for_port(port: str, facts: ModelFacts, model_dir: Path, dest_model: Path) -> None:
    """model_ops.h again for the board's TFLM copy when it lacks a type-specialised registration the
    converted one uses (Arduino's copy has no _INT4 kernels): the generic kernel there instead."""
    from converter.emit.sources import render_model_ops
    from converter.tflite.model import read_model

    tflite = model_dir / "model.tflite"
    if port == "tflite-micro" or not tflite.is_file() or not (dest_model / "model_ops.h").is_file():
        return
    model_bytes = tflite.read_bytes()
    (dest_model / "model_ops.h").write_text(
        render_model_ops(facts.name, "model.tflite", model_bytes, read_model(model_bytes), port))


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
