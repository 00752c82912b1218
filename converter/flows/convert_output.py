"""The end of a conversion: bit-for-bit validation of the rendered artifacts, and the staged write.

Every check runs on the staged folder before it replaces --out, so a failed check leaves --out as
it was (converter/system/outdir.py).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..compare.outputs import bit_exact, compare_outputs
from ..emit.c_arrays import parse_c_array
from ..errors import KitError
from ..compare.golden_format import VECTORS_FILE, save_vectors
from ..reports.convert_report import render_report
from ..reports.deployed import DeployedComparison
from ..runtimes.base import Figure
from ..runtimes.registry import price_all
from ..reports.manifest import ConversionParts, write_manifest
from ..system.outdir import staged_output
from ..tflm.runners import run_litert, run_tflm


def validate_artifacts(model_bytes: bytes, inputs, golden, c_source: str, name: str,
                       uncompressed: Optional[bytes] = None) -> dict:
    """TFLM on the model parsed back from the C array, and LiteRT's reference and optimized kernels,
    against the golden outputs. uncompressed: the model before the flatbuffer stages changed it; LiteRT
    has no TFLM_DECODE kernel, so LiteRT runs it, and TFLM must give it the golden outputs bit for bit."""
    from_c = parse_c_array(c_source, f"g_{name}_model_data")
    if from_c != model_bytes:
        raise KitError("model_data.cc does not hold the same bytes as model.tflite (emitter bug)",
                       "report this with the recipe that produced it")
    litert_bytes = uncompressed or model_bytes
    validation = {"tflm_vs_c_array": compare_outputs(golden, run_tflm(from_c, inputs))}
    if uncompressed is not None:
        validation["tflm_vs_tflm_uncompressed"] = compare_outputs(
            golden, run_tflm(uncompressed, inputs))
    return validation | {
        "tflm_vs_litert_reference": compare_outputs(golden, run_litert(litert_bytes, inputs, reference_kernels=True)),
        "tflm_vs_litert_optimized": compare_outputs(golden, run_litert(litert_bytes, inputs, reference_kernels=False)),
    }


def check_validation(validation: dict, out: Path) -> None:
    """The checks a conversion must pass; they run before the staged output replaces --out."""
    for pair, problem, fix in (
            ("tflm_vs_c_array", "the model read back from model_data.cc gave different TFLM outputs",
             "report this with the recipe that produced it"),
            ("tflm_vs_tflm_uncompressed", "the LUT-compressed model gave different TFLM outputs than the "
             "uncompressed one on the golden vectors", "remove the compress step")):
        result = validation.get(pair)
        if result is not None and not bit_exact(result):
            raise KitError(f"{problem} ({result['equal']}/{result['total']} vectors equal); {out} was left as it was",
                           fix)


def check_and_write(out: Path, model_bytes: bytes, sources: dict[str, str], inputs: list[np.ndarray],
                    golden: list[np.ndarray], parts: ConversionParts, stages, started: float,
                    deployed: Optional[DeployedComparison] = None,
                    aot_files: Optional[dict[str, str]] = None) -> dict:
    """Write every artifact into a staging folder, check, then move it to `out`; returns the manifest.
    `stages` (flows.convert.StagesRun) gives the stages' report notes, sections and extra files;
    `aot_files` the AOT runtime's sources (already checked on the host), written to aot/."""
    with staged_output(Path(out)) as staging:
        (staging / "model.tflite").write_bytes(model_bytes)
        if aot_files:
            (staging / "aot").mkdir()
            for file_name, text in aot_files.items():
                (staging / "aot" / file_name).write_text(text)
        for file_name, text in sources.items():
            (staging / file_name).write_text(text)
        save_vectors(staging / VECTORS_FILE, inputs, golden)
        for file_name, data in stages.artifacts.items():
            (staging / file_name).write_bytes(data)
        content = parts.content(seconds=round(time.perf_counter() - started, 1))
        # a compressed model: its deployed flash and arena next to the uncompressed int8 model's (the CLI prints them)
        if deployed is not None:
            content["deployed"] = deployed.as_dict()
        arena = content["arena"]["target"] or content["arena"]["host"] or {}
        figures, notes = price_all(model_bytes, Figure(parts.arena_measured, arena.get("source") or "measured"))
        content["runtimes_deployed"] = {"figures": [f.as_dict() for f in figures], "notes": notes}
        (staging / "report.md").write_text(render_report(content, stages.notes, stages.sections))
        manifest = write_manifest(staging, content)
        check_validation(parts.validation, out)
    return manifest
