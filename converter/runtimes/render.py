"""Render a firmware project for one board and one runtime from a converted model directory.

The model directory is what `tflm-kit convert` writes (docs/artifacts.md). The runtime
(runtimes/__init__.py) checks that the board can build the model and that it fits, names the
board's template folder and files, and copies the model's sources in; this module fills the
templates and writes the project record `flash` reads back. Everything is written to a staging
folder first, so a refused render leaves `out` as it was.
"""
from __future__ import annotations

import json
from pathlib import Path

import jinja2

from ..errors import KitError
from ..system import out_lock
from ..system.outdir import check_output_path, staged_output
from .base import Budget, Runtime
from .boards import RECORD_NAME, TEMPLATES_DIR, all_boards, load_board
from .facts import ModelFacts
from .registry import get_runtime


def _check_out(out: Path, force: bool) -> None:
    check_output_path(out, force)
    if force and out.is_dir() and any(out.iterdir()) and not (out / RECORD_NAME).is_file():
        raise KitError(f"{out} is not a tflm-kit firmware project, refusing to replace it",
                       "choose another --out directory")


@out_lock.released_after  # the arena measurement or the budget may fail after --out was checked and locked
def render_project(board: str, model_dir: Path, out: Path, force: bool = False, runtime: str = "tflm",
                   measure: bool = True) -> dict:
    """Render the project for `board` and `runtime` into `out`; returns the record also saved in `out`.
    measure: the runtime may measure what the board's core needs now (TFLM: its arena under QEMU, when the
    conversion did not measure that core); False for callers that run the firmware themselves."""
    profile = load_board(board)
    chosen = get_runtime(runtime)
    model_dir, out = Path(model_dir).resolve(), Path(out).resolve()
    facts = chosen.facts(model_dir)
    chosen.check(profile, facts, model_dir, all_boards())
    _check_out(out, force)
    facts = chosen.board_facts(profile, facts, model_dir, measure)
    budget = chosen.budget(profile, facts, model_dir)
    with staged_output(out) as staging:
        record = _render(board, profile, chosen, facts, budget, model_dir, out, staging)
    return record


def template_env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _render(board: str, profile: dict, runtime: Runtime, facts: ModelFacts, budget: Budget, model_dir: Path,
            out: Path, staging: Path) -> dict:
    """Write the project into `staging`; paths in the record name its final place `out`."""
    env = template_env()
    info = facts.as_dict()
    ctx = dict(info, board=profile, project=out.name, model_dir=profile["model_dir"],
               # Headers are included relative to the source that includes them.
               model_prefix="" if profile["model_dir"] == "." else "model/",
               **runtime.context(profile, facts, model_dir))
    folder, templates = runtime.template(profile)
    files = []
    for template, dest in templates.items():
        target = staging / env.from_string(dest).render(ctx)
        target.parent.mkdir(parents=True, exist_ok=True)
        # a name with a folder (cortex-m-qemu/startup.c.j2) is shared with another template folder
        target.write_text(env.get_template(template if "/" in template else f"{folder}/{template}").render(ctx))
        files.append(target.relative_to(staging).as_posix())
    for copied in runtime.emit(model_dir, staging / profile["model_dir"], profile, facts):
        files.append(copied.relative_to(staging).as_posix())

    record = {"board": board, "project": str(out), "model_dir": str(model_dir),
              "model_subdir": profile["model_dir"], "port": profile["port"], **info, **budget.as_dict(),
              "files": sorted(files), **runtime.record_extras(), "runtime": runtime.name}
    (staging / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return record
