"""One shape for every runtime a converted model can be deployed with.

A runtime (TFLM's MicroInterpreter, the interpreter-free generated C of converter/aot/) answers the
same questions for `firmware`, `flash`, `optimize`, `partition` and the reports, so none of them
branches on its name:

- `facts`: what the model directory holds for me (KitError when my sources are missing);
- `check`: can this board build this model with me (operators, sources, settings)? KitError if not;
- `budget`: flash and RAM the firmware needs on the board, checked against its budget;
- `price`: the deployed flash and RAM of a model on a target (a code-size data name: cortex-m4,
  cortex-m7+fp, cortex-m0plus), each figure saying where it comes from, with no toolchain;
- `needs`: what a firmware project needs (sources, include dirs, defines, libraries, settings);
- `board_facts`: the facts as this board's core sees them (TFLM: the arena measured on that core);
- `emit`: copy the model's sources into a project;
- `template`: the board's template folder and files for this runtime;
- `model_sources`: the sources this runtime adds to a model directory beside TFLM's reference artifacts,
  proven against the golden vectors (`partition` writes each part with it).

A third runtime is one module implementing `Runtime` and one row in runtimes/__init__.py's table.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from .facts import ModelFacts


@dataclass(frozen=True)
class Figure:
    """A byte count and where it comes from (target, measured or derived, and how)."""
    bytes: int
    source: str


@dataclass(frozen=True)
class Deployed:
    """What one runtime costs on one target core: flash (text+data) and static RAM."""
    runtime: str
    target: str
    flash: Figure
    ram: Figure
    parts: dict[str, int] = field(default_factory=dict)   # where the flash goes (model, kernels, core, ...)

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        parts = " + ".join(f"{name} {size:,}" for name, size in self.parts.items())
        return (f"{self.runtime} on {self.target}: flash {self.flash.bytes:,} B ({parts}; {self.flash.source}), "
                f"RAM {self.ram.bytes:,} B ({self.ram.source})")


@dataclass(frozen=True)
class ProjectNeeds:
    """What a firmware project built with this runtime needs beside the model's own sources."""
    sources: tuple[str, ...]          # files copied from the model directory into the project's model folder
    include_dirs: tuple[str, ...]     # as the project's build file writes them
    defines: tuple[str, ...]
    libraries: tuple[str, ...]
    settings: tuple[str, ...] = ()    # environment settings the build reads (TFLM_ROOT, CMSIS_NN_ROOT)


@dataclass(frozen=True)
class ModelSources:
    """What a runtime adds to a model directory beside TFLM's artifacts (which every model directory has:
    TFLM is the reference), already checked against the directory's golden vectors."""
    files: dict[str, str] = field(default_factory=dict)     # path inside the model directory -> text
    record: dict = field(default_factory=dict)              # the manifest's section for this runtime
    lines: tuple[str, ...] = ()                              # what was checked, one line each


class Budget(Protocol):
    """Flash and RAM a rendered project needs on its board (each runtime has its own breakdown)."""
    @property
    def flash_needed_bytes(self) -> int | None: ...

    @property
    def ram_needed_bytes(self) -> int: ...

    def as_dict(self) -> dict: ...


class Runtime(Protocol):
    name: str
    description: str

    def facts(self, model_dir: Path) -> ModelFacts: ...

    def check(self, board: dict, facts: ModelFacts, model_dir: Path, boards: dict[str, dict]) -> None: ...

    def budget(self, board: dict, facts: ModelFacts, model_dir: Path) -> Budget: ...

    def budget_lines(self, record: dict) -> list[str]: ...

    def price(self, model: bytes, arena: Figure, target: str) -> Deployed: ...

    def needs(self, board: dict) -> ProjectNeeds: ...

    def board_facts(self, board: dict, facts: ModelFacts, model_dir: Path, measure: bool) -> ModelFacts: ...

    def emit(self, model_dir: Path, dest: Path, board: dict, facts: ModelFacts) -> list[Path]: ...

    def template(self, board: dict) -> tuple[str, dict[str, str]]: ...

    def context(self, board: dict, facts: ModelFacts, model_dir: Path) -> dict: ...

    def record_extras(self) -> dict: ...

    def model_sources(self, model: bytes, inputs: list, outputs: list) -> ModelSources: ...

    # the program without its self-test (runtimes/bare.py): its main's template and file name, and the
    # model's constant data in the linked image
    bare_main: tuple[str, str]
    model_data_note: str

    def model_data_bytes(self, project: Path, elf: Path) -> int: ...


def check_fits(name: str, board: dict, checks: list[tuple[str, int | None, int | None, str]], fix: str) -> None:
    """KitError for the first (kind, needed, available, breakdown) that does not fit the board."""
    from ..errors import KitError

    for kind, need, have, parts in checks:
        if have is not None and need is not None and need > have:
            raise KitError(
                f"'{name}' does not fit {kind} on {board['name']} ({board['mcu']}): needs"
                f" {need} bytes ({parts}) but the board has {have}, {need - have} bytes too many", fix)
