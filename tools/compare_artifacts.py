"""Compare two conversion outputs file by file: byte-identical, except the wall-clock figures.

    python tools/compare_artifacts.py build/before build/after

manifest.json is compared without any timing field (and without report.md's hash, which prints the
stage seconds); report.md without the stage seconds column and the device check's "build + run N s".
Subfolders (aot/) are compared file by file too. Exit 0 when everything else is identical.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path


def without_timings(value):
    if isinstance(value, dict) and value.get("file") == "report.md":
        return {}
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if "second" not in k}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def same(name: str, first: bytes, second: bytes) -> bool:
    if name == "manifest.json":
        return without_timings(json.loads(first)) == without_timings(json.loads(second))
    if name == "report.md":
        untimed = [re.sub(r"build \+ run [0-9.]+ s", "build + run - s",
                          re.sub(r"^\| (\w+) \| [0-9.]+ \|", r"| \1 | - |", text.decode(), flags=re.M))
                   for text in (first, second)]
        return untimed[0] == untimed[1]
    return first == second


def main(before: Path, after: Path) -> int:
    names = sorted({p.relative_to(before) for p in before.rglob("*") if p.is_file()} |
                   {p.relative_to(after) for p in after.rglob("*") if p.is_file()})
    failed = 0
    for name in names:
        if not (before / name).is_file() or not (after / name).is_file():
            print(f"MISSING    {name}")
            failed += 1
            continue
        first, second = (before / name).read_bytes(), (after / name).read_bytes()
        verdict = same(name.name, first, second)
        failed += not verdict
        print(f"{'same' if verdict else 'DIFFERENT':10} {name}  {hashlib.sha256(second).hexdigest()[:16]}")
    print("identical apart from timings" if not failed else f"{failed} file(s) differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
