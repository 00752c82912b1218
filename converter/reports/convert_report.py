"""report.md: what a person reads in a minute after a conversion."""
from __future__ import annotations


def _quality(record: dict) -> str:
    quality = record.get("quality_after") or {}
    return f"{quality['eval_accuracy']:.2%}" if "eval_accuracy" in quality else "—"


def _pair_line(name: str, result: dict) -> str:
    verdict = "bit-exact" if result["equal"] == result["total"] else "DIFFERS"
    lsb = result["max_lsb"] if result["max_lsb"] is not None else result["max_abs_difference"]
    return f"| {name} | {result['equal']}/{result['total']} | {lsb} | {verdict} |"


def render_report(manifest: dict) -> str:
    summary = manifest["summary"]
    lines = [
        f"# {manifest['name']}: tflm-kit conversion report",
        "",
        f"- Model: **{summary['model_bytes']:,} bytes** {summary['mode']} flatbuffer; operators: {', '.join(summary['operators'])}",
        f"- Tensor arena: **{summary['tensor_arena_size']:,} bytes** in `kTensorArenaSize` "
        f"({summary['arena_measured']:,} B measured on the host with TFLM + {summary['arena_margin_percent']}% margin; "
        "an upper estimate for a 32-bit MCU)",
        f"- Quality on the eval set: float {summary['float_quality']}, {summary['mode']} on TFLM {summary['quantized_quality']}",
        f"- Golden vectors: {summary['golden_vectors']} ({summary['golden_source']})",
        "",
        "## Stages",
        "",
        "| stage | seconds | quality after | sparsity after | notes |",
        "|---|---|---|---|---|",
    ]
    for record in manifest["stages"]:
        notes = ""
        if record["stage"] == "cluster":
            worst = max((row["max_unique_per_channel"] for row in record["layers"]), default=0)
            notes = f"≤ {worst} distinct values per channel"
            if record.get("notes"):
                notes += f"; {len(record['notes'])} layer(s) left as they were (no more weights per channel than clusters)"
        if record["stage"] == "compress":
            tensors = record.get("tensors") or []
            if tensors:
                bits = sorted({t.get("index_bits") for t in tensors if t.get("index_bits")})
                notes = (f"{len(tensors)} tensors LUT-compressed ({'/'.join(map(str, bits))}-bit indices), "
                         f"model {record['bytes_before']:,} → {record['bytes_after']:,} B")
            else:
                notes = record.get("note", "")
        if record["stage"] == "federated":
            from ..federated.presentation import describe_run

            notes = describe_run(record)
        if record["stage"] == "quantize":
            notes = f"{record['tflite_bytes']:,} B, {record['calibration_samples_used']} calibration samples"
        sparsity = record.get("sparsity_after")
        lines.append(f"| {record['stage']} | {record['seconds']} | {_quality(record)} | "
                     f"{'' if sparsity is None else f'{sparsity:.1%}'} | {notes} |")
    for record in (r for r in manifest["stages"] if r["stage"] == "federated"):
        from ..federated.presentation import rounds_table

        lines += rounds_table(record)
    lines += ["", "## Bit-for-bit validation (TFLM is the reference)", "",
              "| comparison | equal vectors | max LSB | result |", "|---|---|---|---|"]
    for name, result in manifest["validation"].items():
        lines.append(_pair_line(name, result))
    lines += ["", "LiteRT's kernels are not the device's: a difference there is reported, not hidden. "
              "`tflm_vs_c_array` runs the model parsed back from `model_data.cc` and must be bit-exact.", ""]
    return "\n".join(lines)
