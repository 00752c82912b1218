"""Board profiles: firmware_templates/boards/<board>.yaml, and where the templates live.

A board is a data file plus a template folder per runtime: the profile's `template` and `files`
render the TFLM project (cortex-m7-qemu renders cortex-m-qemu for another core); a board that
can run the interpreter-free runtime has an `aot:` section with its own `template` and `files`.
Everything that renders, prices or runs firmware reads boards through here (runtimes/ sits below
flows/, optimize/ and partition/, which all need them).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import KitError


def _templates_dir() -> Path:
    """firmware_templates/ beside the package in a checkout, inside it in an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    beside = package.parent / "firmware_templates"
    return beside if beside.is_dir() else package / "firmware_templates"


TEMPLATES_DIR = _templates_dir()
BOARDS_DIR = TEMPLATES_DIR / "boards"
RECORD_NAME = ".tflm-kit-firmware.json"


def list_boards() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


def load_board(board: str) -> dict:
    path = BOARDS_DIR / f"{board}.yaml"
    if not path.is_file():
        raise KitError(f"unknown board '{board}'", f"use one of: {', '.join(list_boards())}")
    profile = yaml.safe_load(path.read_text())
    profile.setdefault("template", board)
    return profile


def all_boards() -> dict[str, dict]:
    return {name: load_board(name) for name in list_boards()}


def board_budget(name: str) -> dict | None:
    """A board's core (without the FPU suffix), flash and RAM, for the partitioner's device profiles."""
    path = BOARDS_DIR / f"{name}.yaml"
    if not path.is_file():
        return None
    board = yaml.safe_load(path.read_text())
    return {"core": str(board.get("core", "")).removesuffix("f"), "flash_bytes": board.get("flash_bytes"),
            "ram_bytes": board.get("ram_bytes")}
