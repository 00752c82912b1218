"""Regenerate converter/runtimes/data/aot_code_size_<core>.json: the AOT runtime's code size per kernel, by linking.

For each Cortex-M core and each kernel back-end (portable; cmsis-nn when CMSIS_NN_ROOT is set), this compiles
the AOT kernel sources (converter/aot/kernels/, as `convert` copies them into aot/) with the firmware's flags
(-Os, -ffunction-sections, -std=c99) and links a minimal program (arm-none-eabi-gcc --specs=nosys.specs,
--gc-sections) once with no kernel called -- the `core` -- and once per kernel function of aot_kernels.h
called alone with opaque arguments. It records
  core_bytes:  text+data of the program with no kernel (crt0, the libc it pulls in);
  kernels:     per kernel function, what the image grows by (`bytes`), the symbols it adds that other kernels add
               too (`shared`: CMSIS-NN and fixed-point helpers, counted once by runtimes/aot.py), and
               `call_bytes`: what one more call site with its own parameter struct adds (a second call, linked).
A model's price is then core + its kernels (shared once) + one call per operator + its constant arrays.

    CMSIS_NN_ROOT=../shared/sdk/cmsis-nn python tools/regen_aot_code_size.py
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from converter.runtimes.aot import DATA_DIR  # noqa: E402

KERNELS_DIR = Path(__file__).resolve().parent.parent / "converter/aot/kernels"
# target -> arm-none-eabi-gcc flags as the board profiles build it
# (the code-size data's target names are TFLM's, converter/tflm/data/, so a board's `code_size` names both)
TARGETS = {
    "cortex-m4": "-mcpu=cortex-m4+nofp -mfpu=fpv4-sp-d16 -mfloat-abi=soft -mthumb -funsigned-char",
    "cortex-m7+fp": "-mcpu=cortex-m7 -mfpu=fpv5-sp-d16 -mfloat-abi=hard -mthumb -funsigned-char",
    "cortex-m0plus": "-mcpu=cortex-m0plus -mfloat-abi=soft -mthumb -funsigned-char",
}
CFLAGS = "-std=c99 -Os -ffunction-sections -fdata-sections"
_PROTOTYPE = re.compile(r"^void (aot_\w+)\(([^)]*)\);", re.M)
_SYMBOL = re.compile(r"^([0-9a-f]+) ([0-9a-f]+) [tTdDrRwW] (\S+)$")


def _run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return done.stdout


def kernel_functions(header: str) -> dict[str, list[str]]:
    """aot_kernels.h's kernel functions -> their parameter types."""
    functions = {}
    for name, params in _PROTOTYPE.findall(header):
        functions[name] = [re.sub(r"\s*\w+$", "", p.strip()) for p in params.split(",") if p.strip()]
    return functions


def _caller(calls: list[tuple[str, list[str]]]) -> str:
    """select.c: each (function, parameter types) called with opaque arguments, one parameter struct per call."""
    lines = ['#include "aot_kernels.h"', "volatile uintptr_t g_sink;", "void select_kernels(void) {"]
    for k, (name, types) in enumerate(calls):
        args = []
        for position, ctype in enumerate(types):
            struct = re.match(r"const (aot_\w+_t)\*", ctype)
            if position == 0 and struct:
                lines.insert(2, f"static const {struct.group(1)} g_params{k} = {{{k + 1}}};")
                args.append(f"&g_params{k}")
            else:
                args.append(f"({ctype})g_sink")
        lines.append(f"  {name}({', '.join(args)});")
    return "\n".join(lines + ["}", ""])


MAIN_C = "void select_kernels(void);\nint main(void) { select_kernels(); return 0; }\n"


def _measure(elf: Path, work: Path) -> tuple[int, dict[str, int]]:
    text, data = (int(x) for x in _run(["arm-none-eabi-size", str(elf)], work).splitlines()[1].split()[:2])
    by_address: dict[str, tuple[str, int]] = {}
    for line in _run(["arm-none-eabi-nm", "-S", "--size-sort", str(elf)], work).splitlines():
        if m := _SYMBOL.match(line):
            address, size, name = m.group(1), int(m.group(2), 16), m.group(3)
            if address not in by_address or name < by_address[address][0]:
                by_address[address] = (name, size)
    return text + data, dict(by_address.values())


def measure_backend(core: str, backend: str, kernels: Path, work: Path, cmsis_root: Path | None) -> dict:
    arch = TARGETS[core].split()
    flags = [*arch, *CFLAGS.split(), f"-I{kernels}"]
    sources = sorted(kernels.glob("*.c"))
    if backend == "cmsis-nn":
        flags += ["-DAOT_CMSIS_NN", f"-I{cmsis_root / 'Include'}"]
        sources += [p for p in sorted((cmsis_root / "Source").glob("*/*.c")) if not re.search(r"_f(16|32)\.c$", p.name)]
    objects = []
    for number, source in enumerate(sources):
        obj = work / f"{number}_{source.stem}.o"
        _run(["arm-none-eabi-gcc", *flags, "-c", str(source), "-o", str(obj)], work)
        objects.append(str(obj))
    _run(["arm-none-eabi-ar", "rcs", "libaot.a", *objects], work)
    (work / "main.c").write_text(MAIN_C)
    functions = kernel_functions((kernels / "aot_kernels.h").read_text())

    def link(calls: list[tuple[str, list[str]]]) -> tuple[int, dict[str, int]]:
        (work / "select.c").write_text(_caller(calls))
        _run(["arm-none-eabi-gcc", *flags, "main.c", "select.c", "libaot.a", "--specs=nosys.specs",
              "-Wl,--gc-sections", "-o", "fw.elf"], work)
        return _measure(work / "fw.elf", work)

    core_bytes, core_symbols = link([])
    measured = {}
    for name, types in functions.items():
        once, symbols = link([(name, types)])
        twice, _ = link([(name, types), (name, types)])
        added = {n: s for n, s in symbols.items() if n not in core_symbols and not n.startswith("g_params")}
        measured[name] = (once - core_bytes, twice - once, added)
    users: dict[str, int] = {}
    for _, _, added in measured.values():
        for symbol in added:
            users[symbol] = users.get(symbol, 0) + 1
    return {"core_bytes": core_bytes, "kernels": {
        name: {"bytes": size, "call_bytes": call, "shared": {n: s for n, s in sorted(added.items()) if users[n] > 1}}
        for name, (size, call, added) in sorted(measured.items())}}


def _one_kernel_per_line(record: dict) -> str:
    lines = ['{', *(f' {json.dumps(k)}: {json.dumps(v)},' for k, v in record.items() if k != "backends"),
             ' "backends": {']
    backends = []
    for backend, table in record["backends"].items():
        rows = [f'   {json.dumps(op)}: {json.dumps(entry, separators=(",", ":"))}' for op, entry in table["kernels"].items()]
        backends.append(f'  {json.dumps(backend)}: {{"core_bytes": {table["core_bytes"]}, "kernels": {{\n'
                        + ",\n".join(rows) + "\n  }}")
    return "\n".join(lines) + "\n" + ",\n".join(backends) + "\n }\n}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", choices=sorted(TARGETS), action="append", help="default: every core")
    parser.add_argument("--kernels", type=Path, default=KERNELS_DIR, help="the AOT kernel sources")
    args = parser.parse_args()
    cmsis = Path(os.environ["CMSIS_NN_ROOT"]).resolve() if os.environ.get("CMSIS_NN_ROOT") else None
    version = subprocess.run(["arm-none-eabi-gcc", "-dumpversion"], capture_output=True, text=True).stdout.strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for core in args.core or sorted(TARGETS):
        record = {"core": core, "aot_core": core.removesuffix("+fp"), "default_backend": "cmsis-nn" if cmsis else "portable",
                  "compiler": f"arm-none-eabi-gcc {version}",
                  "flags": f"{TARGETS[core]} {CFLAGS} [-DAOT_CMSIS_NN] --specs=nosys.specs -Wl,--gc-sections",
                  "cmsis_nn": "CMSIS-NN at the commit TFLM 90b983c2 pins (4ab83cc3)" if cmsis else None,
                  "backends": {}}
        for backend in ("portable", "cmsis-nn") if cmsis else ("portable",):
            with tempfile.TemporaryDirectory() as work:
                record["backends"][backend] = measure_backend(core, backend, args.kernels.resolve(), Path(work), cmsis)
        out = DATA_DIR / f"aot_code_size_{core}.json"
        out.write_text(_one_kernel_per_line(record))
        print(f"{out}: " + ", ".join(f"{b} core {t['core_bytes']} B, {len(t['kernels'])} kernels"
                                     for b, t in record["backends"].items()))


if __name__ == "__main__":
    main()
