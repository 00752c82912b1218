"""Recognise a folder a previous tflm-kit run wrote, from the record it left, and list what it wrote.

`--force` replaces such a folder and nothing else: a folder without a record, or holding a file
its record does not name, may hold the user's own files, which the kit never deletes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import KitError
from .safe_yaml import load_json_file

# What each command leaves beside its artifacts (flows/firmware.py writes FIRMWARE_RECORD).
CONVERT_RECORD = "manifest.json"
GOLDEN_RECORD = "golden.json"
VALIDATE_RECORD = "report.json"
FIRMWARE_RECORD = ".tflm-kit-firmware.json"
SEARCH_RECORD = "search.json"  # tflm-kit optimize: its settings' fingerprint and every trial
PARTITION_RECORD = "partition.json"  # tflm-kit partition: lists every file it wrote, part0/ and part1/ included
RECORD_LIMIT = 64 * 2**20  # a record is kilobytes; do not read a huge impostor into memory


@dataclass(frozen=True)
class KitOutput:
    kind: str  # "conversion", "golden", "validation report", "firmware project", "partition", "search"
    files: frozenset[str]  # paths relative to the folder, POSIX style, the record included


def _record(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return load_json_file(path, "record", "", limit=RECORD_LIMIT)
    except KitError:
        return None


def _names(values) -> set[str] | None:
    return set(values) if isinstance(values, list) and all(isinstance(v, str) for v in values) else None


def _by_kit(record: dict | None) -> bool:
    """Every JSON record the kit writes carries tool_versions(), which names the kit."""
    return record is not None and isinstance(record.get("tools"), dict) and "tflm-kit" in record["tools"]


def _convert(folder: Path) -> KitOutput | None:
    manifest = _record(folder / CONVERT_RECORD)
    if not _by_kit(manifest) or not isinstance(manifest.get("artifacts"), list):
        return None
    files = _names([a.get("file") for a in manifest["artifacts"] if isinstance(a, dict)])
    return None if files is None else KitOutput("conversion", frozenset(files | {CONVERT_RECORD}))


def _golden(folder: Path) -> KitOutput | None:
    if not _by_kit(_record(folder / GOLDEN_RECORD)):
        return None
    return KitOutput("golden", frozenset({GOLDEN_RECORD, "golden.npz"}))


def _validation(folder: Path) -> KitOutput | None:
    if not _by_kit(_record(folder / VALIDATE_RECORD)):
        return None
    return KitOutput("validation report", frozenset({VALIDATE_RECORD, "report.md", "differences.png"}))


def _firmware(folder: Path) -> KitOutput | None:
    record = _record(folder / FIRMWARE_RECORD)
    files = _names(record.get("files")) if record is not None and "board" in record else None
    return None if files is None else KitOutput("firmware project", frozenset(files | {FIRMWARE_RECORD}))


def _partition(folder: Path) -> KitOutput | None:
    record = _record(folder / PARTITION_RECORD)
    files = _names(record.get("files")) if _by_kit(record) else None
    return None if files is None else KitOutput("partition", frozenset(files | {PARTITION_RECORD}))


def _search(folder: Path) -> KitOutput | None:
    """A search folder is continued, never replaced: only its record is listed as the kit's."""
    record = _record(folder / SEARCH_RECORD)
    if record is None or "fingerprint" not in record or not isinstance(record.get("trials"), list):
        return None
    return KitOutput("search", frozenset({SEARCH_RECORD}))


def recognise(folder: Path) -> KitOutput | None:
    """The kit output `folder` holds, by its record, or None."""
    for reader in (_convert, _firmware, _golden, _validation, _partition, _search):
        found = reader(folder)
        if found is not None:
            return found
    return None


def files_in(folder: Path) -> list[str]:
    """Every file and symlink under `folder` (not following links), relative, POSIX style."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*")
                  if path.is_symlink() or not path.is_dir())


def foreign_files(folder: Path) -> list[str] | None:
    """Files in `folder` the kit did not write; None when it is no kit output at all."""
    output = recognise(folder)
    if output is None:
        return None
    return [name for name in files_in(folder) if name not in output.files]
