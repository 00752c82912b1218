"""What every runtime needs to know about a converted model directory, read from its manifest.

The facts come from the converter's manifest.json (docs/artifacts.md), not from the generated
headers, so each runtime (runtimes/tflm.py, runtimes/aot.py) checks and prices the same numbers.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import KitError

MODEL_SOURCES = ("model_data.h", "model_data.cc", "model_ops.h", "model_settings.h",
                 "golden_vectors.h", "golden_vectors.cc")


@dataclass(frozen=True)
class ModelFacts:
    """What rendering and the checks need about a converted model."""
    name: str
    model_bytes: int
    arena_bytes: int          # kTensorArenaSize: the measured arena plus the recipe's margin
    arena_measured_bytes: int
    input_count: int
    output_count: int
    golden_count: int
    golden_bytes: int
    operators: list[str] = field(default_factory=list)
    uncompressed_model_bytes: int | None = None  # the int8 model before LUT compression, if any
    decoded_tensor_bytes: int | None = None      # LUT models: the largest weight tensor DECODE writes to the arena
    kernel_variants: dict[str, str] = field(default_factory=dict)  # op -> type of its specialised kernel (tflm/kernels.py)
    arena_source: str = ""                       # where arena_measured_bytes comes from (ArenaFigure.source)
    arena: dict = field(default_factory=dict)    # the manifest's "arena": target and host ArenaFigure dicts
    arena_margin: float = 0.10

    def as_dict(self) -> dict:
        return asdict(self)


def _tensor_bytes(tensor: dict) -> int:
    return int(np.prod(tensor["shape"])) * np.dtype(tensor["type"]).itemsize


def read_model_dir(model_dir: Path, sources: tuple[str, ...] = MODEL_SOURCES) -> ModelFacts:
    """The model's facts from manifest.json; KitError when the folder is not `convert`'s output (or lacks
    the `sources` the runtime copies into a project)."""
    model_dir = Path(model_dir)
    missing = [f for f in (*sources, "manifest.json") if not (model_dir / f).is_file()]
    if missing:
        raise KitError(f"{model_dir} is missing {', '.join(missing)}",
                       "point at the --out directory of `tflm-kit convert`")
    try:
        manifest = json.loads((model_dir / "manifest.json").read_text())
        model = manifest["model"]
        golden_count = int(manifest["summary"]["golden_vectors"])
        compress: dict = next((s for s in manifest.get("stages", []) if s.get("stage") == "compress"), {})
        return ModelFacts(
            name=manifest["name"], model_bytes=int(model["bytes"]),
            arena_bytes=int(manifest["tensor_arena_size"]), arena_measured_bytes=int(manifest["arena_bytes"]),
            input_count=len(model["inputs"]), output_count=len(model["outputs"]), golden_count=golden_count,
            golden_bytes=golden_count * sum(_tensor_bytes(t) for t in model["inputs"] + model["outputs"]),
            operators=list(model["operators"]), uncompressed_model_bytes=compress.get("bytes_before"),
            decoded_tensor_bytes=compress.get("largest_decoded_tensor_bytes"),
            kernel_variants=_kernel_variants(model_dir, model),
            arena_source=str(manifest["summary"].get("arena_source", "measured on the host")),
            arena=manifest.get("arena") or {},
            arena_margin=float((manifest.get("arena") or {}).get(
                "margin", manifest["summary"].get("arena_margin_percent", 10) / 100)))
    except (ValueError, KeyError, TypeError) as error:
        raise KitError(f"{model_dir / 'manifest.json'} is not a manifest tflm-kit can read ({error!r:.120})",
                       "re-run `tflm-kit convert` to regenerate the model directory") from None


def _kernel_variants(model_dir: Path, model: dict) -> dict[str, str]:
    """From the manifest (model.kernels), or read from model.tflite for a folder converted before it had them."""
    if isinstance(model.get("kernels"), dict):
        return {str(op): str(v) for op, v in model["kernels"].items()}
    tflite = model_dir / "model.tflite"
    if not tflite.is_file():
        return {}
    from ..tflm.kernels import registered_variants

    return registered_variants(tflite.read_bytes())
