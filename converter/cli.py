"""The `tflm-kit` command: a thin layer over the pipeline modules."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path

import click

from . import progress
from .errors import CheckFailed, KitError
from .runtimes.registry import runtime_names
from .optimize.cost import SEARCH_OBJECTIVES
from .system import out_lock
from .system.native_output import captured_fds
from .system.outdir import DISK_FULL, disk_full_error


def _report_unexpected(console, printed) -> None:
    console.write(traceback.format_exc())
    console.write("--- native output before the failure ---\n" + printed()[-4000:] + "\n")
    console.write("error: unexpected failure inside the kit — fix: please report it with the output above\n")
    raise SystemExit(1) from None


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
            except (KitError, CheckFailed, KeyboardInterrupt, SystemExit):
                raise
            except OSError as exc:
                if exc.errno not in DISK_FULL:
                    _report_unexpected(console, printed)
                raise disk_full_error(exc, exc.filename) from None
            except Exception:
                _report_unexpected(console, printed)
    finally:
        console.close()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same cleanup (staging folder removed) runs."""


def _raise_terminated(_signum, _frame):
    raise Terminated()


def _fail(error: KitError) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


class KitGroup(click.Group):
    """Every command ends the same way wherever the trouble starts (a lazy TensorFlow import included):
    bad input or a full disk -> one line and exit 2; Ctrl-C -> exit 130, SIGTERM -> 143, never a traceback.
    Output locks are released on every path."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KitError as error:
            _fail(error)
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            _fail(disk_full_error(exc, exc.filename))
        except KeyboardInterrupt as interrupt:
            _exit_interrupted(143 if isinstance(interrupt, Terminated) else 130)
        finally:
            out_lock.release_all()


def _exit_interrupted(code: int) -> None:
    """Exit with `code` after an interrupt; the staging folder is gone by now (its `finally` ran)."""
    click.echo("interrupted: nothing was written to the output directory", err=True)
    out_lock.release_all()
    main_module = getattr(sys.modules.get("__main__"), "__spec__", None)
    if getattr(main_module, "name", "") == "converter.__main__" or Path(sys.argv[0]).name == "tflm-kit":
        # A KeyboardInterrupt that passed through code a native module ran with PyRun_String (pybind11
        # module init inside TensorFlow's import) makes CPython end by SIGINT whatever exit code is given;
        # os._exit keeps the promised 130. Only in the real command: an in-process caller keeps its process.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


@click.group(cls=KitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tflm-kit")
def main():
    """Keras model -> optimized int8 TFLite -> bit-exact validated TFLM firmware artifacts."""
    # CUDA_VISIBLE_DEVICES is set where TensorFlow is imported (system/tf_env.py), for CLI and library alike.
    # CI runners and process managers stop jobs with SIGTERM, whose default kills without cleanup.
    signal.signal(signal.SIGTERM, _raise_terminated)


@main.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output directory for the artifacts.")
@click.option("--force", is_flag=True, help="Replace the output directory if it already holds files.")
@click.option("--ray-address", help="Run federated stages on this Ray cluster (overrides their ray_address).")
@click.option("--device-check", type=click.Choice(["auto", "off", "cortex-m4", "cortex-m7", "cortex-m0plus"]),
              help="Run the golden self-test on this emulated core under QEMU before writing --out (overrides the "
                   "recipe's device_check; auto: cortex-m4 when TFLM_ROOT, arm-none-eabi-gcc and qemu-system-arm are there).")
def convert(recipe: Path, out: Path, force: bool, ray_address: str | None, device_check: str | None):
    """Run RECIPE (YAML): optimize, quantize, emit and validate into --out."""
    from .flows.convert import convert as run_conversion
    from .recipe import load_recipe
    from .stages.federated import with_ray_address

    try:
        with quiet_console() as log:
            manifest = run_conversion(with_ray_address(load_recipe(recipe), ray_address), out, force=force,
                                      events=progress.ConsoleSink(log), device_check=device_check)
    except KitError as error:
        _fail(error)
    except KeyboardInterrupt as interrupt:
        _exit_interrupted(143 if isinstance(interrupt, Terminated) else 130)
    summary = manifest["summary"]
    exact = manifest["validation"]["tflm_vs_c_array"]
    click.echo(f"artifacts: {out}/  (report: {out / 'report.md'})")
    click.echo(f"model: {summary['model_bytes']:,} bytes {summary['mode']}   tensor arena: {summary['tensor_arena_size']:,} bytes "
               f"({summary['arena_measured']:,} {summary.get('arena_source', 'measured on host')} + margin)")
    click.echo(f"quality: float {summary['float_quality']} -> {summary['mode']} on TFLM {summary['quantized_quality']}")
    if "deployed" in manifest:  # a compressed model: what the device stores, next to the uncompressed one
        from .reports.deployed import DeployedComparison

        click.echo(DeployedComparison(**manifest["deployed"]).line())
    for line in deployed_lines(manifest):
        click.echo(line)
    click.echo(f"bit-exact on TFLM (C array vs golden): {exact['equal']}/{exact['total']}")
    for pair in ("tflm_vs_litert_reference", "tflm_vs_litert_optimized"):
        result = manifest["validation"][pair]
        click.echo(f"{pair}: {result['equal']}/{result['total']} equal, max {result['max_lsb']} LSB")
    if "aot" in manifest:
        for check in manifest["aot"]["validated"]:
            click.echo(f"{check['line']}   -> {out / 'aot'}/")
        sizes = manifest["aot"]["buffer_bytes"]
        click.echo("AOT static buffer: " + ", ".join(f"{core} {size:,} B" for core, size in sizes.items()))


def deployed_lines(manifest: dict) -> list[str]:
    """Each runtime's deployed flash and RAM on the target core, side by side (no toolchain needed)."""
    from .runtimes.base import Deployed, Figure

    deployed = manifest.get("runtimes_deployed") or {}
    lines = []
    for row in deployed.get("figures", []):
        figure = Deployed(**{**row, "flash": Figure(**row["flash"]), "ram": Figure(**row["ram"])})
        lines.append("deployed " + figure.line())
    return lines + [f"deployed {note}" for note in deployed.get("notes", [])]


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), help=".npz with inputs under 'x' (x_0, x_1, ... for several inputs; float or the model's type) and optional labels 'y'.")
@click.option("--float-model", type=click.Path(path_type=Path), help="The float model (.h5/.keras/SavedModel/.tflite) for fidelity metrics.")
@click.option("--out", type=click.Path(path_type=Path), help="Write report.json, report.md and differences.png here.")
@click.option("--vectors", default=100, show_default=True, type=click.IntRange(1, 1_000_000), help="How many inputs to run.")
@click.option("--seed", default=0, show_default=True, help="Seed for random inputs when --data is not given.")
@click.option("--force", is_flag=True, help="Replace --out if it already holds files.")
def validate(model: Path, data, float_model, out, vectors: int, seed: int, force: bool):
    """Compare TFLM (golden) with LiteRT on MODEL, operator by operator."""
    from .flows import validate as validation
    from .reports import validation_report
    from .system.outdir import check_output_path, staged_output

    try:
        if out is not None:
            check_output_path(out, force, inputs=tuple(p for p in (model, data, float_model) if p is not None))
        with quiet_console() as log:
            report = validation.validate_in_child(model, data, float_model, vectors, seed, log=log)
            if out is not None:
                with staged_output(out) as staging:
                    validation_report.write(report, staging)
    except KitError as error:
        _fail(error)
    for name, result in report["outputs"].items():
        click.echo(f"{name}: {result['equal']}/{result['total']} vectors equal, max {result['max_lsb']} LSB")
    for pair, result in report["operators"].items():
        for op, row in result["operators"].items():
            if row["vectors_first_differing"]:
                click.echo(f"  {pair} ({result['kernels']}): {op} first differs on {row['vectors_first_differing']}"
                           f"/{row['vectors_compared']} vectors, max {row['max_lsb']} LSB")
    if "fidelity" in report:
        fidelity = report["fidelity"]
        shown = {k: fidelity[k] for k in ("top1_agreement", "sqnr_db", "rmse", "accuracy_float", "accuracy_quantized") if k in fidelity}
        click.echo("fidelity vs float: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
    if out is not None:
        click.echo(f"report: {out / 'report.md'}")


@main.group()
def golden():
    """Golden-output regression tests: record TFLM outputs, check a model still gives them."""


@golden.command("record")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), help=".npz with inputs under 'x' (x_0, x_1, ... for several inputs); random inputs when absent.")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--vectors", default=20, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace --out (this is how goldens are updated on purpose).")
def golden_record(model: Path, data, out: Path, vectors: int, seed: int, force: bool):
    """Record MODEL's TFLM outputs as goldens in --out."""
    from .flows import golden as golden_module
    from .system.outdir import check_output_path

    try:
        check_output_path(out, force, inputs=tuple(p for p in (model, data) if p is not None))  # --data too
        with quiet_console():
            lock, source = golden_module.record(model, data, out, vectors, seed, force)
    except KitError as error:
        _fail(error)
    click.echo(f"recorded {lock['vectors']} golden vectors ({source}) in {out}")


@golden.command("check")
@click.argument("golden_dir", type=click.Path(path_type=Path))
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--strict-model", is_flag=True, help="Also require the exact model bytes the goldens were recorded with.")
def golden_check(golden_dir: Path, model, strict_model: bool):
    """Re-run MODEL (default: the recorded one) on TFLM; fail on any changed output bit."""
    from .flows import golden as golden_module

    try:
        with quiet_console():
            result = golden_module.check(golden_dir, model, strict_model)
    except KitError as error:
        _fail(error)
    except golden_module.GoldenMismatch as mismatch:
        click.echo(f"FAIL: {mismatch}", err=True)
        sys.exit(1)
    click.echo(f"PASS: {result['vectors']} vectors, {result['outputs']} output(s) bit-identical ({result['note']})")


def _register_firmware_commands() -> None:
    from .flows.firmware import firmware_command
    from .flows.flash import flash_command

    main.add_command(firmware_command)
    main.add_command(flash_command)


_register_firmware_commands()


@main.command("optimize")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--board", required=True, help="Board profile whose deployed cost is minimized (e.g. cortex-m-qemu).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Search directory (resumed when it holds one).")
@click.option("--max-accuracy-drop", type=click.FloatRange(0, 1), help="Classifiers: accuracy drop vs float (default 0.01).")
@click.option("--min-agreement", type=click.FloatRange(0, 1), help="Classifiers: top-1 agreement with float (default 0.95).")
@click.option("--min-sqnr", type=float, help="Output SQNR vs float in dB (default 20 for regression/autoencoders).")
@click.option("--objective", type=click.Choice(SEARCH_OBJECTIVES), default="flash", show_default=True)
@click.option("--trials", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="Trials in all, the plain int8 reference included; a larger number extends a finished search.")
@click.option("--ray-address", help="An existing Ray cluster (auto or HOST:PORT); default: local Ray on this machine.")
@click.option("--workers", type=click.IntRange(0, 1024), default=0, help="Trials at once (default: all CPUs).")
@click.option("--cpus-per-trial", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option("--epochs", type=click.IntRange(0, 1000), default=2, show_default=True,
              help="Distillation fine-tuning epochs per candidate.")
@click.option("--label-weight", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Weight of the labels in the fine-tuning targets (the rest: the float model's outputs).")
@click.option("--runtime", type=click.Choice(runtime_names()), default="tflm", show_default=True,
              help="Whose deployed cost is minimized: TFLM's interpreter or the generated C (aot).")
@click.option("--device/--no-device", default=None, help="Build and run passing candidates on the emulated core "
              "(default: when TFLM_ROOT, the Arm toolchain and QEMU are there and the board is emulated).")
def optimize(recipe: Path, out: Path, **settings):
    """Search compression settings for RECIPE's model: the smallest that holds every quality guard on --board."""
    from .flows import optimize as search

    try:
        with quiet_console() as log:
            outcome = search.optimize(recipe, out, search.Options(**settings), log=log)
    except KitError as error:
        _fail(error)
    except KeyboardInterrupt as interrupt:
        click.echo(f"interrupted: finished trials are in {out / 'search.json'}; the same command resumes", err=True)
        sys.exit(143 if isinstance(interrupt, Terminated) else 130)
    for line in search.summary_lines(outcome, out):
        click.echo(line)


def _register_partition_command() -> None:
    from .flows.partition import partition_command

    main.add_command(partition_command)


_register_partition_command()


if __name__ == "__main__":
    main()
