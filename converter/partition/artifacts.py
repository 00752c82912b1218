"""One part's model directory: the same artifact set `tflm-kit convert` writes (docs/artifacts.md),
so `tflm-kit firmware --model-dir partN` renders it like any converted model."""
from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from ..emit.sources import render_all
from ..compare.golden_format import VECTORS_FILE, save_vectors
from ..reports.manifest import sha256, tool_versions, write_manifest
from ..runtimes.base import ModelSources
from ..tflite.model import ModelInfo, read_model
from ..tflm.arena import ARENA_MARGIN, arena_with_margin, first_sample, measure_arena



@dataclass(frozen=True)
class PartModel:
    """A part's model and its golden vectors (inputs and outputs as (N, ...) arrays)."""
    name: str
    model: bytes
    inputs: list
    outputs: list

    @property
    def info(self) -> ModelInfo:
        return read_model(self.model)


def arena_of(model: bytes, info: ModelInfo, inputs: list) -> int:
    return measure_arena(model, first_sample(inputs, info))


def write_part_dir(folder: Path, part: PartModel, arena_measured: int, record: dict,
                   labels: list | None = None, margin: float = ARENA_MARGIN,
                   runtime: tuple[str, ModelSources] = ("tflm", ModelSources())) -> None:
    """Fill `folder` (a staging folder) with the part's model, C/C++ sources, golden vectors and manifest.
    `runtime`: the runtime the part is written for and the sources it adds (the AOT runtime's aot/ folder,
    already proven against the part's golden vectors); TFLM's artifacts are always written (the reference)."""
    info = part.info
    arena_size = arena_with_margin(arena_measured, margin)
    model_sha = sha256(part.model)
    if labels and len(labels) != info.outputs[0].elements:
        labels = None  # part 0's outputs are feature maps, not classes
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.tflite").write_bytes(part.model)
    sources = render_all(part.name, "model.tflite", part.model, model_sha, info, arena_measured, arena_size,
                         margin, labels, part.inputs, part.outputs, host=platform.machine())
    for file_name, text in sources.items():
        (folder / file_name).write_text(text)
    name, added = runtime
    for path, text in added.files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    save_vectors(folder / VECTORS_FILE, part.inputs, part.outputs)
    (folder / "report.md").write_text(_part_report(part, info, arena_measured, arena_size, record, runtime))
    write_manifest(folder, {
        "name": part.name, "tools": tool_versions(),
        "model": {"bytes": len(part.model), "sha256": model_sha, "operators": info.operator_counts,
                  "inputs": [t.as_dict() for t in info.inputs], "outputs": [t.as_dict() for t in info.outputs]},
        "arena_bytes": arena_measured, "tensor_arena_size": arena_size,
        "arena_note": f"measured with TFLM's Python runtime on {platform.machine()} (64-bit pointers)",
        "partition": record, "runtime": name, **({name: added.record} if added.record else {}),
        # the same summary keys `convert` writes, so `firmware` reads a part like any model directory
        "summary": {"model_bytes": len(part.model), "operators": list(info.operators), "arena_measured": arena_measured,
                    "tensor_arena_size": arena_size, "golden_vectors": int(len(part.inputs[0])),
                    "golden_source": "the whole model's tensors at the cut"},
    })


def _part_report(part: PartModel, info: ModelInfo, arena: int, arena_size: int, record: dict,
                 runtime: tuple[str, ModelSources]) -> str:
    def shapes(tensors) -> str:
        return ", ".join(f"{list(t.shape)} {t.type.lower()} (scale {t.scale}, zero point {t.zero_point})"
                         for t in tensors)

    return "\n".join([
        f"# {part.name}: part {record['part']} of a partitioned model",
        "",
        f"- Model: **{len(part.model):,} bytes**; operators: {', '.join(info.operators)}",
        f"- Runtime: {runtime[0]}" + "".join(f"; {line}" for line in runtime[1].lines),
        f"- TFLM tensor arena: {arena_size:,} bytes in `kTensorArenaSize` ("
        + (f"Vela's SRAM estimate {arena:,} B for the NPU's feature maps; {record['npu_note']}" if "vela" in record
           else f"{arena:,} B measured on the host with TFLM") + ")",
        f"- Inputs: {shapes(info.inputs)}",
        f"- Outputs: {shapes(info.outputs)}",
        f"- Golden vectors: {len(part.inputs[0])}, the whole model's tensors at the cut "
        f"(whole model run on TFLM with the cut tensors as extra outputs)",
        f"- Cut: {record['cut']}",
        "",
    ])
