"""Per-board image sizes of both runtimes (issue 23): bench/boards.md and bench/boards.json.

For the bundled demo model (models/recipes/demo.yaml, `make demo`'s) and the MLPerf Tiny KWS reference model
(converted as bench/aot.py does: its int8 .tflite, random inputs), every board's project is rendered with
`--runtime tflm` and `--runtime aot` and taken as far as this machine can:
- cortex-m-qemu (M4), cortex-m7-qemu (M7): built and run on QEMU (`flash`: PASS n/n, text/data/bss, instructions
  per inference), then linked without the self-test (`measure_bare`, as bench/aot.md);
- pico (RP2040, Cortex-M0+): built with the real pico-sdk and run on rp2040js (`flash`: PASS n/n, the .elf's
  text/data/bss by address, emulated cycles per inference);
- stm32 (STM32F746, Cortex-M7): configured and linked against STM32CubeF7 (no emulator runs it);
- zephyr, arduino, platformio, esp-idf (no SDK here): the AOT model and kernels compiled with the board's core
  flags (arm-none-eabi-gcc for the Cortex-M4F boards; the host's gcc stands in for ESP32's Xtensa compiler) and
  partially linked from `aot_model_invoke` (`ld -r --gc-sections`, CMSIS-NN's archive where the board uses it);
  for TFLM only the model's flatbuffer object compiles here, the port's library is not built.

    python -m bench.boards [--only demo,kws] [--boards pico,stm32] [--out build/bench-boards]

Needs TFLM_ROOT, CMSIS_NN_ROOT, TFLM_KIT_SHARED_DATA (make bench sets them from ../shared) and the board SDK
pieces in TFLM_KIT_SDK (default ../shared/sdk: pico/, stm32cubef7/); a board whose tools are missing gets a row
saying what is missing, a model whose file is missing a note.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from converter import KitError, flash, image_size, measure_bare, render_firmware

from .aot import MLPERF, REPO, model_dir

BENCH = Path(__file__).resolve().parent
MODELS = ("demo", "kws")
RUNTIMES = ("tflm", "aot")
QEMU = {"cortex-m-qemu": "QEMU mps2-an386 (Cortex-M4)", "cortex-m7-qemu": "QEMU mps2-an500 (Cortex-M7)"}
# what a row's sizes are
LINKED = "linked image"
KEPT = "objects kept from aot_model_invoke"
FLATBUFFER = "model data object"


@dataclass(frozen=True)
class Toolchain:
    """The compiler a board without an SDK here is checked with, and how it is named in the table."""
    cc: str
    cxx: str
    flags: tuple[str, ...]
    ld: str
    size: str
    label: str


ARM_M4F = Toolchain("arm-none-eabi-gcc", "arm-none-eabi-g++",
                    ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb"), "arm-none-eabi-ld",
                    "arm-none-eabi-size", "arm-none-eabi-gcc, Cortex-M4F hard-float")
HOST = Toolchain("gcc", "g++", (), "ld", "size", "host gcc (x86-64) standing in for ESP-IDF's Xtensa compiler")
COMPILED = {"zephyr": ARM_M4F, "arduino": ARM_M4F, "platformio": ARM_M4F, "esp-idf": HOST}
CFLAGS = ("-Os", "-ffunction-sections", "-fdata-sections")


@dataclass(frozen=True)
class Row:
    """One runtime's build of one model for one board, as far as this machine took it."""
    model: str
    board: str
    runtime: str
    check: str                       # what was done: "QEMU ...: PASS 10/10", "linked", "compiled", "not built: ..."
    kind: str = ""                   # what the sizes are: LINKED, KEPT or FLATBUFFER ("" when none)
    text: int | None = None
    data: int | None = None
    bss: int | None = None
    program: int | None = None       # text+data linked without the self-test (measure_bare)
    program_ram: int | None = None   # data+bss of that program
    arena: str = ""                  # TFLM: arena reserved (used); AOT: the planned buffer
    per_inference: int | None = None
    unit: str = ""                   # "instructions" (QEMU -icount) or "cycles" (rp2040js)
    note: str = ""

    @property
    def flash(self) -> int | None:
        return None if self.text is None else self.text + (self.data or 0)


@dataclass(frozen=True)
class Case:
    key: str              # the model's key (demo, kws)
    model: Path           # its converted folder
    board: str
    runtime: str
    work: Path
    sdk: Path             # ../shared/sdk or TFLM_KIT_SDK
    extra: dict = field(default_factory=dict)

    def row(self, check: str, **values) -> Row:
        return Row(self.key, self.board, self.runtime, check, **values)

    def render(self) -> tuple[Path, dict]:
        """A fresh project in the bench's own folder (`firmware` refuses to replace one a build has written to)."""
        project = self.work / f"{self.key}-{self.board}-{self.runtime}"
        shutil.rmtree(project, ignore_errors=True)
        return project, render_firmware(self.board, self.model, project, runtime=self.runtime)


def _sizes(image) -> dict:
    """text/data/bss of an ImageSize (or device.json's image dict)."""
    values = image if isinstance(image, dict) else asdict(image)
    return {part: values[part] for part in ("text", "data", "bss")}


def _arena(device) -> str:
    if device.arena_size_bytes is None:
        return ""
    if device.arena_used_bytes == device.arena_size_bytes:
        return f"{device.arena_size_bytes:,}"
    return f"{device.arena_size_bytes:,} ({device.arena_used_bytes:,} used)"


def _verdict(ran: dict) -> str:
    return f"{'PASS' if ran['pass'] else 'FAIL'} {ran['passed']}/{ran['total']}"


def measure_qemu(case: Case) -> Row:
    """Built and run on QEMU by `flash`, then linked without the self-test (`measure_bare`)."""
    project, _ = case.render()
    ran = flash(project)
    device, bare = ran["device"], measure_bare(project)
    return case.row(f"{QEMU[case.board]}: {_verdict(ran)}", kind=LINKED, **_sizes(device.image),
                    program=bare.flash_bytes, program_ram=bare.static_ram_bytes, arena=_arena(device),
                    per_inference=ran["instructions_per_inference"], unit="instructions")


def measure_pico(case: Case) -> Row:
    """Built with pico-sdk and run on rp2040js by `flash` (it says what is missing when it cannot)."""
    project, _ = case.render()
    ran = flash(project)
    if "device" not in ran:
        return case.row(f"not run: {ran.get('emulator_missing') or ran.get('missing_tool') or 'no emulator'}")
    device = ran["device"]
    return case.row(f"rp2040js {case.extra.get('rp2040js', '')}: {_verdict(ran)}", kind=LINKED,
                    **_sizes(device.image), arena=_arena(device), per_inference=device.cycles_per_inference,
                    unit="cycles")


RUNTIME_SETTING = {"tflm": "TFLM_ROOT", "aot": "CMSIS_NN_ROOT"}


def measure_stm32(case: Case) -> Row:
    """Configured and linked against STM32CubeF7 (the project's own CMake build); no run."""
    cube = case.sdk / "stm32cubef7"
    if not cube.is_dir():
        return case.row(f"not built: no STM32CubeF7 at {cube}")
    project, record = case.render()
    setting = RUNTIME_SETTING[case.runtime]
    configure = ["cmake", "-S", str(project), "-B", str(project / "build"),
                 "-DCMAKE_TOOLCHAIN_FILE=cmake/arm-gcc-toolchain.cmake", f"-D{setting}={os.environ[setting]}",
                 f"-DSTM32CUBE_F7={cube}"]
    for command in (configure, ["cmake", "--build", str(project / "build"), "-j2"]):
        done = subprocess.run(command, cwd=project, capture_output=True, text=True)
        if done.returncode != 0:
            return case.row(f"build failed: {(done.stderr or done.stdout).strip().splitlines()[-1][:200]}")
    size = image_size(next((project / "build").glob("*_fw.elf")))
    arena = record.get("buffer_bytes") if case.runtime == "aot" else record.get("arena_bytes")
    return case.row("linked (STM32CubeF7, arm-none-eabi-gcc); not run", kind=LINKED,
                    **(_sizes(size) if size else {}), arena=f"{arena:,}" if arena else "")


def _objects(project: Path) -> Path:
    """A fresh folder beside the project for its objects (the project holds only what `firmware` wrote, so a
    second run may replace it)."""
    folder = project.with_name(f"{project.name}-objects")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _compile(tool: Toolchain, compiler: str, source: Path, out: Path, options: list[str]) -> Path:
    done = subprocess.run([compiler, *tool.flags, *CFLAGS, *options, "-c", str(source), "-o", str(out)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise KitError(f"{compiler} could not compile {source.name}: {done.stderr.strip()[-300:]}",
                       "see the generated project")
    return out


def cmsis_nn_archive(tool: Toolchain, work: Path) -> Path:
    """CMSIS-NN's int8/int16/int4 sources compiled once per toolchain into an archive (the boards' CMake
    builds glob the same files; --gc-sections keeps what the model calls)."""
    root = Path(os.environ["CMSIS_NN_ROOT"])
    folder = work / f"cmsis-nn-{tool.cc}"
    archive = folder / "libcmsis-nn.a"
    if archive.is_file():
        return archive
    folder.mkdir(parents=True, exist_ok=True)
    objects = [_compile(tool, tool.cc, source, folder / f"{source.stem}.o", ["-std=c99", f"-I{root / 'Include'}"])
               for source in sorted(root.glob("Source/*/*.c")) if not source.stem.endswith(("_f16", "_f32"))]
    subprocess.run([tool.cc.replace("gcc", "ar"), "rcs", str(archive), *map(str, objects)], check=True)
    return archive


def measure_aot_objects(case: Case) -> Row:
    """The generated model and kernels compiled for the board's core, kept from aot_model_invoke."""
    tool = COMPILED[case.board]
    project, record = case.render()
    files = record["files"]
    # arduino's builder compiles aot/ through aot_unity.c; elsewhere every .c of the model's aot/ folder
    sources = ["aot_unity.c"] if "aot_unity.c" in files else [f for f in files if f.endswith(".c") and "/aot/" in f"/{f}"]
    model = project / record["model_subdir"]
    options = ["-std=c99", f"-I{model}", f"-I{model / 'aot'}", f"-I{project}"]
    archives = []
    if record.get("kernels") == "cmsis-nn":
        options += ["-DAOT_CMSIS_NN", f"-I{Path(os.environ['CMSIS_NN_ROOT']) / 'Include'}"]
        archives.append(str(cmsis_nn_archive(tool, case.work)))
    folder = _objects(project)
    objects = [_compile(tool, tool.cc, project / rel, folder / f"{Path(rel).stem}.o", options) for rel in sources]
    total = sum(s.flash for s in (image_size(o, tool.size) for o in objects) if s)
    kept = folder / "aot_kept.o"
    subprocess.run([tool.ld, "-r", "--gc-sections", "-e", "aot_model_invoke", *map(str, objects), *archives,
                    "-o", str(kept)], check=True, capture_output=True)
    size = image_size(kept, tool.size)
    note = (f"{tool.label}; the generated code's objects total {total:,} B text+data"
            + ("; CMSIS-NN: the archive members the model calls" if archives else "; the kit's portable kernels"))
    return case.row(f"compiled ({record.get('kernels')} kernels)", kind=KEPT, **(_sizes(size) if size else {}),
                    arena=f"{record['buffer_bytes']:,}", note=note)


def measure_tflm_objects(case: Case) -> Row:
    """What of the TFLM build compiles here: the model's flatbuffer array (the port's library is not built)."""
    tool = COMPILED[case.board]
    try:
        project, record = case.render()
    except KitError as refused:
        return case.row(f"refused by `firmware`: {refused.problem}")
    source = next(project / rel for rel in record["files"]
                  if Path(rel).name.startswith("model_data") and rel.endswith((".cc", ".cpp")))
    obj = _compile(tool, tool.cxx, source, _objects(project) / "model_data.o", ["-std=c++17", f"-I{source.parent}"])
    size = image_size(obj, tool.size)
    return case.row("compiled (model data only)", kind=FLATBUFFER, **(_sizes(size) if size else {}),
                    arena=f"{record['arena_bytes']:,}",
                    note=f"{tool.label}; + {record['port']}'s TFLM library: not built here (no SDK for it)")


MEASURE = {"cortex-m-qemu": measure_qemu, "cortex-m7-qemu": measure_qemu, "pico": measure_pico,
           "stm32": measure_stm32, **{board: measure_aot_objects for board in COMPILED}}
BOARDS = tuple(MEASURE)


def measure(case: Case) -> Row:
    """The board's measurement; a failure becomes the row's check (one board does not stop the others)."""
    how = measure_tflm_objects if case.board in COMPILED and case.runtime == "tflm" else MEASURE[case.board]
    try:
        return how(case)
    except (KitError, subprocess.CalledProcessError) as failed:
        return case.row(f"failed: {str(failed)[:300]}")


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _ratio(row: Row, rows: list[Row]) -> str:
    """AOT flash / TFLM flash for the same model and board, when both are linked images."""
    twin = next((r for r in rows if (r.model, r.board, r.runtime, r.kind) == (row.model, row.board, "tflm", LINKED)),
                None)
    if row.runtime != "aot" or twin is None or not row.flash or not twin.flash:
        return ""
    return f"{row.flash / twin.flash:.2f}x"


def render(rows: list[Row], header: str, notes: list[str]) -> str:
    """bench/boards.md: the linked images, then what compiles for the boards without an SDK here."""
    lines = ["# Per-board images of both runtimes", "", header, "",
             "## Linked images", "",
             "*text/data/bss*: the board's own build of the self-test image (golden vectors, printf), "
             "`arm-none-eabi-size` (pico: `-A` by address, heap and stack reservations left out); *flash* = text+data; "
             "*AOT/TFLM*: the two flashes; *program*: text+data (data+bss) of the same project linked without "
             "self-test, golden vectors or stdio (`measure_bare`, emulated Cortex-M only); *arena*: TFLM's "
             "kTensorArenaSize (what the self-test measured used), AOT's planned buffer (both inside bss); "
             "*per inference*: instructions under QEMU `-icount` / cycles on rp2040js, median over the golden "
             "vectors.", "",
             "| model | board | runtime | check | text | data | bss | flash | AOT/TFLM | program (RAM) | arena | "
             "per inference |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.kind == LINKED or (r.board not in COMPILED and not r.kind):
            program = f"{_n(r.program)} ({_n(r.program_ram)})" if r.program else "-"
            per = f"{r.per_inference:,} {r.unit}" if r.per_inference else "-"
            lines.append(f"| {r.model} | {r.board} | {r.runtime} | {r.check} | {_n(r.text)} | {_n(r.data)} | "
                         f"{_n(r.bss)} | {_n(r.flash)} | {_ratio(r, rows)} | {program} | {r.arena or '-'} | {per} |")
    lines += ["", "## Boards with no SDK here: compiled objects", "",
              f"*{KEPT}*: the AOT model's generated C and kernels compiled (`{' '.join(CFLAGS)}`), then "
              "`ld -r --gc-sections -e aot_model_invoke` with CMSIS-NN's archive where the board uses it: the model "
              "and runtime a final link keeps, before the platform (RTOS, start-up, libc's memcpy/memset) is added; "
              f"*{FLATBUFFER}*: TFLM's model_data source compiled, the flatbuffer only; the port's TFLM library "
              "(interpreter + kernels) is not built on this machine. *arena*: the AOT buffer / TFLM's "
              "kTensorArenaSize in the rendered project (bss at link time).", "",
              "| model | board | runtime | check | sizes are | text | data | bss | text+data | arena | how |",
              "|---|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.board in COMPILED:
            lines.append(f"| {r.model} | {r.board} | {r.runtime} | {r.check} | {r.kind or '-'} | {_n(r.text)} | "
                         f"{_n(r.data)} | {_n(r.bss)} | {_n(r.flash)} | {r.arena or '-'} | {r.note} |")
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def _version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "not installed"


def header(command: str, seconds: float, rp2040js: str) -> str:
    return (f"Measured by `{command}` on {platform.machine()} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}, "
            f"in {seconds:.0f} s. Models: `make demo`'s recipe (models/recipes/demo.yaml, int4 filters) and the "
            "MLPerf Tiny KWS reference int8 `.tflite` (random inputs, as bench/aot.py converts it, no LUT). "
            f"arm-none-eabi-gcc {_version(['arm-none-eabi-gcc', '-dumpversion'])}, host gcc "
            f"{_version(['gcc', '-dumpversion'])}; TFLM: TFLM_ROOT's prebuilt libraries (Cortex-M4, Cortex-M7+FP, "
            "Cortex-M0+); AOT: the generated C at -Os with CMSIS-NN from CMSIS_NN_ROOT (QEMU boards, pico, stm32: "
            "CMSIS-NN at -O2, as TFLM's Makefile builds it; zephyr's compile check: -Os, Zephyr's default) or the "
            f"kit's portable kernels (arduino, platformio, esp-idf); pico: pico-sdk 2.2.0 Release, rp2040js {rp2040js or '-'}. "
            "Each row says what this machine did with the board (docs/boards.md).")


def _rp2040js_version() -> str:
    cache = Path(os.environ.get("TFLM_KIT_NPM_CACHE") or Path.home() / ".cache" / "tflm-kit" / "npm")
    package = Path(os.environ.get("TFLM_KIT_RP2040JS") or cache / "node_modules" / "rp2040js") / "package.json"
    return json.loads(package.read_text()).get("version", "") if package.is_file() else ""


def _environment(sdk: Path) -> None:
    for setting in ("TFLM_ROOT", "CMSIS_NN_ROOT", "TFLM_KIT_SHARED_DATA"):
        if not os.environ.get(setting):
            raise SystemExit(f"error: {setting} is not set — fix: export it (make bench sets it from ../shared)")
    pico = sdk / "pico"
    os.environ.setdefault("PICO_SDK_PATH", str(pico / "pico-sdk"))
    if (pico / "picotool/lib/cmake/picotool").is_dir():
        os.environ.setdefault("picotool_DIR", str(pico / "picotool/lib/cmake/picotool"))
    # as bench/aot.py: TFLM reserves the host's arena + margin (no device check at convert)
    os.environ["TFLM_KIT_DEVICE_CHECK"] = "off"


def load(path: Path) -> dict:
    """write()'s arguments back from boards.json (--render-only)."""
    saved = json.loads(path.read_text())
    names = {f.name for f in fields(Row)}
    return {"rows": [Row(**{k: v for k, v in row.items() if k in names}) for row in saved["rows"]],
            "header": saved["header"], "notes": saved["notes"]}


def write(rows: list[Row], header: str, notes: list[str]) -> None:
    (BENCH / "boards.md").write_text(render(rows, header, notes))
    (BENCH / "boards.json").write_text(json.dumps({"header": header, "rows": [asdict(r) | {"flash": r.flash} for r in rows],
                                                   "notes": notes}, indent=1) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(MODELS))
    parser.add_argument("--boards", default="", help="comma-separated: " + ",".join(BOARDS))
    parser.add_argument("--out", default=str(REPO / "build" / "bench-boards"))
    parser.add_argument("--render-only", action="store_true", help="re-render bench/boards.md from boards.json")
    args = parser.parse_args(argv)
    if args.render_only:
        write(**load(BENCH / "boards.json"))
        return 0
    sdk = Path(os.environ.get("TFLM_KIT_SDK") or REPO.parent / "shared" / "sdk")
    _environment(sdk)
    keys = [k for k in (args.only.split(",") if args.only else MODELS) if k]
    boards = [b for b in (args.boards.split(",") if args.boards else BOARDS) if b]
    unknown = sorted(set(keys) - set(MODELS)) + sorted(set(boards) - set(BOARDS))
    if unknown:
        raise SystemExit(f"error: unknown model(s) or board(s) {unknown} — fix: use some of "
                         f"{', '.join(MODELS)} and {', '.join(BOARDS)}")
    work, shared = Path(args.out).resolve(), Path(os.environ["TFLM_KIT_SHARED_DATA"])
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CMSIS_NN_CACHE", str(work / "cmsis-nn"))
    started, rows, notes, extra = time.perf_counter(), [], [], {"rp2040js": _rp2040js_version()}
    for key in keys:
        if key in MLPERF and not (shared / "mlperf_tiny" / MLPERF[key]).is_file():
            notes.append(f"{key}: skipped, no {shared / 'mlperf_tiny' / MLPERF[key]}")
            continue
        folder = model_dir(key, work, shared, lut=False)
        for board in boards:
            for runtime in RUNTIMES:
                rows.append(measure(Case(key, folder, board, runtime, work, sdk, extra)))
                print(f"{key} {board} {runtime}: {rows[-1].check}, flash {_n(rows[-1].flash)}", flush=True)
    command = "python -m bench.boards" + (f" --only {args.only}" if args.only else "") + \
        (f" --boards {args.boards}" if args.boards else "")
    write(rows, header(command, time.perf_counter() - started, extra["rp2040js"]), notes)
    print(f"wrote {BENCH / 'boards.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
