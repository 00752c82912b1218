"""What `firmware` checks before rendering: the board's TFLM port can run the model, and it fits.

The facts about the model come from the converter's manifest.json (docs/artifacts.md), not
from the generated headers. Flash is counted as measured TFLM code (converter/tflm/footprint.py:
core + the kernels of the model's operators) + the model + the golden vectors + the board's
platform code (its OS/SDK: an estimate the profile states); RAM as the tensor arena + the
board's RAM reserve.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import KitError
from ..recipe import C_KEYWORDS, IDENTIFIER
from ..system.safe_yaml import load_json_file
from ..tflm.footprint import Footprint, deployed_flash
from ..tflm.ports import load_port

MODEL_SOURCES = ("model_data.h", "model_data.cc", "model_ops.h", "model_settings.h",
                 "golden_vectors.h", "golden_vectors.cc")
DECODE = "TFLM_DECODE"


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


def is_c_name(name) -> bool:
    """A model name read back from a record (manifest, firmware record) before it reaches a file name, a
    template or a build command: a C identifier, as the recipe requires when it is first given."""
    return isinstance(name, str) and len(name) <= 128 and bool(IDENTIFIER.match(name)) and name not in C_KEYWORDS


def read_model_dir(model_dir: Path) -> ModelFacts:
    """The model's facts from manifest.json; KitError when the folder is not `convert`'s output."""
    model_dir = Path(model_dir)
    missing = [f for f in (*MODEL_SOURCES, "manifest.json") if not (model_dir / f).is_file()]
    if missing:
        raise KitError(f"{model_dir} is missing {', '.join(missing)}",
                       "point at the --out directory of `tflm-kit convert`")
    try:
        manifest = load_json_file(model_dir / "manifest.json", "manifest",
                                  "re-run `tflm-kit convert` to regenerate the model directory")
        model = manifest["model"]
        if not is_c_name(manifest["name"]):
            raise KitError(f"{model_dir / 'manifest.json'} has a model name that is not a C identifier",
                           "re-run `tflm-kit convert` to regenerate the model directory", code="manifest-name")
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


def _port_variants(board: dict, facts: ModelFacts) -> dict[str, str]:
    """The specialised kernels the board's TFLM copy declares (the others are priced as generic)."""
    declared = load_port(board["port"]).registrations
    return {op: v for op, v in facts.kernel_variants.items()
            if declared is None or f"Register_{op}_{v}" in declared}


def check_port(board: dict, facts: ModelFacts, other_boards: dict[str, dict]) -> None:
    """KitError naming the missing operators and the alternatives when the board's TFLM port lacks some."""
    port = load_port(board["port"])
    missing = port.missing(facts.operators)
    if not missing:
        return
    able = sorted(name for name, profile in other_boards.items()
                  if not load_port(profile["port"]).missing(facts.operators))
    fixes = (["an uncompressed model (convert without `compress: {lut: true}`)"] if DECODE in missing else
             ["a model without those operators"])
    fixes.append(f"another board: {', '.join(able)}" if able else "no bundled board has them all")
    raise KitError(f"'{facts.name}' uses {', '.join(missing)}, which {board['name']}'s TFLM ({port.name}, "
                   f"{port.source}) does not have", "use " + " or ".join(fixes))


@dataclass(frozen=True)
class Budget:
    flash_needed_bytes: int | None
    ram_needed_bytes: int
    flash_bytes: int | None
    ram_bytes: int | None
    footprint: Footprint | None       # None on the host (no flash budget)
    platform_flash_bytes: int = 0
    lut_image_delta_bytes: int | None = None  # LUT models: image size minus the uncompressed model's image

    def as_dict(self) -> dict:
        return asdict(self)


def check_budget(board: dict, facts: ModelFacts) -> Budget:
    """Flash and RAM the firmware needs on this board; KitError when either does not fit."""
    variants = _port_variants(board, facts)
    footprint = deployed_flash(facts.model_bytes, facts.operators, board["code_size"],
                               variants) if board.get("code_size") else None
    platform = board.get("platform_flash_bytes", 0)
    flash_need = footprint.total + facts.golden_bytes + platform if footprint else None
    ram_need = facts.arena_bytes + board.get("reserve_ram_bytes", 0)
    checks = [("RAM", ram_need, board.get("ram_bytes"),
               f"tensor arena {facts.arena_bytes} + runtime reserve {board.get('reserve_ram_bytes', 0)}")]
    if footprint:
        checks.insert(0, ("flash", flash_need, board.get("flash_bytes"),
                          f"model {facts.model_bytes} + TFLM kernels {footprint.runtime - footprint.core}"
                          f" + TFLM core {footprint.core} + golden vectors {facts.golden_bytes}"
                          f" + platform {platform}"))
    for kind, need, have, parts in checks:
        if have is not None and need > have:
            raise KitError(
                f"'{facts.name}' does not fit {kind} on {board['name']} ({board['mcu']}): needs"
                f" {need} bytes ({parts}) but the board has {have}, {need - have} bytes too many",
                "shrink the model (prune/cluster/int8, fewer golden vectors) or pick a bigger board")
    delta = None
    if footprint and facts.uncompressed_model_bytes and DECODE in facts.operators:
        plain = deployed_flash(facts.uncompressed_model_bytes, [op for op in facts.operators if op != DECODE],
                               board["code_size"], variants)  # the same kernels as the LUT model's, less DECODE
        delta = footprint.total - plain.total
    return Budget(flash_needed_bytes=flash_need, ram_needed_bytes=ram_need, flash_bytes=board.get("flash_bytes"),
                  ram_bytes=board.get("ram_bytes"), footprint=footprint, platform_flash_bytes=platform,
                  lut_image_delta_bytes=delta)
