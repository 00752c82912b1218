"""TFLM vs the interpreter-free runtime (aot) on the emulated Cortex-M4, per model: bench/aot.md and bench/aot.csv.

For the demo's model (models/recipes/demo.yaml: int4 filters) and the five MLPerf Tiny reference models (their
int8 .tflite files, random inputs as tests/test_tflite_source.py converts them) it renders the cortex-m-qemu
project with each runtime, builds and runs it under QEMU (mps2-an386, `tflm-kit flash`: PASS n/n, image size,
instructions per inference from SysTick under -icount), then links the same project without its self-test
(runtimes/bare.py: no golden vectors, no printf) and reads the model's constant data with arm-none-eabi-nm.
The AOT project is also linked with the buffer planned without in-place execution (`generate(model,
plan=NO_INPLACE)`, the same bare link), so the table shows the static RAM with and without it. The ratios are
set against issue 20's goals and issue 23's RAM goal. Everything here is measured on this machine by this command:

    python -m bench.aot [--only demo,kws] [--out build/bench-aot]

Needs TFLM_ROOT, CMSIS_NN_ROOT, TFLM_KIT_SHARED_DATA (make bench sets all three from ../shared), arm-none-eabi-gcc
and qemu-system-arm.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from converter import AOT_NO_INPLACE, convert, flash, generate_aot, load_recipe, measure_bare, parse_recipe, render_firmware

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BOARD = "cortex-m-qemu"
MLPERF = {"ic": "image_classification/pretrainedResnet_quant.tflite",
          "kws": "keyword_spotting/kws_ref_model.tflite",
          "vww": "visual_wake_words/vww_96_int8.tflite",
          "ad": "anomaly_detection/ad01_int8.tflite",
          "sww": "streaming_wakeword/str_ww_ref_model.tflite"}
MODELS = ("demo", *MLPERF)
# issue 20's goals: AOT code vs TFLM's core + kernels, whole program without self-test vs TFLM's
CODE_GOAL = 0.20
PROGRAM_GOALS = {"demo": 0.30, "kws": 0.40, "ic": 0.60}
RAM_GOAL = 0.85           # issue 23: static RAM >= 15% below TFLM's (VWW, KWS), never above it anywhere


@dataclass(frozen=True)
class Measured:
    """One runtime's firmware for one model on the Cortex-M4."""
    passed: int
    total: int
    flash_selftest: int       # text+data with self-test and golden vectors
    ram_selftest: int         # data+bss of that image
    flash_bare: int           # text+data without self-test, golden vectors or stdio
    ram_bare: int
    model_data: int           # the model's constant data in the bare image
    instructions: int | None  # per inference, median over the golden vectors
    arena_reserved: int       # TFLM: kTensorArenaSize; AOT: the planned buffer
    arena_used: int           # TFLM: arena_used_bytes() on the Cortex-M4; AOT: the planned buffer
    ram_without_inplace: int | None = None   # AOT: data+bss of the program whose buffer has no in-place execution

    @property
    def ram(self) -> int:
        """Static RAM with the arena the target actually used: the program's data+bss minus the reservation
        plus what the core used (issue 20's "target arena + its other static RAM"; AOT: its data+bss as is)."""
        return self.ram_bare - self.arena_reserved + self.arena_used

    @property
    def code(self) -> int:
        return self.flash_bare - self.model_data


def model_dir(name: str, work: Path, shared: Path, lut: bool = True) -> Path:
    """The converted model; MLPerf models with the compress stage's default LUT (VWW and AD get TFLM_DECODE)
    unless `lut` is off."""
    out = work / (name if lut else f"{name}-nolut")
    if name == "demo":
        recipe = load_recipe(REPO / "models/recipes/demo.yaml")
    else:
        recipe = parse_recipe({"name": f"ref_{name}", "model": {"path": str(shared / "mlperf_tiny" / MLPERF[name])},
                               "data": {"random": {"samples": 12, "low": -1.0, "high": 1.0}},
                               "compress": {"strip_metadata": True, "lut": lut}, "golden": {"vectors": 5}}, base_dir=work)
    convert(recipe, out, force=True)
    return out


def ram_without_inplace(model: Path, work: Path) -> int:
    """data+bss of the AOT program (no self-test) whose aot/ is generated without in-place execution."""
    plain = work / f"{model.name}-no-inplace"
    shutil.rmtree(plain, ignore_errors=True)
    shutil.copytree(model, plain)
    shutil.rmtree(plain / "aot")
    generate_aot((model / "model.tflite").read_bytes(), plan=AOT_NO_INPLACE).write(plain / "aot")
    project = work / f"{model.name}-aot-no-inplace"
    render_firmware(BOARD, plain, project, force=True, runtime="aot")
    return measure_bare(project).static_ram_bytes


def measure(model: Path, runtime: str, work: Path) -> Measured:
    project = work / f"{model.name}-{runtime}"
    render_firmware(BOARD, model, project, force=True, runtime=runtime)
    ran = flash(project)
    device, bare = ran["device"], measure_bare(project)
    return Measured(ran["passed"], ran["total"], device.flash_bytes, device.static_ram_bytes, bare.flash_bytes,
                    bare.static_ram_bytes, bare.model_data_bytes, ran["instructions_per_inference"],
                    device.arena_size_bytes or 0, device.arena_used_bytes or 0,
                    ram_without_inplace(model, work) if runtime == "aot" else None)


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}x"


def _verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def render(rows: dict[str, dict[str, Measured]], command: str, seconds: float) -> str:
    lines = ["# TFLM vs AOT on the emulated Cortex-M4", "",
             f"Measured by `{command}` on {platform.machine()} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}, "
             f"in {seconds:.0f} s: each model's `cortex-m-qemu` project rendered with `--runtime tflm` and "
             "`--runtime aot`, built with arm-none-eabi-gcc "
             f"{subprocess.run(['arm-none-eabi-gcc', '-dumpversion'], capture_output=True, text=True).stdout.strip()} "
             "(-Os, --gc-sections; TFLM: the prebuilt CMSIS-NN library; AOT: CMSIS-NN at -O2, each layer calling the "
             "kernel CMSIS-NN's wrapper would choose, a softmax of <= 16 logits on the kit's kernel) and run on "
             "QEMU mps2-an386. Models: `make demo`'s recipe (int4 filters) and the MLPerf Tiny reference int8 "
             "`.tflite` files (random inputs).", "",
             "- *flash*: text+data of the self-test image (golden vectors, printf); *program*: the same project "
             "linked without self-test, golden vectors or stdio (`measure_bare`); *code*: program minus the model's "
             "constant data (TFLM: the flatbuffer; AOT: weights, biases, parameter tables), i.e. runtime + kernels "
             "+ start-up; *RAM*: data+bss of the program with the arena the Cortex-M4 used (TFLM: the program's "
             "data+bss minus kTensorArenaSize plus `arena_used_bytes()` from the self-test; AOT: its data+bss, the "
             "planned buffer included); *RAM w/o in-place*: the AOT program's data+bss with the buffer planned "
             "without in-place execution (`generate(model, plan=NO_INPLACE)`, the same link; docs/aot.md); "
             "*instructions*: per inference, SysTick under `-icount`, median over the golden vectors.", "",
             "| model | runtime | PASS | flash | program | code | model data | RAM | RAM w/o in-place | instructions |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, pair in rows.items():
        for runtime, m in pair.items():
            lines.append(f"| {name} | {runtime} | {m.passed}/{m.total} | {m.flash_selftest:,} | {m.flash_bare:,} | "
                         f"{m.code:,} | {m.model_data:,} | {m.ram:,} | "
                         f"{f'{m.ram_without_inplace:,}' if m.ram_without_inplace else '-'} | {m.instructions or 0:,} |")
    lines += ["", "## Against issue 20's goals (AOT / TFLM)", "",
              "| model | code (goal <= 0.20x) | program (goal) | RAM (goal <= 1x; issue 23: <= 0.85x) | "
              "RAM w/o in-place | instructions (goal <= 1x) |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, pair in rows.items():
        if set(pair) != {"tflm", "aot"} or not all(m.passed == m.total > 0 for m in pair.values()):
            continue
        t, a = pair["tflm"], pair["aot"]
        goal = PROGRAM_GOALS.get(name)
        program = _ratio(a.flash_bare, t.flash_bare) + (f" (<= {goal:.2f}x: {_verdict(a.flash_bare <= goal * t.flash_bare)})"
                                                          if goal else " (weights dominate: stated)")
        lines.append(f"| {name} | {_ratio(a.code, t.code)} ({_verdict(a.code <= CODE_GOAL * t.code)}) | {program} | "
                     f"{_ratio(a.ram, t.ram)} ({_verdict(a.ram <= RAM_GOAL * t.ram)}) | "
                     f"{_ratio(a.ram_without_inplace or 0, t.ram)} | "
                     f"{_ratio(a.instructions or 0, t.instructions or 1)} "
                     f"({_verdict((a.instructions or 0) <= (t.instructions or 0))}) |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(MODELS))
    parser.add_argument("--out", default=str(REPO / "build" / "bench-aot"))
    parser.add_argument("--no-lut", action="store_true", help="MLPerf models without LUT compression (no DECODE)")
    args = parser.parse_args(argv)
    for setting in ("TFLM_ROOT", "CMSIS_NN_ROOT", "TFLM_KIT_SHARED_DATA"):
        if not os.environ.get(setting):
            raise SystemExit(f"error: {setting} is not set — fix: export it (make bench sets it from ../shared)")
    keys = [k for k in (args.only.split(",") if args.only else MODELS) if k]
    work, shared = Path(args.out).resolve(), Path(os.environ["TFLM_KIT_SHARED_DATA"])
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CMSIS_NN_CACHE", str(work / "cmsis-nn"))
    # TFLM reserves the host's arena + margin (no device check at convert); its RAM here is what the Cortex-M4
    # used (Measured.ram), measured by the self-test of the very image
    os.environ["TFLM_KIT_DEVICE_CHECK"] = "off"
    started, rows = time.perf_counter(), {}
    for key in keys:
        folder = model_dir(key, work, shared, lut=not args.no_lut)
        rows[key] = {runtime: measure(folder, runtime, work) for runtime in ("tflm", "aot")}
        print(f"{key}: " + ", ".join(f"{r} {m.passed}/{m.total} program {m.flash_bare:,} B" for r, m in rows[key].items()))
    command = "python -m bench.aot" + (f" --only {args.only}" if args.only else "") + (" --no-lut" if args.no_lut else "")
    (BENCH / "aot.md").write_text(render(rows, command, time.perf_counter() - started))
    with open(BENCH / "aot.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "runtime", "passed", "total", "flash_selftest", "ram_selftest", "flash_program",
                         "ram_program", "arena_reserved", "arena_used", "ram", "ram_without_inplace", "model_data",
                         "code", "instructions"])
        for key, pair in rows.items():
            for runtime, m in pair.items():
                writer.writerow([key, runtime, m.passed, m.total, m.flash_selftest, m.ram_selftest, m.flash_bare,
                                 m.ram_bare, m.arena_reserved, m.arena_used, m.ram, m.ram_without_inplace,
                                 m.model_data, m.code, m.instructions])
    (BENCH / "aot.json").write_text(json.dumps({k: {r: m.__dict__ for r, m in p.items()} for k, p in rows.items()},
                                               indent=1) + "\n")
    print(f"wrote {BENCH / 'aot.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
