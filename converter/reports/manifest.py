"""manifest.json: every artifact with its size and sha256, the tools, and what each stage did."""
from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Optional

from ..compare.outputs import bit_exact
from ..stages.base import StageRecord
from ..tflite.model import ModelInfo
from ..tflm.target_arena import ArenaFigure

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
    """Every file the run wrote, sub-folders (the AOT sources in aot/) included, by POSIX relative path."""
    files = sorted((path.relative_to(folder).as_posix(), path) for path in folder.rglob("*") if path.is_file())
    return [{"file": name, "bytes": path.stat().st_size, "sha256": sha256(path.read_bytes())}
            for name, path in files if name != "manifest.json"]


def write_manifest(folder: Path, content: dict) -> dict:
    manifest = {"artifacts": describe_files(folder), **content}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


@dataclass(frozen=True)
class ConversionParts:
    """Everything a conversion's manifest says, typed; `content()` lays it out as manifest.json."""

    name: str
    recipe: dict
    model_bytes: int
    model_sha256: str
    info: ModelInfo
    arena_measured: int
    arena_size: int
    arena_margin: float
    host: str
    stages: list[StageRecord]
    validation: dict
    golden_vectors: int
    golden_source: str
    mode: str
    float_accuracy: Optional[float]       # None: not measured (no labels, or a .tflite source)
    quantized_accuracy: Optional[float]
    source: str = "keras"                 # "tflite" when the recipe's model is a .tflite file
    arena_figure: Optional[ArenaFigure] = None  # where arena_measured comes from (the target's, or the host's)
    arena_host: Optional[ArenaFigure] = None    # TFLM's Python runtime on this host: a labelled extra
    device_check: Optional[dict] = None         # runtimes/device_check.DeviceCheck.as_dict(), when it ran
    kernels: dict = field(default_factory=dict)  # op -> type of the specialised kernel model_ops.h registers

    rewrites: tuple = ()                  # automatic flatbuffer fixes (flows/flatbuffer_fixes.py), as dicts
    litert_differences: Optional[dict] = None  # where LiteRT's reference kernels part from TFLM, when they do
    aot: Optional[dict] = None            # the AOT runtime's result (flows/convert_aot.AotResult.as_dict())

    def _arena_note(self) -> str:
        if self.arena_figure is not None and self.arena_figure.kind == "derived":
            return (f"{self.arena_figure.source}: the smallest arena (a multiple of 16) TFLM's allocator needs there, "
                    "from AllocateTensors replayed with 32-bit structs, CMSIS-NN's scratch and the greedy plan "
                    "(tflm/derived_arena.py); a device check (TFLM_ROOT, arm-none-eabi-gcc, qemu-system-arm) measures it")
        if self.arena_figure is not None and self.arena_figure.on_device:
            return (f"{self.arena_figure.source}: the smallest arena (a multiple of 16) that allocates and invokes the "
                    "model there (arena_used_bytes() misses what kernels take while they prepare)")
        return (f"measured with TFLM's Python runtime on {self.host} (64-bit pointers, reference kernels): not a "
                "device figure; a device check (TFLM_ROOT, arm-none-eabi-gcc, qemu-system-arm) measures the target's")

    def content(self, seconds: Optional[float] = None) -> dict:
        summary = {
            "model_bytes": self.model_bytes, "operators": list(self.info.operators),
            "arena_measured": self.arena_measured, "tensor_arena_size": self.arena_size,
            "arena_margin_percent": round(self.arena_margin * 100),
            "arena_source": self.arena_figure.source if self.arena_figure else f"host {self.host}",
            "float_quality": _percent(self.float_accuracy), "quantized_quality": _percent(self.quantized_accuracy),
            "mode": self.mode, "golden_vectors": self.golden_vectors, "golden_source": self.golden_source,
            "bit_exact_on_tflm": bit_exact(self.validation["tflm_vs_c_array"]),
        }
        if self.source != "keras":
            summary["source"] = self.source
        if any(record.get("trained_federated") for record in self.stages):
            summary["trained_federated"] = True
        if self.aot is not None:
            summary["aot_bit_exact"] = self.aot["bit_exact"]
            summary["aot_buffer_bytes"] = self.aot["buffer_bytes"]
        extra: dict = {"rewrites": list(self.rewrites)} if self.rewrites else {}
        if self.litert_differences is not None:
            extra["litert_differences"] = self.litert_differences
        return {
            "name": self.name,
            "tools": tool_versions(),
            "recipe": self.recipe,
            "model": {"bytes": self.model_bytes, "sha256": self.model_sha256,
                      "operators": self.info.operator_counts, "kernels": self.kernels,
                      "inputs": [t.as_dict() for t in self.info.inputs],
                      "outputs": [t.as_dict() for t in self.info.outputs]},
            "arena_bytes": self.arena_measured,
            "tensor_arena_size": self.arena_size,
            "arena_note": self._arena_note(),
            "arena": {"target": self.arena_figure.as_dict() if self.arena_figure else None,
                      "host": self.arena_host.as_dict() if self.arena_host else None,
                      "reserved": self.arena_size, "margin": self.arena_margin},
            "device_check": self.device_check or {"ran": False},
            "stages": [record.as_dict() for record in self.stages],
            **extra,
            "validation": self.validation,
            **({"aot": self.aot} if self.aot is not None else {}),
            "summary": summary,
            "seconds": seconds,
        }


def _percent(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.2%}"
