"""`tflm-kit firmware`: render a firmware project for one board and one runtime from a converted model.

The model directory is what `tflm-kit convert` writes (docs/artifacts.md). Boards, runtimes and
the rendering itself live in converter/runtimes/ (below flows/, optimize/ and partition/, which all
render and price firmware): a board is a data file, firmware_templates/boards/<board>.yaml, plus a
template folder per runtime; the runtime checks that the board can build the model and that it
fits before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import click

from converter.errors import KitError
from converter.runtimes.boards import RECORD_NAME, TEMPLATES_DIR, list_boards, load_board
from converter.runtimes.registry import get_runtime, runtime_names
from converter.runtimes.render import render_project
from converter.runtimes.tflm import HOST_DEFINES, TFLM_COMMIT

__all__ = ["render_firmware", "list_boards", "load_board", "firmware_command", "budget_lines",
           "RECORD_NAME", "TEMPLATES_DIR", "HOST_DEFINES", "TFLM_COMMIT"]


def render_firmware(board: str, model_dir: Path, out: Path, force: bool = False, runtime: str = "tflm",
                    measure: bool = True) -> dict:
    """Render the project for `board` and `runtime` into `out`; returns the record also saved in `out`
    (runtimes/render.py; measure: False keeps the conversion's arena, for callers that run the firmware)."""
    return render_project(board, model_dir, out, force, runtime, measure)


@click.command("firmware")
@click.option("--board", required=True, type=click.Choice(list_boards()), help="Target board profile.")
@click.option("--model-dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Output directory of `tflm-kit convert`.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Project directory to create.")
@click.option("--runtime", default="tflm", show_default=True, type=click.Choice(runtime_names()),
              help="tflm: TFLM's interpreter; aot: the generated C with no interpreter.")
@click.option("--force", is_flag=True, help="Replace --out if it is a previously rendered project.")
def firmware_command(board: str, model_dir: Path, out: Path, runtime: str, force: bool) -> None:
    """Render a firmware project for --board from a converted --model-dir."""
    try:
        record = render_firmware(board, model_dir, out, force, runtime)
    except KitError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None
    click.echo(f"{board} project ({runtime} runtime): {out}/  (see README.md there)")
    for line in budget_lines(record):
        click.echo(f"  {line}")


def budget_lines(record: dict) -> list[str]:
    """Where the flash and RAM go, as the project's runtime counts them."""
    return get_runtime(record.get("runtime", "tflm")).budget_lines(record)
