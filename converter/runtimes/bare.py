"""What a model costs an application: the project linked without its self-test, measured by the linker.

The self-test image carries the golden vectors, printf and semihosting. `measure_bare` links the same
project's model and runtime objects with a minimal main (one inference, nothing printed) and the least
start-up code (firmware_templates/bare/), then reads text/data/bss with arm-none-eabi-size and the model's
constant data with arm-none-eabi-nm, so `code` = flash minus the model's data (the flatbuffer for TFLM;
weights, biases and parameter tables for the generated C). Emulated Cortex-M projects only.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import KitError, foreign_text
from .boards import RECORD_NAME, load_board
from ..system.elf_size import image_size
from .registry import get_runtime
from .render import template_env
from .run import build_settings

BARE_ELF = "bare.elf"


@dataclass(frozen=True)
class BareImage:
    """The program without self-test, golden vectors or stdio, as linked for the board's core."""
    flash_bytes: int          # text + data
    static_ram_bytes: int     # data + bss (the arena or the AOT buffer included)
    model_data_bytes: int     # the model's constant data in that flash (nm)
    how: str

    @property
    def code_bytes(self) -> int:
        """Flash minus the model's data: the runtime, the kernels and the start-up code."""
        return self.flash_bytes - self.model_data_bytes

    def as_dict(self) -> dict:
        return {**asdict(self), "code_bytes": self.code_bytes}


def symbol_sizes(path: Path, kinds: str = "") -> dict[str, int]:
    """name -> size of the symbols `arm-none-eabi-nm -S` lists in an object or image (of the given kinds)."""
    listed = subprocess.run(["arm-none-eabi-nm", "-S", str(path)], capture_output=True, text=True)
    sizes = {}
    for line in listed.stdout.splitlines():
        fields = line.split()
        if len(fields) == 4 and (not kinds or fields[2] in kinds):
            sizes[fields[3]] = int(fields[1], 16)
    return sizes


def measure_bare(project: Path, tflm_root: str | None = None) -> BareImage:
    """Render the bare main into an emulated-board project, link bare.elf and measure it."""
    project = Path(project).resolve()
    record = json.loads((project / RECORD_NAME).read_text())
    board = load_board(record["board"])
    if board.get("runs_on") != "qemu":
        raise KitError(f"measuring the program without its self-test needs an emulated Cortex-M board, not "
                       f"{record['board']}", "render the model for cortex-m-qemu, cortex-m7-qemu or cortex-m0plus-qemu")
    runtime = get_runtime(record.get("runtime", "tflm"))
    template, source = runtime.bare_main
    env = template_env()
    ctx = dict(record, board=board, model_prefix="" if board["model_dir"] == "." else "model/", bare_source=source)
    (project / source).write_text(env.get_template(template).render(ctx))
    (project / "bare.mk").write_text(env.get_template("bare/bare.mk.j2").render(ctx))
    made = subprocess.run(["make", "-f", "Makefile", "-f", "bare.mk", *build_settings(record, tflm_root), BARE_ELF],
                          cwd=project, capture_output=True, text=True)
    size = image_size(project / BARE_ELF) if made.returncode == 0 else None
    if size is None:
        raise KitError(f"linking {project / BARE_ELF} failed: {foreign_text(made.stderr or made.stdout, tail=True)}",
                       f"run make -C {project} -f Makefile -f bare.mk bare.elf to see why")
    data = runtime.model_data_bytes(project, project / BARE_ELF)
    return BareImage(size.flash, size.static_ram, data,
                     f"arm-none-eabi-size {BARE_ELF} (make -f Makefile -f bare.mk {BARE_ELF}); model data: "
                     f"arm-none-eabi-nm -S, {runtime.model_data_note}")
