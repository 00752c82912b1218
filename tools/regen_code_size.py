"""Regenerate converter/tflm/data/code_size_<core>.json: TFLM's code size per kernel, measured by linking.

For each Cortex-M library under TFLM_ROOT/gen/ this links a minimal program (GetModel,
MicroInterpreter, AllocateTensors, Invoke) once with no operator registered -- the runtime
core -- and once per MicroMutableOpResolver method with only that operator registered, with
the firmware's flags (-Os, -ffunction-sections, --gc-sections). It records
  core_bytes:  text+data of the program with no operator (interpreter, allocator, libc it pulls in);
  kernels:     per operator, text+data the program grows by (`bytes`), and the symbols (name, size)
               it adds that other kernels add too (`shared`: CMSIS-NN helpers, reference
               quantization utilities), so converter/tflm/footprint.py counts those once;
  and the same per type-specialised registration the generated resolver uses (converter/tflm/kernels.py),
  keyed "<OP>/<TYPE>" (e.g. "CONV_2D/INT8": `AddConv2D(tflite::Register_CONV_2D_INT8())` alone).
Needs arm-none-eabi-gcc; takes about two minutes per target.

    python tools/regen_code_size.py --tflm-root ../shared/tflm
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from converter.tflm.kernels import KERNEL_HEADERS  # noqa: E402
from converter.tflm.ops import CUSTOM_METHODS, RESOLVER_METHODS  # noqa: E402
from converter.tflm.resolver_header import find_resolver_header, resolver_methods  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent.parent / "converter/tflm/data"
# core name -> (library folder under gen/, compiler flags that match how it was built)
TARGETS = {
    "cortex-m4": ("cortex_m_generic_cortex-m4_default_cmsis_nn_gcc",
                  "-mcpu=cortex-m4+nofp -mfloat-abi=soft -mthumb"),
    "cortex-m7+fp": ("cortex_m_generic_cortex-m7+fp_default_cmsis_nn_gcc",
                     "-mcpu=cortex-m7 -mfpu=fpv5-sp-d16 -mfloat-abi=hard -mthumb"),
    "cortex-m0plus": ("cortex_m_generic_cortex-m0plus_default_cmsis_nn_gcc",
                      "-mcpu=cortex-m0plus -mfloat-abi=soft -mthumb"),
}
DEFINES = "-DTF_LITE_STATIC_MEMORY -DTF_LITE_MCU_DEBUG_LOG -DCMSIS_NN -DKERNELS_OPTIMIZED_FOR_SPEED"
CXXFLAGS = "-Os -ffunction-sections -fdata-sections -std=c++17 -fno-rtti -fno-exceptions -fno-threadsafe-statics"

CORE_CC = """#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
extern "C" void RegisterSelected(void* resolver);
extern "C" const unsigned char g_model[] = {0};
alignas(16) static uint8_t arena[1024];
int main() {
  static tflite::MicroMutableOpResolver<1> resolver;
  RegisterSelected(&resolver);
  static tflite::MicroInterpreter interpreter(tflite::GetModel(g_model), resolver, arena, sizeof arena);
  if (interpreter.AllocateTensors() != kTfLiteOk) return 1;
  return interpreter.Invoke() == kTfLiteOk ? 0 : 2;
}
"""
_SYMBOL = re.compile(r"^([0-9a-f]+) ([0-9a-f]+) [tTdDrRwW] (\S+)$")


def _run(cmd: str, cwd: Path) -> str:
    done = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: {cmd}\n{done.stderr[-2000:]}")
    return done.stdout


def _measure(elf: str, cwd: Path) -> tuple[int, dict[str, int]]:
    text, data = (int(x) for x in _run(f"arm-none-eabi-size {elf}", cwd).splitlines()[1].split()[:2])
    # Aliases (soft-float __aeabi_fmul = __mulsf3, C1/C2 constructors) share an address: one
    # entry per address, named by the smallest alias so every link names it the same way.
    by_address: dict[str, tuple[str, int]] = {}
    for line in _run(f"arm-none-eabi-nm -S --size-sort {elf}", cwd).splitlines():
        if m := _SYMBOL.match(line):
            address, size, name = m.group(1), int(m.group(2), 16), m.group(3)
            if address not in by_address or name < by_address[address][0]:
                by_address[address] = (name, size)
    symbols = dict(by_address.values())
    return text + data, symbols


def specialised(root: Path) -> list[str]:
    """'AddConv2D/Register_CONV_2D_INT8' for every type-specialised registration TFLM declares for the
    operators converter/tflm/kernels.py chooses them for."""
    found = []
    for op, header in KERNEL_HEADERS.items():
        text = (root / "tensorflow/lite/micro/kernels" / header).read_text()
        for name in sorted(set(re.findall(rf"TFLMRegistration\s+(Register_{op}_(?:INT8|INT4|INT16|INT8_INT16))\s*\(\s*\)",
                                          text))):
            found.append(f"{RESOLVER_METHODS[op]}/{name}")
    return found


def all_methods(root: Path) -> list[str]:
    """Every method the tables price, in the order they are compiled (the one program's layout depends on it)."""
    methods = [m for m in resolver_methods(find_resolver_header(root).read_text())
               if m != "AddEthosU"]  # registers nothing in a non-Ethos-U build
    return methods + specialised(root)


def _symbol(method: str) -> str:
    return method.replace("/", "_")


def _call(method: str) -> str:
    """AddConv2D() or AddConv2D(tflite::Register_CONV_2D_INT8())."""
    add, _, registration = method.partition("/")
    return f"{add}(tflite::{registration}())" if registration else f"{add}()"


def _key(method: str, op_of: dict[str, str]) -> str:
    """The table's key: CONV_2D, or CONV_2D/INT8 for a specialised registration."""
    add, _, registration = method.partition("/")
    op = op_of.get(add, add)
    return f"{op}/{registration.removeprefix(f'Register_{op}_')}" if registration else op


def measure_target(root: Path, core: str, methods: list[str], work: Path, only: list[str] | None = None) -> dict:
    """Measure `core` and each of `methods` (or just those in `only`; the program is the same either way)."""
    lib_dir, arch = TARGETS[core]
    lib = root / "gen" / lib_dir / "lib/libtensorflow-microlite.a"
    downloads = root / "tensorflow/lite/micro/tools/make/downloads"
    includes = f"-I{root} -I{downloads}/flatbuffers/include -I{downloads}/gemmlowp"
    (work / "core.cc").write_text(CORE_CC)
    (work / "ops.cc").write_text('#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n' + "".join(
        f'extern "C" void Reg_{_symbol(m)}(void* r) {{ static_cast<tflite::MicroMutableOpResolver<1>*>(r)->{_call(m)}; }}\n'
        for m in methods))
    compile_cxx = f"arm-none-eabi-g++ {arch} {CXXFLAGS} {DEFINES} {includes} -c"
    _run(f"{compile_cxx} core.cc -o core.o && {compile_cxx} ops.cc -o ops.o", work)

    def link(method: str | None) -> tuple[int, dict[str, int]]:
        call = f"void Reg_{_symbol(method)}(void*); void RegisterSelected(void* r) {{ Reg_{_symbol(method)}(r); }}" \
            if method \
            else "void RegisterSelected(void* r) { (void)r; }"
        (work / "select.c").write_text(call + "\n")
        _run(f"arm-none-eabi-gcc {arch} -Os -c select.c -o select.o && arm-none-eabi-g++ {arch} -Wl,--gc-sections "
             f"--specs=nosys.specs core.o select.o ops.o {lib} -lm -o fw.elf", work)
        return _measure("fw.elf", work)

    core_bytes, core_symbols = link(None)
    op_of = {m: op for op, m in {**RESOLVER_METHODS, **CUSTOM_METHODS}.items()}
    measured = {}
    for method in only or methods:
        total, symbols = link(method)
        measured[method] = (total - core_bytes, {n: s for n, s in symbols.items() if n not in core_symbols})
    # Compiler-local names (anonymous-namespace Eval, CSWTCH tables) repeat across objects with
    # different code: never treat them as shared, so the sum errs high, not low.
    measured = {m: (size, {n: s for n, s in added.items() if "_GLOBAL__N_" not in n and not n.startswith("CSWTCH")})
                for m, (size, added) in measured.items()}
    users: dict[str, int] = {}
    for _, added in measured.values():
        for name in added:
            users[name] = users.get(name, 0) + 1
    kernels = {_key(m, op_of): {"method": _call(m) if "/" in m else m, "bytes": size,
                                 "shared": {n: s for n, s in sorted(added.items()) if users[n] > 1}}
               for m, (size, added) in measured.items()}
    version = _run("arm-none-eabi-gcc -dumpversion", work).strip()
    return {"core": core, "tflm_library": f"gen/{lib_dir}/lib/libtensorflow-microlite.a",
            "compiler": f"arm-none-eabi-gcc {version}", "flags": f"{arch} {CXXFLAGS} {DEFINES} -Wl,--gc-sections",
            "core_bytes": core_bytes, "kernels": dict(sorted(kernels.items()))}


def _one_kernel_per_line(record: dict) -> str:
    """Readable diffs when TFLM is bumped: a line per kernel instead of one per symbol."""
    head = {k: v for k, v in record.items() if k != "kernels"}
    lines = [f"  {json.dumps(op)}: {json.dumps(entry, separators=(',', ':'))}" for op, entry in record["kernels"].items()]
    return json.dumps(head, indent=1)[:-2] + ',\n "kernels": {\n' + ",\n".join(lines) + "\n }\n}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflm-root", type=Path, default=Path("../shared/tflm"))
    parser.add_argument("--core", choices=sorted(TARGETS), action="append", help="default: every target")
    args = parser.parse_args()
    methods = all_methods(args.tflm_root)
    for core in args.core or sorted(TARGETS):
        with tempfile.TemporaryDirectory() as work:
            record = measure_target(args.tflm_root.resolve(), core, methods, Path(work))
        out = DATA_DIR / f"code_size_{core}.json"
        out.write_text(_one_kernel_per_line(record))
        print(f"{out}: core {record['core_bytes']} B, {len(record['kernels'])} kernels")


if __name__ == "__main__":
    main()
