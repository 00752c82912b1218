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
from .runtimes.boards import list_boards
from .runtimes.registry import runtime_names
from .optimize.cost import SEARCH_OBJECTIVES
from .partition.cost import CUT_OBJECTIVES
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
    Output locks are released on every path. This is the one place a KitError becomes an exit: the flows
    raise it, and commands catch only what they report otherwise (a golden mismatch, an interrupted search)."""

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
    loaded = load_recipe(recipe)
    if ray_address:  # every federated stage runs on this Ray cluster
        loaded = loaded.with_stage_settings("federated", ray_address=ray_address)
    with quiet_console() as log:
        done = run_conversion(loaded, out, force=force, events=progress.ConsoleSink(log),
                              device_check=device_check)
    exact = done.validation["tflm_vs_c_array"]
    click.echo(f"artifacts: {out}/  (report: {out / 'report.md'})")
    click.echo(f"model: {done.model_bytes:,} bytes {done.mode}   tensor arena: {done.tensor_arena_size:,} bytes "
               f"({done.arena_measured:,} {done.arena_source} + margin)")
    click.echo(f"quality: float {done.float_quality} -> {done.mode} on TFLM {done.quantized_quality}")
    if done.deployed is not None:  # a compressed model: what the device stores, next to the uncompressed one
        click.echo(done.deployed.line())
    for line in deployed_lines(done.manifest):
        click.echo(line)
    click.echo(f"bit-exact on TFLM (C array vs golden): {exact.equal}/{exact.total}")
    for pair in ("tflm_vs_litert_reference", "tflm_vs_litert_optimized"):
        result = done.validation[pair]
        click.echo(f"{pair}: {result.equal}/{result.total} equal, max {result.max_lsb} LSB")
    if "aot" in done.manifest:
        for check in done.manifest["aot"]["validated"]:
            click.echo(f"{check['line']}   -> {out / 'aot'}/")
        sizes = done.manifest["aot"]["buffer_bytes"]
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

    if out is not None:
        check_output_path(out, force, inputs=tuple(p for p in (model, data, float_model) if p is not None))
    with quiet_console() as log:
        report = validation.validate_in_child(model, data, float_model, vectors, seed, log=log)
        if out is not None:
            with staged_output(out) as staging:
                validation_report.write(report, staging)
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

    check_output_path(out, force, inputs=tuple(p for p in (model, data) if p is not None))  # --data too
    with quiet_console():
        lock, source = golden_module.record(model, data, out, vectors, seed, force)
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
    except golden_module.GoldenMismatch as mismatch:
        click.echo(f"FAIL: {mismatch}", err=True)
        sys.exit(1)
    click.echo(f"PASS: {result['vectors']} vectors, {result['outputs']} output(s) bit-identical ({result['note']})")


@main.command("firmware")
@click.option("--board", required=True, type=click.Choice(list_boards()), help="Target board profile.")
@click.option("--model-dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Output directory of `tflm-kit convert`.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Project directory to create.")
@click.option("--runtime", default="tflm", show_default=True, type=click.Choice(runtime_names()),
              help="tflm: TFLM's interpreter; aot: the generated C with no interpreter.")
@click.option("--force", is_flag=True, help="Replace --out if it is a previously rendered project.")
def firmware(board: str, model_dir: Path, out: Path, runtime: str, force: bool) -> None:
    """Render a firmware project for --board from a converted --model-dir."""
    from .flows.firmware import budget_lines, render_firmware

    record = render_firmware(board, model_dir, out, force, runtime)
    click.echo(f"{board} project ({runtime} runtime): {out}/  (see README.md there)")
    for line in budget_lines(record):
        click.echo(f"  {line}")


@main.command("flash")
@click.argument("project", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--board", help="Expected board; refused if the project was rendered for another one.")
@click.option("--tflm-root", envvar="TFLM_ROOT", help="TFLM checkout with the library built.")
def flash(project: Path, board: str | None, tflm_root: str | None) -> None:
    """Build and run (host, the emulated Cortex-M boards, pico on rp2040js) or flash a rendered firmware PROJECT (tflm or aot)."""
    from .flows import flash as flashing

    flashing.check_rendered_for(project, board)
    s = flashing.flash(project, tflm_root)
    if not s["ran"]:
        click.echo(f"{s['missing_tool']} is not on PATH. Install it: {s['install']}")
        click.echo(f"Then run:\n  {s['command']}")
        if s.get("emulator_missing"):
            click.echo(f"To run it here on an emulated RP2040 instead, this machine needs: {s['emulator_missing']}")
        sys.exit(1)  # nothing was flashed
    if "device" in s:
        for line in flashing.device_lines(s, Path(project).resolve()):
            click.echo(line)
        for line in s["failures"] + s["golden_differences"]:
            click.echo(f"  {line}")
    if not s["pass"]:
        sys.exit(1)


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
            outcome = search.optimize(recipe, out, search.Options(**settings), events=progress.ConsoleSink(log))
    except KeyboardInterrupt as interrupt:
        click.echo(f"interrupted: finished trials are in {out / 'search.json'}; the same command resumes", err=True)
        sys.exit(143 if isinstance(interrupt, Terminated) else 130)
    for line in search.summary_lines(outcome, out):
        click.echo(line)


@main.command("partition")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--devices", required=True, help="HEAD,TAIL as NAME:CORE@MHz[/FLASH/RAM], e.g. "
              "nano33:cortex-m4@64MHz,h7:cortex-m7@280MHz. Part 0 runs on HEAD.")
@click.option("--link", "link_spec", required=True, help="uart:BAUD, spi:HZ or a link profile of --profiles.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--cut", default="auto", show_default=True,
              help="TENSOR[,TENSOR] (names, or #index) crossing the cut, or auto: the best within budgets.")
@click.option("--objective", default="latency", show_default=True, type=click.Choice(CUT_OBJECTIVES),
              help="What --cut auto minimises: end-to-end latency, energy, or the pipeline period (balance).")
@click.option("--profiles", "profile_file", type=click.Path(path_type=Path),
              help="YAML: device/link name -> fields (core, mhz, flash_bytes, ram_bytes, active_mw; "
                   "bytes_per_s, overhead_bytes).")
@click.option("--data", type=click.Path(path_type=Path), help="Inputs (.npz 'x') for a bare .tflite.")
@click.option("--vectors", default=8, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--seed", default=0, show_default=True)
@click.option("--pair", is_flag=True, help="Also build both parts' firmware and run them on two QEMU "
              "instances joined by a UART relay.")
@click.option("--runtime", type=click.Choice(runtime_names()), default="tflm", show_default=True,
              help="What each part is written, priced and run with: TFLM's interpreter, or the interpreter-free "
                   "generated C (aot).")
@click.option("--force", is_flag=True, help="Replace --out if it already holds files.")
def partition(model, devices, link_spec, out, cut, objective, profile_file, data, vectors, seed, pair, runtime, force):
    """Split MODEL (a converted model directory or an int8 .tflite) across two devices."""
    from .flows import partition as partitioning

    request = partitioning.Request(model, devices, link_spec, out, cut, objective, profile_file, data, vectors,
                                   seed, pair, force, runtime)
    record = partitioning.partition(request, events=progress.ConsoleSink(lambda m: click.echo(f"[tflm-kit] {m}", err=True)))
    click.echo(f"artifacts: {out}/  (report: {Path(out) / 'report.md'}; firmware: tflm-kit firmware "
               f"{'' if runtime == 'tflm' else f'--runtime {runtime} '}--model-dir {Path(out) / 'part0'} and part1)")
    for line in partitioning.summary_lines(record):
        click.echo(line)
    if "pair" in record and not record["pair"]["pass"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
