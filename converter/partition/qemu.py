"""Build and run partition firmware on QEMU's Arm MPS2 boards.

The projects are the cortex-m-qemu board's (Makefile, startup, linker script, model sources)
with main.cc replaced by a template of firmware_templates/cortex-m-qemu-pair/: per-operator
profiling, part 0 (sender) or part 1 (receiver). A Cortex-M7 device runs the same project built
against TFLM's cortex-m7+fp library on QEMU's mps2-an500 (Cortex-M7; same memory map).
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import KitError, foreign_text
from ..runtimes.boards import RECORD_NAME, load_board
from ..runtimes import render as board_render
from ..runtimes.registry import get_runtime
from ..runtimes.run import build_settings

PAIR_TEMPLATES = "cortex-m-qemu-pair"
# -icount shift=0 runs one guest instruction per virtual ns; MPS2's SysTick counts at 25 MHz.
INSTRUCTIONS_PER_TICK = 40
TIMEOUT_S = 600


@dataclass(frozen=True)
class QemuCore:
    machine: str
    tflm_target: str
    arch: str


# core -> the emulated board profile whose machine, TFLM library and compiler flags build it
BOARDS = {"cortex-m4": "cortex-m-qemu", "cortex-m7": "cortex-m7-qemu"}


def qemu_core(core: str) -> QemuCore:
    """QEMU machine, TFLM library and -mcpu/-mfloat-abi flags of `core`, from its board profile."""
    board = load_board(BOARDS[core])
    return QemuCore(board["qemu_machine"], board["tflm_target"], f"{board['arch_flags']} -funsigned-char")


def missing_tools(tflm_root: str | None, needs_tflm: bool = True) -> str | None:
    """Why QEMU firmware cannot be built and run here, or None when it can (needs_tflm: False for a runtime whose
    firmware does not link TFLM's library, the interpreter-free one)."""
    if needs_tflm and not tflm_root:
        return "TFLM_ROOT is not set (a TFLM tree with the cortex_m_generic libraries built)"
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "make"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def pair_template(runtime: str, role: str) -> tuple[str, str]:
    """The template that replaces the runtime's main for `role` (part0, part1, profile) and the file it writes:
    the cortex-m-qemu board's main template for that runtime, prefixed with the role (TFLM: part0_main.cc.j2
    over main.cc; the interpreter-free runtime: part0_main.c.j2 over main.c)."""
    _, files = get_runtime(runtime).template(load_board("cortex-m-qemu"))
    template, main = next((t, d) for t, d in files.items() if Path(d).stem == "main")
    return f"{PAIR_TEMPLATES}/{role}_{Path(template).name}", main


def render_project(model_dir: Path, out: Path, role: str, runtime: str = "tflm") -> Path:
    """A cortex-m-qemu project for `model_dir` with `runtime`, whose main is the pair template of `role`, plus link.h."""
    board_render.render_project("cortex-m-qemu", model_dir, out, force=True, runtime=runtime, measure=False)
    record = json.loads((out / RECORD_NAME).read_text())
    env = board_render.template_env()
    board = load_board("cortex-m-qemu")
    chosen = get_runtime(runtime)
    ctx = dict(record, board=board, model_prefix="model/",
               **chosen.context(board, chosen.facts(Path(model_dir)), Path(model_dir)))
    template, main = pair_template(runtime, role)
    (out / main).write_text(env.get_template(template).render(ctx))
    (out / "link.h").write_text(env.get_template(f"{PAIR_TEMPLATES}/link.h.j2").render(ctx))
    return out


def build(project: Path, core: str, tflm_root: str | None, defines: tuple[str, ...] = ()) -> Path:
    """Build the rendered project for `core` (the cortex-m-qemu project with that core's flags and TFLM library,
    which an interpreter-free project ignores) with the settings its runtime reads (TFLM_ROOT, CMSIS_NN_ROOT);
    `defines` (-DNAME) go to every compilation with the core's flags."""
    spec = qemu_core(core)
    settings = build_settings(json.loads((project / RECORD_NAME).read_text()), tflm_root)
    # CMSIS-NN compiled once per core (an AOT project's archive; its Makefile names the folder after the board's
    # core, cortex-m4, whatever ARCH says): one folder per core built here, under CMSIS_NN_CACHE when it is set
    cmsis_cache = Path(os.environ.get("CMSIS_NN_CACHE") or project / "build" / "cmsis-nn") / core
    made = subprocess.run(["make", "-s", *settings, f"TFLM_TARGET={spec.tflm_target}", f"ARCH={' '.join((spec.arch, *defines))}",
                           f"CMSIS_NN_CACHE={cmsis_cache}", "fw.elf"], cwd=project, capture_output=True, text=True)
    if made.returncode != 0:
        tail = foreign_text(made.stderr or made.stdout, tail=True)
        raise KitError(f"building {project} for {core} failed: {tail}", f"run make -C {project} to see why")
    return project / "fw.elf"


def qemu_command(elf: Path, core: str, serial: str | None = None) -> list[str]:
    command = ["qemu-system-arm", "-M", qemu_core(core).machine, "-display", "none", "-monitor", "none",
               "-icount", "shift=0", "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    if serial:
        command[1:1] = ["-chardev", serial, "-serial", "chardev:link"]
    else:
        command[1:1] = ["-serial", "none"]
    return command


def run(elf: Path, core: str) -> str:
    try:
        done = subprocess.run(qemu_command(elf, core), capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise KitError(f"QEMU did not finish {elf} within {TIMEOUT_S} s", "check the firmware's loop") from None
    return done.stdout + done.stderr


@dataclass(frozen=True)
class OperatorCost:
    index: int
    op: str
    instructions: int     # median over the golden vectors


# The profile build's hook: the interpreter-free code calls aot_trace() after every operator (TFLM's profile
# attaches a MicroProfiler instead and ignores it).
PROFILE_DEFINES = ("-DAOT_TRACE",)


def profile_operators(model_dir: Path, core: str, workdir: Path, tflm_root: str | None, runtime: str = "tflm",
                      kinds: list[str] | None = None) -> tuple[list[OperatorCost], int]:
    """Instructions per operator (and for the whole invoke) of the model in `model_dir` on `core` with `runtime`.
    kinds: every operator's kind by index; an operator that runs no code of its own (the generated code's RESHAPE
    alias; a DECODE, counted with the operator it decodes for) then counts 0."""
    project = render_project(model_dir, workdir / f"profile-{core}", "profile", runtime)
    text = run(build(project, core, tflm_root, PROFILE_DEFINES), core)
    per_op: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    totals = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[0] == "OPTICKS":
            per_op.setdefault(int(fields[2]), []).append(int(fields[4]))
            names[int(fields[2])] = fields[3]
        elif len(fields) == 3 and fields[0] == "TICKS":
            totals.append(int(fields[2]))
    if not totals or "PASS" not in text or (kinds is None and not per_op):
        raise KitError(f"profiling the model on QEMU ({core}) failed: {foreign_text(text, tail=True)}",
                       f"run {project} by hand: make TFLM_ROOT=... && make run")
    indices = range(len(kinds)) if kinds is not None else sorted(per_op)
    costs = [OperatorCost(i, kinds[i] if kinds is not None else names[i],
                          int(statistics.median(per_op[i])) * INSTRUCTIONS_PER_TICK if i in per_op else 0)
             for i in indices]
    return costs, int(statistics.median(totals)) * INSTRUCTIONS_PER_TICK


def tflm_root_from_env() -> str | None:
    return os.environ.get("TFLM_ROOT")
