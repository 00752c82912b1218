"""The `tflm-kit` command: a thin layer over the pipeline modules."""
from __future__ import annotations

import contextlib
import os
import sys
import traceback
import warnings
from pathlib import Path

import click

from .errors import KitError
from .native_output import captured_fds


@contextlib.contextmanager
def quiet_console():
    """Run kit work with TensorFlow's native log chatter captured, yielding a progress printer.

    The chatter is shown only when something unexpected fails, where it may explain why.
    """
    console = os.fdopen(os.dup(2), "w", buffering=1)

    def log(message: str) -> None:
        console.write(f"[tflm-kit] {message}\n")

    try:
        with captured_fds(1, 2) as printed, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                yield log
            except (KitError, KeyboardInterrupt, SystemExit):
                raise
            except Exception:
                console.write(traceback.format_exc())
                console.write("--- native output before the failure ---\n" + printed()[-4000:] + "\n")
                console.write("error: unexpected failure inside the kit — fix: please report it with the output above\n")
                raise SystemExit(1) from None
    finally:
        console.close()


def _fail(error: KitError) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tflm-kit")
def main():
    """Keras model -> optimized int8 TFLite -> bit-exact validated TFLM firmware artifacts."""


@main.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output directory for the artifacts.")
@click.option("--force", is_flag=True, help="Replace the output directory if it already holds files.")
def convert(recipe: Path, out: Path, force: bool):
    """Run RECIPE (YAML): optimize, quantize, emit and validate into --out."""
    from .pipeline import convert as run_conversion
    from .recipe import load_recipe

    try:
        with quiet_console() as log:
            manifest = run_conversion(load_recipe(recipe), out, force=force, log=log)
    except KitError as error:
        _fail(error)
    except KeyboardInterrupt:
        click.echo("interrupted: nothing was written to the output directory", err=True)
        sys.exit(130)
    summary = manifest["summary"]
    exact = manifest["validation"]["tflm_vs_c_array"]
    click.echo(f"artifacts: {out}/  (report: {out / 'report.md'})")
    click.echo(f"model: {summary['model_bytes']:,} bytes int8   tensor arena: {summary['tensor_arena_size']:,} bytes "
               f"({summary['arena_measured']:,} measured on host)")
    click.echo(f"quality: float {summary['float_quality']} -> int8 on TFLM {summary['int8_quality']}")
    click.echo(f"bit-exact on TFLM (C array vs golden): {exact['equal']}/{exact['total']}")
    for pair in ("tflm_vs_litert_reference", "tflm_vs_litert_optimized"):
        result = manifest["validation"][pair]
        click.echo(f"{pair}: {result['equal']}/{result['total']} equal, max {result['max_lsb']} LSB")


if __name__ == "__main__":
    main()
