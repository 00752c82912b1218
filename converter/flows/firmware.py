"""Render a firmware project for one board from a converted model directory.

The model directory is what `tflm-kit convert` writes (docs/artifacts.md). A board is a
data file, firmware_templates/boards/<board>.yaml, plus a template folder of the same
name; rendering copies the C/C++ artifacts in and fills the templates, after checking
that the model fits the board's flash and RAM.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import click
import jinja2
import yaml

from converter.errors import KitError
from converter.system.outdir import check_output_path, staged_output

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

MODEL_SOURCES = ("model_data.h", "model_data.cc", "model_ops.h", "model_settings.h",
                 "golden_vectors.h", "golden_vectors.cc")
# Copied beside the sources for `tflm-kit flash` to compare against; no firmware uses it.
MODEL_EXTRAS = ("golden.npz",)


def list_boards() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


def load_board(board: str) -> dict:
    path = BOARDS_DIR / f"{board}.yaml"
    if not path.is_file():
        raise KitError(f"unknown board '{board}'", f"use one of: {', '.join(list_boards())}")
    return yaml.safe_load(path.read_text())


def _int_constant(text: str, name: str, path: Path) -> int:
    m = re.search(rf"\bconstexpr\s+int\s+{name}\s*=\s*(\d+)\s*;", text)
    if not m:
        raise KitError(f"{path} has no 'constexpr int {name}'",
                       "re-run `tflm-kit convert` to regenerate the model directory")
    return int(m.group(1))


def _int_array(text: str, name: str) -> list[int]:
    m = re.search(rf"\b{name}\[\]\s*=\s*\{{([^}}]*)\}}", text)
    return [int(x) for x in m.group(1).split(",") if x.strip()] if m else []


def read_model_dir(model_dir: Path) -> dict:
    """What rendering needs from the converter's artifacts, read from the headers themselves."""
    model_dir = Path(model_dir)
    missing = [f for f in MODEL_SOURCES if not (model_dir / f).is_file()]
    if missing:
        raise KitError(f"{model_dir} is missing {', '.join(missing)}",
                       "point at the --out directory of `tflm-kit convert`")
    data_h = (model_dir / "model_data.h").read_text()
    m = re.search(r"\bg_(\w+)_model_data\[\]", data_h)
    if not m:
        raise KitError(f"{model_dir / 'model_data.h'} declares no g_<name>_model_data[]",
                       "re-run `tflm-kit convert`")
    settings_path = model_dir / "model_settings.h"
    settings = settings_path.read_text()
    golden_path = model_dir / "golden_vectors.h"
    golden_count = _int_constant(golden_path.read_text(), "kGoldenCount", golden_path)
    in_bytes, out_bytes = _int_array(settings, "kInputBytes"), _int_array(settings, "kOutputBytes")
    model_bytes = (model_dir / "model.tflite").stat().st_size if (model_dir / "model.tflite").exists() \
        else int(re.search(r"(\d+) bytes", data_h).group(1))
    return {
        "name": m.group(1),
        "model_bytes": model_bytes,
        "arena_bytes": _int_constant(settings, "kTensorArenaSize", settings_path),
        "input_count": _int_constant(settings, "kInputCount", settings_path),
        "output_count": _int_constant(settings, "kOutputCount", settings_path),
        "golden_count": golden_count,
        "golden_bytes": golden_count * (sum(in_bytes) + sum(out_bytes)),
    }


def check_budget(board: dict, info: dict) -> dict:
    """Flash and RAM the firmware needs on this board; KitError when either does not fit."""
    flash_need = info["model_bytes"] + info["golden_bytes"] + board.get("reserve_flash_bytes", 0)
    ram_need = info["arena_bytes"] + board.get("reserve_ram_bytes", 0)
    for kind, need, have, parts in (
        ("flash", flash_need, board.get("flash_bytes"),
         f"model {info['model_bytes']} + golden vectors {info['golden_bytes']}"
         f" + runtime reserve {board.get('reserve_flash_bytes', 0)}"),
        ("RAM", ram_need, board.get("ram_bytes"),
         f"tensor arena {info['arena_bytes']} + runtime reserve {board.get('reserve_ram_bytes', 0)}"),
    ):
        if have is not None and need > have:
            raise KitError(
                f"'{info['name']}' does not fit {kind} on {board['name']} ({board['mcu']}): needs"
                f" {need} bytes ({parts}) but the board has {have}, {need - have} bytes too many",
                "shrink the model (prune/cluster/int8, fewer golden vectors) or pick a bigger board")
    return {"flash_needed_bytes": flash_need, "ram_needed_bytes": ram_need,
            "flash_bytes": board.get("flash_bytes"), "ram_bytes": board.get("ram_bytes")}


def _check_out(out: Path, force: bool) -> None:
    check_output_path(out, force)
    if force and out.is_dir() and any(out.iterdir()) and not (out / RECORD_NAME).is_file():
        raise KitError(f"{out} is not a tflm-kit firmware project, refusing to replace it",
                       "choose another --out directory")


def render_firmware(board: str, model_dir: Path, out: Path, force: bool = False) -> dict:
    """Render the project for `board` into `out`; returns the record also saved in `out`."""
    profile = load_board(board)
    model_dir, out = Path(model_dir).resolve(), Path(out).resolve()
    info = read_model_dir(model_dir)
    budget = check_budget(profile, info)
    _check_out(out, force)
    with staged_output(out) as staging:
        record = _render(board, profile, info, budget, model_dir, out, staging)
    return record


def _render(board: str, profile: dict, info: dict, budget: dict, model_dir: Path, out: Path, staging: Path) -> dict:
    """Write the project into `staging`; paths in the record name its final place `out`."""

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    dest_model = staging / profile["model_dir"]
    ctx = dict(info, board=profile, project=out.name, model_dir=profile["model_dir"],
               # Headers are included relative to the source that includes them.
               model_prefix="" if profile["model_dir"] == "." else "model/",
               host_defines=HOST_DEFINES, tflm_commit=TFLM_COMMIT)
    files = []
    for template, dest in profile["files"].items():
        target = staging / env.from_string(dest).render(ctx)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(env.get_template(f"{board}/{template}").render(ctx))
        files.append(target.relative_to(staging).as_posix())
    dest_model.mkdir(parents=True, exist_ok=True)
    for name in MODEL_SOURCES + MODEL_EXTRAS:
        if (model_dir / name).is_file():
            target = dest_model / name
            if target.suffix == ".cc" and profile.get("cc_suffix"):
                target = target.with_suffix(profile["cc_suffix"])
            shutil.copyfile(model_dir / name, target)
            files.append(target.relative_to(staging).as_posix())

    record = {"board": board, "project": str(out), "model_dir": str(model_dir),
              "model_subdir": profile["model_dir"], **info, **budget, "files": sorted(files),
              "tflm_commit": TFLM_COMMIT}
    (staging / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return record


@click.command("firmware")
@click.option("--board", required=True, type=click.Choice(list_boards()), help="Target board profile.")
@click.option("--model-dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Output directory of `tflm-kit convert`.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Project directory to create.")
@click.option("--force", is_flag=True, help="Replace --out if it is a previously rendered project.")
def firmware_command(board: str, model_dir: Path, out: Path, force: bool) -> None:
    """Render a firmware project for --board from a converted --model-dir."""
    try:
        record = render_firmware(board, model_dir, out, force)
    except KitError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None
    ram = f"{record['ram_needed_bytes']:,}" + (f" of {record['ram_bytes']:,}" if record["ram_bytes"] else "")
    click.echo(f"{board} project: {out}/  (RAM {ram} bytes; see README.md there)")
