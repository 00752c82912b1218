"""manifest.json: every artifact with its size and sha256, the tools, and what each stage did."""
from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

TOOLS = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "tflite-micro", "ai-edge-litert", "numpy")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tool_versions() -> dict:
    from .. import __version__

    versions = {"tflm-kit": __version__, "python": platform.python_version()}
    for tool in TOOLS:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            versions[tool] = None
    return versions


def describe_files(folder: Path) -> list[dict]:
    return [{"file": path.name, "bytes": path.stat().st_size, "sha256": sha256(path.read_bytes())}
            for path in sorted(folder.iterdir()) if path.is_file() and path.name != "manifest.json"]


def write_manifest(folder: Path, content: dict) -> dict:
    manifest = {"artifacts": describe_files(folder), **content}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest
