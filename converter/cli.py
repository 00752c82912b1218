"""The `tflm-kit` command: a thin layer over the pipeline modules."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import KitError


def _log(message: str) -> None:
    click.echo(f"[tflm-kit] {message}", err=True)


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
        manifest = run_conversion(load_recipe(recipe), out, force=force, log=_log)
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
