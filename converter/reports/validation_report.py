"""report.json, report.md and a difference plot for `tflm-kit validate`."""
from __future__ import annotations

import json
from pathlib import Path


def _fmt(value, digits=4):
    if value is None:
        return "—"
    if isinstance(value, float):
        return "inf" if value == float("inf") else f"{value:.{digits}g}"
    return str(value)


def render_markdown(report: dict) -> str:
    model = report["model"]
    lines = [f"# Validation of {Path(model['file']).name}", "",
             f"- {model['bytes']:,} bytes, sha256 `{model['sha256'][:16]}…`; operators: "
             + ", ".join(f"{op} ×{n}" for op, n in model["operators"].items()),
             f"- Inputs: {report['data']}", "- Golden runtime: TFLM (`tflite_micro` Python runtime, reference kernels)",
             "", "## Outputs", "", "| comparison | equal vectors | differing elements | max LSB |", "|---|---|---|---|"]
    for name, result in report["outputs"].items():
        lines.append(f"| {name} | {result['equal']}/{result['total']} | {result['differing_elements']} | "
                     f"{_fmt(result['max_lsb'])} |")
    lines += ["", "## Where runtimes first differ, by operator", "",
              "Before the first differing operator every tensor is equal in both runtimes, so that operator's kernel "
              "is the cause; later differences follow from it.", "",
              "| runtime pair | kernels | operator | nodes | vectors where it is the first to differ | elements | max LSB | differences (value: count) |",
              "|---|---|---|---|---|---|---|---|"]
    for pair, result in report["operators"].items():
        for op, row in result["operators"].items():
            histogram = ", ".join(f"{k}: {v}" for k, v in row["histogram"].items()) or "—"
            lines.append(f"| {pair} | {result['kernels']} | {op} | {row['nodes']} | "
                         f"{row['vectors_first_differing']}/{row['vectors_compared']} | {row['elements_differing']} | "
                         f"{row['max_lsb']} | {histogram} |")
    if "fidelity" in report:
        per_output = report.get("fidelity_per_output") or [report["fidelity"]]
        lines += ["", "## Fidelity against the float model", "",
                  "| metric | " + " | ".join("value" if len(per_output) == 1 else f"output {j}"
                                             for j in range(len(per_output))) + " |",
                  "|---|" + "---|" * len(per_output)]
        lines += [f"| {key} | " + " | ".join(_fmt(metrics.get(key)) for metrics in per_output) + " |"
                  for key in per_output[0]]
    if report.get("per_layer_sqnr"):
        lines += ["", "## Per-layer SQNR (int8 tensor vs the Keras layer output)", "",
                  "| node | op | Keras layer | SQNR dB |", "|---|---|---|---|"]
        lines += [f"| {r['node']} | {r['op']} | {r['layer']} | {_fmt(r['sqnr_db'])} |" for r in report["per_layer_sqnr"]]
    lines += ["", f"Took {report['seconds']} s.", ""]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> bool:
    """Difference histograms per runtime pair (and per-layer SQNR when known). False if nothing to draw."""
    pairs = [(name, r) for name, r in report["operators"].items()
             if any(row["histogram"] for row in r["operators"].values())]
    layers = report.get("per_layer_sqnr") or []
    if not pairs and not layers:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(pairs) + (1 if layers else 0)
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.5), squeeze=False)
    for axis, (name, result) in zip(axes[0], pairs):
        for op, row in result["operators"].items():
            if row["histogram"]:
                values = [int(k) for k in row["histogram"]]
                axis.bar(values, list(row["histogram"].values()), label=op, alpha=0.7)
        axis.set_title(f"{name}: first differing op")
        axis.set_xlabel("LiteRT − TFLM (LSB)")
        axis.set_ylabel("elements")
        axis.legend()
    if layers:
        axis = axes[0][-1]
        finite = [min(r["sqnr_db"], 99.0) for r in layers]
        axis.bar(range(len(layers)), finite)
        axis.set_xticks(range(len(layers)), [r["layer"] for r in layers], rotation=60, ha="right", fontsize=7)
        axis.set_ylabel("SQNR dB (capped at 99)")
        axis.set_title("per-layer SQNR vs float")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def write(report: dict, folder: Path) -> None:
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / "report.md").write_text(render_markdown(report))
    plot(report, folder / "differences.png")
