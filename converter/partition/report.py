"""partition.json, report.md and partition.png: every cut's costs, the choice, and how it was checked."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from ..reports.manifest import tool_versions
from .graph import GraphView

METHOD = ("instructions: each operator's instructions measured once per core on QEMU with the chosen runtime's "
          "firmware of the whole model (mps2-an386 for Cortex-M4, mps2-an500 for Cortex-M7; -icount shift=0, SysTick "
          "at 25 MHz = 40 instructions per tick; median over the golden vectors; tflm: TFLM's profiler, aot: the "
          "generated code's aot_trace hook after every operator, a RESHAPE alias 0) and summed over a part's "
          "operators, plus the per-invoke overhead (TFLM: the interpreter's); ms = instructions / clock (one "
          "instruction per cycle assumed: no wait states, no dual issue); flash: per core after this sentence; "
          "RAM (tflm) = measured arena + 10% + the firmware's other RAM and 16 KB stack; with another runtime flash and "
          "RAM are that runtime's price on the core's code-size data (aot: its kernels, constant arrays and planned "
          "buffer) + the board profile's platform flash and stack reserve (each part's memory_source says which); "
          "+ the receive buffer on part 1; link = (cut bytes + 12 B frame) / link rate (UART 8N1: baud / 10 bytes/s)")


def tensor_label(view: GraphView, tensor: int) -> str:
    """A short, unique name for a tensor: its index and the operator that writes it."""
    producer = view.producer().get(tensor)
    op = next((o.name for o in view.ops if o.index == producer), "input")
    return f"t{tensor}({op}#{producer})"


def record(source, view, cuts, splits, costs, chosen, devices, link, request, measured, runtime: str) -> dict:
    skipped = measured.get("skipped") if isinstance(measured, dict) else None
    return {
        "name": source.name,
        "tools": tool_versions(),
        "devices": [asdict(d) for d in devices],
        "link": asdict(link),
        "objective": request.objective,
        "cut_requested": request.cut,
        "golden_vectors": int(len(source.inputs[0])), "golden_source": source.golden_source,
        "cuts": [{"label": f"cut {k}", "tensors": [tensor_label(view, t) for t in c.tensors],
                  "tensor_names": [view.tensor_names[t] for t in c.tensors], "part0_operators": list(c.head),
                  "link_bytes": s.link_bytes, "bit_exact_vectors": f"{len(source.inputs[0])}/{len(source.inputs[0])}"}
                 for k, (c, s) in enumerate(zip(cuts, splits))],
        "bit_exact": "every cut: part 0 then part 1 on TFLM gave the whole model's outputs byte for byte, and part 0 "
                     "the whole model's tensors at the cut, on every golden vector",
        "costs": [c.as_dict() for c in costs],
        "costs_skipped": skipped,
        "method": METHOD,
        "flash_method": None if skipped else {core: m.footprint.method if m.footprint else
                                              f"the {runtime} runtime's: each part's memory_source"
                                              for core, m in measured.items()},
        "runtime": runtime,
        "chosen": None if chosen is None else chosen.as_dict(),
        "operator_instructions": {} if skipped else
        {core: [asdict(op) for op in m.operators] for core, m in measured.items()},
    }


def pair_record(result, chosen) -> dict:
    summed = [p["instructions"] for p in chosen.as_dict()["parts"]] if chosen else [None, None]
    return {"pass": result.ok, "passed": result.passed, "total": result.total, "errors": result.errors,
            "golden_differences": result.golden_differences, "link_bytes_relayed": result.link_bytes,
            "instructions_measured": list(result.instructions), "instructions_summed": summed,
            "images": [None if size is None else {"text": size.text, "data": size.data, "bss": size.bss,
                                                  "flash": size.flash, "static_ram": size.static_ram}
                       for size in result.images]}


def _row(c: dict) -> str:
    parts = c["parts"]
    cells = [f"{p['flash_bytes']:,} / {p['ram_bytes']:,} / "
             f"{'%s cycles (Vela)' % format(p['cycles'], ',') if p['instructions'] is None else format(p['instructions'], ',')}"
             f" / {p['ms']:.2f}" for p in parts]
    if len(cells) == 1:
        cells.append("—")
    over = "; ".join(f"{b} +{n:,} B" for b, n in c["over_budget"]) or "yes"
    energy = "—" if c["energy_mj"] is None else f"{c['energy_mj']:.3f}"
    return (f"| {c['label']} | {', '.join(c['tensor_names']) or '—'} | {c['link_bytes']:,} | {c['link_ms']:.2f} | "
            f"{cells[0]} | {cells[1]} | **{c['latency_ms']:.2f}** | {c['balance_ms']:.2f} | "
            f"{energy} | {over} |")


def render(rec: dict) -> str:
    d0, d1 = rec["devices"]
    lines = [f"# {rec['name']}: partition over {d0['name']} ({d0['core']} @ {d0['mhz']:g} MHz) and "
             f"{d1['name']} ({d1['core']} @ {d1['mhz']:g} MHz), link {rec['link']['kind']} "
             f"{rec['link']['bytes_per_s']:,.0f} B/s", ""]
    chosen = rec["chosen"]
    if chosen:
        lines += [f"- Chosen ({'--cut ' + rec['cut_requested'] if rec['cut_requested'] != 'auto' else 'auto, objective ' + rec['objective']}): "
                  f"**{chosen['label']}** sending {', '.join(chosen['tensor_names'])}: {chosen['link_bytes']:,} B per "
                  f"inference, end-to-end {chosen['latency_ms']:.2f} ms"]
        if not chosen["fits"]:
            lines += ["- **The requested cut does not fit**: " + "; ".join(f"{b} by {n:,} bytes" for b, n in chosen["over_budget"])]
        fastest = min((c for c in rec["costs"] if c["fits"]), key=lambda c: c["latency_ms"], default=None)
        if fastest and not fastest["tensors"] and fastest["latency_ms"] < chosen["latency_ms"]:
            lines += [f"- Running {fastest['label'].removeprefix('whole on ')} alone is faster "
                      f"({fastest['latency_ms']:.2f} ms, the input sent over the link when it is the second device): "
                      "splitting pays when the model does not fit one device or the link is fast"]
    lines += [f"- Valid cuts: {len(rec['cuts'])}; {rec['bit_exact']} ({rec['golden_source']}).",
              f"- Runtime: **{rec.get('runtime', 'tflm')}**. part0/ and part1/ hold the chosen cut's model directories "
              f"(`tflm-kit firmware --runtime {rec.get('runtime', 'tflm')} --model-dir`)."]
    if chosen:
        lines += [f"- Part {k} on {p['device']}: flash {p['flash_bytes']:,} B, RAM {p['ram_bytes']:,} B with the "
                  f"{p['runtime']} runtime ({p['memory_source']})" for k, p in enumerate(chosen["parts"])]
    if "pair" in rec:
        p = rec["pair"]
        lines += [f"- Two-QEMU pair ({d0['core']} → {d1['core']}, UART frames with length + CRC-32): "
                  f"**{'PASS' if p['pass'] else 'FAIL'} {p['passed']}/{p['total']}** bit-identical to the whole model; "
                  f"{p['link_bytes_relayed']:,} B relayed; instructions per inference measured "
                  f"{p['instructions_measured']} vs summed per operator {p['instructions_summed']}"]
        lines += [f"- Part {k}'s pair firmware ({rec.get('runtime', 'tflm')} runtime, self-test and link included), "
                  f"measured with arm-none-eabi-size: program {image['flash']:,} B, static RAM {image['static_ram']:,} B"
                  for k, image in enumerate(p.get("images") or []) if image]
    if rec.get("channel_partitioning"):
        lines += ["", "## Channel partitioning (priced, not emitted)", "",
                  f"One CONV_2D's output channels split in halves: {d0['name']} computes one, {d1['name']} the other "
                  "after receiving the conv's input, and sends its half back for a CONCATENATION; the rest of the "
                  "model runs on " + d0["name"] + ". Each rewrite was run on TFLM against the whole model. A half's "
                  "instructions are estimated as the conv's measured count times its share of the channels.", "",
                  "| conv (operator) | channels | bit-exact on TFLM | conv alone ms | conv split ms | model latency ms | "
                  "beats the chosen cut |", "|---|---|---|---|---|---|---|"]
        lines += [f"| #{p['operator']} | {p['channels']} | {'yes' if p['bit_exact'] else 'NO'} | {p['op_ms_alone']:.2f} | "
                  f"{p['op_ms_split']:.2f} | {p['latency_ms']:.2f} | {'yes' if p['wins'] else 'no'} |"
                  for p in rec["channel_partitioning"]]
    if "npu" in rec:
        lines += ["", "## Ethos-U (Vela estimates)", "", f"**{rec['npu']['note']}.**", "",
                  "| part | device | accelerator | cycles (total / NPU) | SRAM B | flash B | Vela .tflite B | "
                  "ethos-u ops | CPU-fallback ops |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {e['part']} | {e['device']} | {e['accelerator']} | {e['cycles_total']:,} / {e['cycles_npu']:,} | "
                  f"{e['sram_bytes']:,} | {e['flash_bytes']:,} | {e['model_bytes']:,} | {e['npu_operators']} | "
                  f"{', '.join(e['cpu_operators']) or 'none'} |" for e in rec["npu"]["estimates"]]
    if rec["costs_skipped"]:
        lines += ["", f"Costs not measured: {rec['costs_skipped']}.", ""]
        return "\n".join(lines)
    lines += ["", "## Every cut", "",
              f"Part cells: flash B / RAM B / instructions / ms, all for the {rec.get('runtime', 'tflm')} runtime. "
              f"Budgets: {d0['name']} {d0['flash_bytes']:,} B flash, "
              f"{d0['ram_bytes']:,} B RAM; {d1['name']} {d1['flash_bytes']:,} B flash, {d1['ram_bytes']:,} B RAM.", "",
              "| cut | tensors crossing | link B | link ms | part 0 | part 1 | latency ms | period ms | energy mJ | fits |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_row(c) for c in rec["costs"]]
    flash = "; ".join(f"{core}: {text}" for core, text in (rec["flash_method"] or {}).items())
    lines += ["", f"How: {rec['method']}. {flash}.", "", "![latency and link bytes along the graph](partition.png)", ""]
    return "\n".join(lines)


def plot(costs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cuts = [c for c in costs if c.tensors]
    x = list(range(len(cuts)))
    figure, left = plt.subplots(figsize=(max(6, len(cuts) * 0.5), 4))
    left.plot(x, [c.latency_ms for c in cuts], "o-", color="tab:blue", label="end-to-end latency")
    for whole, style in zip([c for c in costs if not c.tensors], ("--", ":")):
        left.axhline(whole.latency_ms, linestyle=style, color="gray", label=whole.label)
    left.set_ylabel("latency (ms)")
    left.set_xticks(x, [c.label.removeprefix("cut ") for c in cuts])
    left.set_xlabel("cut (in order along the graph; partition.json names the tensors)")
    right = left.twinx()
    right.bar(x, [c.link_bytes for c in cuts], alpha=0.25, color="tab:orange", label="link bytes")
    right.set_ylabel("bytes across the link")
    left.set_zorder(right.get_zorder() + 1)  # the latency line over the bars
    left.patch.set_visible(False)
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    left.legend(handles=handles, loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write(folder: Path, rec: dict, costs) -> None:
    """report.md, partition.png, then partition.json naming every file written (so --force can replace them)."""
    from ..system.kit_outputs import PARTITION_RECORD, files_in

    (folder / "report.md").write_text(render(rec))
    if costs:
        plot(costs, folder / "partition.png")
    rec["files"] = files_in(folder) + [PARTITION_RECORD]
    (folder / PARTITION_RECORD).write_text(json.dumps(rec, indent=2) + "\n")
