"""report.md: what a person reads in a minute after a conversion."""
from __future__ import annotations


def _quality(record: dict) -> str:
    quality = record.get("quality_after") or {}
    return f"{quality['eval_accuracy']:.2%}" if "eval_accuracy" in quality else "—"


def _pair_line(name: str, result: dict) -> str:
    verdict = "bit-exact" if result["equal"] == result["total"] else "DIFFERS"
    lsb = result["max_lsb"] if result["max_lsb"] is not None else result["max_abs_difference"]
    return f"| {name} | {result['equal']}/{result['total']} | {lsb} | {verdict} |"


def render_report(manifest: dict, notes: list[str] | None = None, sections: list[str] | None = None) -> str:
    """notes: one 'notes' cell per stage, each written by its stage (Stage.report_note); sections: lines
    stages add after the tables (Stage.report_section)."""
    summary = manifest["summary"]
    quality = (f"- Quality on the eval set: float {summary['float_quality']}, "
               f"{summary['mode']} on TFLM {summary['quantized_quality']}")
    if summary.get("source") == "tflite":
        quality += " (the model came as a .tflite: there is no Keras model, so no float or per-stage Keras quality)"
    lines = [
        f"# {manifest['name']}: tflm-kit conversion report",
        "",
        f"- Model: **{summary['model_bytes']:,} bytes** {summary['mode']} flatbuffer; operators: {', '.join(summary['operators'])}",
        _arena_line(manifest),
        quality,
        f"- Golden vectors: {summary['golden_vectors']} ({summary['golden_source']})",
        "",
        "## Stages",
        "",
        "| stage | seconds | quality after | sparsity after | notes |",
        "|---|---|---|---|---|",
    ]
    notes = notes if notes is not None else [""] * len(manifest["stages"])
    for record, note in zip(manifest["stages"], notes):
        sparsity = record.get("sparsity_after")
        lines.append(f"| {record['stage']} | {record['seconds']} | {_quality(record)} | "
                     f"{'' if sparsity is None else f'{sparsity:.1%}'} | {note} |")
    lines += ["", "## Bit-for-bit validation (TFLM is the reference)", "",
              "| comparison | equal vectors | max LSB | result |", "|---|---|---|---|"]
    for name, result in manifest["validation"].items():
        lines.append(_pair_line(name, result))
    lines += ["", "LiteRT's kernels are not the device's: a difference there is reported, not hidden. "
              "`tflm_vs_c_array` runs the model parsed back from `model_data.cc` and must be bit-exact.", ""]
    return "\n".join(lines + _aot_lines(manifest.get("aot")) + list(sections or []))


def _aot_lines(aot: dict | None) -> list[str]:
    """The AOT runtime's section: host validation per back-end, the static buffer per core, the plan."""
    if aot is None:
        return []
    lines = ["## AOT runtime (the model compiled to C, no interpreter: `aot/`, docs/aot.md)", "",
             "| back-end | golden vectors identical | saturating and random inputs identical | first divergence |",
             "|---|---|---|---|"]
    for v in aot["validated"]:
        lines.append(f"| {v['backend']} (host gcc) | {v['golden_identical']}/{v['golden']} | "
                     f"{v['identical'] - v['golden_identical']}/{v['vectors'] - v['golden']} | {v['divergence'] or '—'} |")
    lines += ["", "Static RAM buffer (activations + kernel scratch; inputs and outputs are the caller's arrays): " +
              ", ".join(f"{core} {size:,} B" for core, size in aot["buffer_bytes"].items()), "",
              "| offset | bytes | tensor |", "|---|---|---|"]
    lines += [f"| {e['offset']} | {e['bytes']} | {e['tensor']} |" for e in aot["plan_host"]]
    return lines + [""]


def _arena_line(manifest: dict) -> str:
    """kTensorArenaSize, the figure it comes from with its source, the host's figure only as a labelled extra."""
    summary, arena = manifest["summary"], manifest.get("arena") or {}
    source = summary.get("arena_source") or "measured on the host with TFLM's Python runtime"
    line = (f"- Tensor arena: **{summary['tensor_arena_size']:,} bytes** in `kTensorArenaSize` "
            f"({summary['arena_measured']:,} B {source} + {summary['arena_margin_percent']}% margin)")
    host, target = arena.get("host"), arena.get("target")
    if host and target and host != target:
        line += f"; host {host['core']} (TFLM's Python runtime, not the device's): {host['bytes']:,} B"
    check = manifest.get("device_check") or {}
    if check.get("core"):
        line += (f"\n- Device check: the golden self-test on {check['core']} under QEMU gave the golden outputs bit "
                 f"for bit ({check['vectors']} vectors; build + run {check['seconds']} s)")
    return line
