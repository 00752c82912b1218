"""Regenerate converter/tflm/data/port_ops.json: the operators each board's TFLM copy can register.

Reads `micro_mutable_op_resolver.h` of every port under ../shared/sdk/ports/ (the TFLM copies
the arduino, platformio, esp-idf, zephyr and pico templates build against) and of the TFLM
tree the host, QEMU and stm32 templates link (../shared/tflm, as port "tflite-micro"). The
repository and commit of each port come from the table in ../shared/sdk/README.md.

    python tools/regen_port_ops.py --ports ../shared/sdk/ports --tflm-root ../shared/tflm
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from converter.tflm.resolver_header import find_resolver_header, operators_of, resolver_methods  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "converter/tflm/data/port_ops.json"
UPSTREAM = "tensorflow/tflite-micro @ 90b983c2 (the commit the templates name)"
_REGISTRATION = re.compile(r"(?:TFLM|TfLite)Registration\s+(Register_[A-Z0-9_]+_(?:INT8|INT4|INT16|INT8_INT16))\s*\(\s*\)")
_ROW = re.compile(r"^\|\s*`ports/([^`]+)`\s*\|\s*([^|]+?)\s*\|")


def port_sources(readme: Path) -> dict[str, str]:
    """Folder -> 'owner/repo @ commit (date)' from the README's table; empty when there is none."""
    if not readme.is_file():
        return {}
    return {m.group(1): m.group(2).split(", layout")[0] for line in readme.read_text().splitlines()
            if (m := _ROW.match(line))}


def describe(root: Path, source: str) -> dict:
    header = find_resolver_header(root)
    methods = resolver_methods(header.read_text())
    kernels = header.parent / "kernels"
    declared = sorted({name for path in kernels.glob("*.h") for name in _REGISTRATION.findall(path.read_text())})
    return {"source": source, "header": header.relative_to(root).as_posix(), "operators": operators_of(methods),
            "registrations": declared}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=Path, default=Path("../shared/sdk/ports"))
    parser.add_argument("--tflm-root", type=Path, default=Path("../shared/tflm"))
    args = parser.parse_args()
    sources = port_sources(args.ports.parent / "README.md")
    ports = {"tflite-micro": describe(args.tflm_root, UPSTREAM)}
    for folder in sorted(p for p in args.ports.iterdir() if p.is_dir()):
        ports[folder.name] = describe(folder, sources.get(folder.name, "unknown commit"))
    OUT.write_text(json.dumps({"ports": ports}, indent=1) + "\n")
    for name, port in ports.items():
        print(f"{name}: {len(port['operators'])} operators ({port['source']})")


if __name__ == "__main__":
    main()
