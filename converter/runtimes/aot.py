"""The `aot` runtime: the model compiled to plain C with no interpreter (converter/aot/).

`convert` writes the generated C into the model directory's `aot/` folder (aot_model.h/.c, the
weights, the kernels). A project built with it is C only: that folder, the golden vectors in C
(golden_vectors_c.h/.c, rendered here from golden.npz) and a self-test main that runs every golden
vector through `aot_model_invoke` and compares the bytes. On Arm cores the kernels call CMSIS-NN
directly (-DAOT_CMSIS_NN, sources from CMSIS_NN_ROOT, which the board's profile asks for); on the
host they are the kit's own portable C.

Flash is priced from the per-target code-size data of the AOT kernels (runtimes/data/, measured by
tools/regen_aot_code_size.py: each operator's kernel linked alone, shared symbols once) plus the
model's weights and parameter tables; RAM is the one static buffer the generator planned for the core.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from typing_extensions import override

import numpy as np

from ..compare.golden_format import VECTORS_FILE
from ..emit.sources import golden_vectors_c
from ..errors import KitError
from .base import Deployed, Figure, ModelSources, ProjectNeeds, Runtime, check_fits
from .facts import ModelFacts, read_model_dir

AOT_FOLDER = "aot"
HEADER = "aot_model.h"
DATA_DIR = Path(__file__).resolve().parent / "data"
REGEN = "python tools/regen_aot_code_size.py"
# the generator's names for the cores (AotProgram.buffer_bytes); a board's `core` maps onto them
AOT_CORES = {"x86_64": "host", "host": "host", "cortex-m0plus": "cortex-m0plus", "cortex-m4": "cortex-m4",
             "cortex-m7": "cortex-m7", "xtensa": "xtensa"}
PLANNED_CORES = ("host", "cortex-m0plus", "cortex-m4", "cortex-m7")    # buffer sizes a manifest lists
_BUFFER = re.compile(r"#define\s+AOT_MODEL_BUFFER_BYTES\s+\(?(\d+)u?\)?")


def aot_core(board: dict) -> str:
    """The generator's core for a board: its `aot: core:` when the profile names one (cortex-m4f boards plan
    as cortex-m4, ESP32's Xtensa as xtensa: portable kernels), else its `core`."""
    core = str(board.get("aot", {}).get("core") or board.get("core", ""))
    if core not in AOT_CORES:
        raise KitError(f"the aot runtime has no buffer plan for core '{core}' ({board['name']})",
                       f"use a board whose core is one of {', '.join(sorted(set(AOT_CORES.values())))}")
    return AOT_CORES[core]


def aot_folder(model_dir: Path) -> Path:
    folder = Path(model_dir) / AOT_FOLDER
    if not (folder / HEADER).is_file():
        raise KitError(f"{model_dir} has no {AOT_FOLDER}/{HEADER} (the interpreter-free C of the model)",
                       "convert with the aot runtime (the recipe's runtime setting: aot, or both)")
    return folder


def generate(model: bytes):
    """converter.aot.generate (a lower layer), imported on use so rendering TFLM projects stays light."""
    from ..aot import generate as generate_program

    return generate_program(model)


def cmsis_root() -> Path | None:
    """CMSIS_NN_ROOT when it names a CMSIS-NN clone: the generated code is then also checked on CMSIS-NN's C path."""
    root = os.environ.get("CMSIS_NN_ROOT")
    if root and (Path(root) / "Include" / "arm_nnfunctions.h").is_file():
        return Path(root)
    return None


def validate_backends(model: bytes, program, inputs: list, expected: list, golden: int) -> tuple:
    """The generated code built with the host compiler on the portable kernels and, with CMSIS_NN_ROOT, on
    CMSIS-NN's C path: one HostValidation each (`expected`: TFLM's outputs for `inputs`)."""
    from ..aot.validate import host_compiler, validate_on_host

    host_compiler()  # NoCompiler (a KitError naming the fix) before anything is built
    cmsis = cmsis_root()
    return tuple(validate_on_host(model, program, inputs, root, expected, golden)
                 for root in (None, *([cmsis] if cmsis else [])))


def buffer_bytes(model_dir: Path, core: str) -> int:
    """The static buffer the generator planned for `core` (scratch sizes differ between cores)."""
    return int(generate((Path(model_dir) / "model.tflite").read_bytes()).buffer_bytes(core))


@lru_cache(maxsize=None)
def code_size_table(target: str) -> dict:
    path = DATA_DIR / f"aot_code_size_{target}.json"
    if not path.is_file():
        targets = sorted(p.stem.removeprefix("aot_code_size_") for p in DATA_DIR.glob("aot_code_size_*.json"))
        raise KitError(f"no AOT code-size measurements for target '{target}'",
                       f"use one of: {', '.join(targets) or 'none yet'} (regenerate with `{REGEN}`)")
    return json.loads(path.read_text())


_CALL = re.compile(r"^\s+(aot_\w+)\(", re.M)
_ARRAY = re.compile(r"static const (\w+) (\w+)\[(\d+)\]( AOT_ALIGN16)?")
C_SIZES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4, "uint32_t": 4}


def constant_bytes(source: str) -> int:
    """Bytes of the constant arrays aot_model.c defines (weights, biases, multipliers, shifts), 16-byte
    aligned ones rounded up as the linker places them; the parameter structs are priced per call."""
    total = 0
    for ctype, _, count, aligned in _ARRAY.findall(source):
        size = int(count) * C_SIZES.get(ctype, 4)
        total += -(-size // 16) * 16 if aligned else size
    return total


def price(model: bytes, core: str, target: str, backend: str) -> Deployed:
    """Deployed flash of the generated C on `target` from the code-size data (each kernel linked alone, shared
    code once, one call site and parameter struct per operator) plus its constant arrays; RAM: its planned buffer."""
    table = code_size_table(target)["backends"][backend]
    program = generate(model)
    source = program.files["aot_model.c"]
    calls = _CALL.findall(source.split("int aot_model_invoke(", 1)[-1])
    missing = sorted({f for f in calls if f not in table["kernels"]})
    if missing:
        raise KitError(f"no AOT code-size measurement of {', '.join(missing)} for {target} ({backend})",
                       f"regenerate converter/runtimes/data with `{REGEN}` (needs arm-none-eabi-gcc)")
    seen: dict[str, int] = {}
    kernels = 0
    for function in dict.fromkeys(calls):
        kernels += table["kernels"][function]["bytes"]
        for name, size in table["kernels"][function]["shared"].items():
            kernels -= size if name in seen else 0
            seen[name] = size
    glue = sum(table["kernels"][f]["call_bytes"] for f in calls)
    data = constant_bytes(source)
    total = data + kernels + glue + table["core_bytes"]
    return Deployed("aot", target,
                    Figure(total, f"footprint data ({target}, AOT {backend} kernels linked alone) + the model's arrays"),
                    Figure(int(program.buffer_bytes(core)), f"buffer planned for {core} at generation"),
                    {"model data": data, "kernels": kernels, "calls": glue, "core": table["core_bytes"]})


@dataclass(frozen=True)
class AotBudget:
    flash_needed_bytes: int | None
    ram_needed_bytes: int
    flash_bytes: int | None
    ram_bytes: int | None
    buffer_bytes: int
    deployed: dict | None = None        # runtimes.base.Deployed as a dict, when the target has code-size data
    platform_flash_bytes: int = 0
    kernels: str = "portable"           # portable | cmsis-nn

    def as_dict(self) -> dict:
        return asdict(self)


class AotRuntime(Runtime):
    """Generated C, no interpreter: one entry point, one static buffer, CMSIS-NN or portable kernels."""
    name = "aot"
    description = "interpreter-free generated C (converter/aot), CMSIS-NN or portable kernels"

    @override
    def facts(self, model_dir: Path) -> ModelFacts:
        facts = read_model_dir(model_dir, sources=(VECTORS_FILE, "model.tflite"))
        aot_folder(model_dir)
        return facts

    @override
    def check(self, board: dict, facts: ModelFacts, model_dir: Path, boards: dict[str, dict]) -> None:
        if "aot" not in board:
            able = sorted(name for name, profile in boards.items() if "aot" in profile)
            raise KitError(f"board {board['name']} has no project template for the aot runtime",
                           f"use --runtime tflm, or one of these boards: {', '.join(able)}")

    @override
    def budget(self, board: dict, facts: ModelFacts, model_dir: Path) -> AotBudget:
        core, kernels = aot_core(board), board["aot"].get("kernels", "portable")
        buffer = buffer_bytes(model_dir, core)
        deployed = None
        if board.get("code_size"):
            deployed = price((Path(model_dir) / "model.tflite").read_bytes(), core, board["code_size"], kernels)
        platform_bytes = board.get("platform_flash_bytes", 0)
        flash_need = deployed.flash.bytes + facts.golden_bytes + platform_bytes if deployed else None
        ram_need = buffer + board.get("reserve_ram_bytes", 0)
        check_fits(facts.name, board, [
            ("flash", flash_need, board.get("flash_bytes"),
             f"generated C {deployed.flash.bytes if deployed else 0} + golden vectors {facts.golden_bytes}"
             f" + platform {platform_bytes}"),
            ("RAM", ram_need, board.get("ram_bytes"),
             f"AOT buffer {buffer} + runtime reserve {board.get('reserve_ram_bytes', 0)}")],
            "shrink the model (prune/cluster/int4, fewer golden vectors) or pick a bigger board")
        return AotBudget(flash_need, ram_need, board.get("flash_bytes"), board.get("ram_bytes"), buffer,
                         deployed.as_dict() if deployed else None, platform_bytes, kernels)

    @override
    def budget_lines(self, record: dict) -> list[str]:
        lines = []
        deployed = record.get("deployed")
        if deployed:
            have = f" of {record['flash_bytes']:,}" if record.get("flash_bytes") else ""
            parts = " + ".join(f"{name} {size:,}" for name, size in deployed["parts"].items())
            lines.append(f"flash {record['flash_needed_bytes']:,}{have} bytes: {parts} + golden vectors "
                         f"{record['golden_bytes']:,} + platform {record['platform_flash_bytes']:,}"
                         f" ({deployed['flash']['source']})")
        have = f" of {record['ram_bytes']:,}" if record.get("ram_bytes") else ""
        lines.append(f"RAM {record['ram_needed_bytes']:,}{have} bytes: AOT buffer {record['buffer_bytes']:,}"
                     f" (planned at generation, no arena margin) + reserve"
                     f" {record['ram_needed_bytes'] - record['buffer_bytes']:,}; kernels: {record['kernels']}")
        return lines

    @override
    def price(self, model: bytes, arena: Figure, target: str) -> Deployed:
        """On `target` with the back-end its boards build (CMSIS-NN on Arm cores); `arena` (TFLM's) is not used."""
        table = code_size_table(target)
        return price(model, table["aot_core"], target, table["default_backend"])

    @override
    def needs(self, board: dict) -> ProjectNeeds:
        cmsis = board.get("aot", {}).get("kernels") == "cmsis-nn"
        return ProjectNeeds(
            sources=(f"{AOT_FOLDER}/*.c", f"{AOT_FOLDER}/*.h", "golden_vectors_c.h", "golden_vectors_c.c"),
            include_dirs=(f"{board['model_dir']}/{AOT_FOLDER}", board["model_dir"],
                          *(("$(CMSIS_NN_ROOT)/Include",) if cmsis else ())),
            defines=("-DAOT_CMSIS_NN",) if cmsis else (),
            libraries=("$(CMSIS_NN_ROOT)/Source/**/*.c (minus f16/f32)",) if cmsis else (),
            settings=("CMSIS_NN_ROOT",) if cmsis else ())

    @override
    def board_facts(self, board: dict, facts: ModelFacts, model_dir: Path, measure: bool) -> ModelFacts:
        return facts  # the buffer is planned per core at generation (budget reads it)

    @override
    def emit(self, model_dir: Path, dest: Path, board: dict, facts: ModelFacts) -> list[Path]:
        """The aot/ folder as convert wrote it, golden.npz, and the golden vectors in C."""
        source, target = aot_folder(model_dir), dest / AOT_FOLDER
        target.mkdir(parents=True, exist_ok=True)
        copied = []
        for path in sorted(source.iterdir()):
            if path.is_file() and path.suffix in (".c", ".h"):
                shutil.copyfile(path, target / path.name)
                copied.append(target / path.name)
        shutil.copyfile(model_dir / VECTORS_FILE, dest / VECTORS_FILE)
        copied.append(dest / VECTORS_FILE)
        with np.load(model_dir / VECTORS_FILE) as golden:
            inputs = [golden[f"input_{i}"] for i in range(sum(k.startswith("input_") for k in golden.files))]
            outputs = [golden[f"output_{j}"] for j in range(sum(k.startswith("output_") for k in golden.files))]
        name = json.loads((model_dir / "manifest.json").read_text())["name"]
        for file_name, text in golden_vectors_c(name, inputs, outputs).items():
            (dest / file_name).write_text(text)
            copied.append(dest / file_name)
        return copied

    @override
    def template(self, board: dict) -> tuple[str, dict[str, str]]:
        return board["aot"]["template"], board["aot"]["files"]

    @override
    def context(self, board: dict, facts: ModelFacts, model_dir: Path) -> dict:
        return {"aot_kernels": board["aot"].get("kernels", "portable")}

    @override
    def record_extras(self) -> dict:
        return {}

    @override
    def model_sources(self, model: bytes, inputs: list, outputs: list) -> ModelSources:
        """The generated C in `aot/`, proven byte for byte against `outputs` (TFLM's) on the host before it is
        returned; KitError (NotCompilable names the operator) when the generator cannot compile the model or
        the code differs."""
        program = generate(model)
        checked = validate_backends(model, program, inputs, outputs, len(inputs[0]))
        failed = [v for v in checked if not v.passed]
        if failed:
            raise KitError(f"the generated AOT code differs from TFLM on the host ({failed[0].line()})",
                           "use the tflm runtime for this model (--runtime tflm), and report this with the model",
                           code="aot-differs")
        return ModelSources({f"{AOT_FOLDER}/{name}": text for name, text in program.files.items()},
                            {**program.as_dict(), "folder": AOT_FOLDER, "validated": [v.as_dict() for v in checked],
                             "bit_exact": True,
                             "buffer_bytes": {core: program.buffer_bytes(core) for core in PLANNED_CORES}},
                            (*(v.line() for v in checked), "AOT static buffer (the RAM this runtime needs): " +
                             ", ".join(f"{core} {program.buffer_bytes(core):,} B" for core in PLANNED_CORES)))

    bare_main = ("bare/aot.c.j2", "bare.c")
    model_data_note = "read-only data defined by aot_model.o (weights, biases, parameter tables)"

    @override
    def model_data_bytes(self, project: Path, elf: Path) -> int:
        from .bare import symbol_sizes

        linked = symbol_sizes(elf)  # the linker script puts .rodata in .text: nm calls it t there
        ours: set[str] = set()
        for obj in (project / "build").rglob("aot/aot_model.o"):  # not the kernels' own tables
            ours |= set(symbol_sizes(obj, "rRdD"))
        return sum(size for name, size in linked.items() if name in ours)
