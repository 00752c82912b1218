"""`tflm-kit partition`: split an int8 model across two devices, bit-exact, at a measured best cut.

Every valid cut is split and checked on TFLM (part 0 then part 1 == the whole model, byte for
byte, on every golden vector), priced from measurements (converter/partition/measure.py) and
listed; the chosen cut's parts are written as two model directories `tflm-kit firmware` takes.
"""
from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import KitError
from ..partition import cost as costing
from ..partition import channels, graph, plan, pricing, profiles, qemu, report
from ..partition.artifacts import PartModel, arena_of, write_part_dir
from ..partition.measure import measure_core
from ..partition.vela import NOT_EXECUTED
from ..system.outdir import check_output_path, staged_output
from ..tflite.model import read_model
from ..tflm.arena import ARENA_MARGIN
from ..tflm.runners import run_tflm
from .model_inputs import model_inputs

@dataclass(frozen=True)
class Request:
    model: Path
    devices: str
    link: str
    out: Path
    cut: str = "auto"
    objective: str = "latency"
    profiles: Path | None = None
    data: Path | None = None
    vectors: int = 8
    seed: int = 0
    pair: bool = False
    force: bool = False


@dataclass(frozen=True)
class Source:
    name: str
    model: bytes
    inputs: list
    golden_source: str
    labels: list | None


def _c_name(text: str) -> str:
    name = re.sub(r"\W", "_", text).strip("_") or "model"
    return f"m_{name}" if name[0].isdigit() else name


def _labels(settings: Path) -> list | None:
    block = re.search(r"kLabels\[kLabelCount\] = \{(.*?)\};", settings.read_text(), re.S) if settings.is_file() else None
    return re.findall(r'"((?:[^"\\]|\\.)*)"', block.group(1)) if block else None


def read_source(model: Path, data: Path | None, vectors: int, seed: int) -> Source:
    """The model and its golden inputs: a converted model directory's, or drawn for a bare .tflite."""
    model = Path(model)
    if model.is_dir():
        if not (model / "model.tflite").is_file() or not (model / "golden.npz").is_file():
            raise KitError(f"{model} has no model.tflite and golden.npz", "give a `tflm-kit convert` --out directory "
                           "or an int8 .tflite file")
        manifest = json.loads((model / "manifest.json").read_text()) if (model / "manifest.json").is_file() else {}
        with np.load(model / "golden.npz") as golden:
            inputs = [golden[k] for k in sorted((k for k in golden.files if k.startswith("input_")),
                                                key=lambda k: int(k.split("_")[1]))]
        return Source(_c_name(manifest.get("name", model.name)), (model / "model.tflite").read_bytes(), inputs,
                      f"{len(inputs[0])} golden vectors of {model}", _labels(model / "model_settings.h"))
    if not model.is_file():
        raise KitError(f"{model} does not exist", "give a converted model directory or an int8 .tflite file")
    model_bytes = model.read_bytes()
    plan.check_int8(model_bytes)
    drawn = model_inputs(read_model(model_bytes), data, vectors, seed)
    return Source(_c_name(model.stem), model_bytes, list(drawn.quantized), drawn.source, None)


def _check_recorded(model: Path, golden: list) -> None:
    """A model directory's golden.npz must still be its model.tflite's TFLM outputs."""
    if not model.is_dir():
        return
    with np.load(model / "golden.npz") as recorded:
        outputs = [recorded[f"output_{j}"] for j in range(len(golden)) if f"output_{j}" in recorded.files]
    if len(outputs) != len(golden) or any(a.tobytes() != b.tobytes() for a, b in zip(outputs, golden)):
        raise KitError(f"{model / 'golden.npz'} does not hold the TFLM outputs of {model / 'model.tflite'}",
                       "re-run `tflm-kit convert` for that directory")


def _measure(source: Source, whole_arena: int, cores: set, workdir: Path, log) -> dict:
    """core -> CoreMeasurement, or {"skipped": reason} when QEMU/TFLM are missing here."""
    if not cores:
        return {}
    tflm_root = qemu.tflm_root_from_env()
    missing = qemu.missing_tools(tflm_root)
    if missing:
        return {"skipped": missing}
    info = read_model(source.model)
    whole = PartModel(f"{source.name}_whole", source.model, source.inputs, run_tflm(source.model, source.inputs))
    write_part_dir(workdir / "whole", whole, whole_arena, {"part": "whole", "cut": "none"})
    names = list(info.operator_counts)
    measured = {}
    for core in sorted(cores):
        log(f"measuring instructions per operator on {core} (QEMU {qemu.qemu_core(core).machine}) and the flash of its firmware")
        measured[core] = measure_core(workdir / "whole", core, workdir, tflm_root, names)
    return measured


def partition(request: Request, log: Callable[[str], None] = print) -> dict:  # noqa: C901 (split in issue 22 item 7)
    started = time.perf_counter()
    out = Path(request.out)
    check_output_path(out, request.force, inputs=(Path(request.model),))
    known = profiles.load_profiles(request.profiles)
    devices = profiles.parse_devices(request.devices, known)
    link = profiles.parse_link(request.link, known)
    if request.pair and any(d.is_npu for d in devices):
        raise KitError("--pair runs both parts on emulated Cortex-M cores; an Ethos-U part cannot run here",
                       "drop --pair, or give two Cortex-M devices")
    source = read_source(request.model, request.data, request.vectors, request.seed)
    view = plan.load(source.model)
    missing = qemu.missing_tools(qemu.tflm_root_from_env()) if any(not d.is_npu for d in devices) else None
    if missing and request.cut == "auto":
        raise KitError(f"--cut auto needs instructions measured on QEMU, but {missing}",
                       "install gcc-arm-none-eabi and qemu-system-arm and set TFLM_ROOT, or give --cut TENSOR")
    golden = run_tflm(source.model, source.inputs)
    _check_recorded(Path(request.model), golden)
    cuts = graph.enumerate_cuts(view)
    wanted = None
    if request.cut != "auto":
        wanted = graph.cut_at(view, [graph.resolve_tensor(view, n.strip()) for n in request.cut.split(",") if n.strip()])
        if wanted not in cuts:
            cuts.append(wanted)
    if not cuts:
        raise KitError("the model has no valid cut (fewer than two operators, or no tensor separates it)",
                       "run it whole on one device")
    log(f"{len(cuts)} valid cuts; splitting each and checking part 0 then part 1 against the whole model on TFLM")
    splits = [plan.split(source.model, view, c, source.inputs, golden) for c in cuts]
    for s in splits:
        plan.verify(s, golden)
    log("measuring the tensor arena of every part on TFLM")
    whole_arena = arena_of(source.model, read_model(source.model), source.inputs)
    arenas = [(arena_of(s.head, read_model(s.head), source.inputs), arena_of(s.tail, read_model(s.tail), s.at_cut))
              for s in splits]
    costing.precheck([f"cut {k}" for k in range(len(cuts))],
                     [tuple((0, 0) if d.is_npu else need for d, need in zip(devices, (
                         (len(s.head), pricing.arena_size(a0)), (len(s.tail), pricing.arena_size(a1) + s.link_bytes))))
                      for s, (a0, a1) in zip(splits, arenas)], devices)
    vela = pricing.VelaCache()
    with tempfile.TemporaryDirectory(prefix="tflm-kit-partition-") as folder:
        workdir = Path(folder)
        measured = _measure(source, whole_arena, {d.core for d in devices if not d.is_npu}, workdir, log)
        if "skipped" in measured:  # an explicit --cut: the parts are written, their costs are not measured
            costs, chosen = [], None
        else:
            costs = pricing.price_cuts(view, splits, arenas, whole_arena, measured, devices, link, source, vela)
            chosen = costs[cuts.index(wanted)] if wanted is not None else costing.choose(costs, request.objective)
        index = cuts.index(wanted) if wanted is not None else [c.tensors for c in costs].index(chosen.tensors)
        best = splits[index]
        record = report.record(source, view, cuts, splits, costs, chosen, devices, link, request, measured)
        if costs:
            whole0 = next(c for c in costs if c.label == f"whole on {devices[0].name}")
            plans = channels.price(source.model, {op.index: op.name for op in view.ops}, source.inputs, golden,
                                   measured, devices, link, whole0.latency_ms, chosen.latency_ms)
            record["channel_partitioning"] = [p.as_dict() for p in plans]
        if any(d.is_npu for d in devices):
            record["npu"] = {"note": NOT_EXECUTED, "estimates": [
                {"part": part, "device": d.name, **vela.get(model, d.accelerator).as_dict()}
                for part, d, model in ((0, devices[0], best.head), (1, devices[1], best.tail),
                                       ("whole", devices[0], source.model), ("whole", devices[1], source.model))
                if d.is_npu]}
        with staged_output(out) as staging:
            parts = [PartModel(f"{source.name}_part0", best.head, source.inputs, best.at_cut),
                     PartModel(f"{source.name}_part1", best.tail, best.at_cut, golden)]
            for k, (part, arena) in enumerate(zip(parts, arenas[index])):
                part_record = {"part": k, "cut": "+".join(report.tensor_label(view, t) for t in best.cut.tensors),
                               "device": devices[k].name}
                if devices[k].is_npu:  # Vela's model, its SRAM estimate as the arena; golden = TFLM's
                    estimate = vela.get(part.model, devices[k].accelerator)
                    part = PartModel(part.name, estimate.model, part.inputs, part.outputs)
                    arena = -(-estimate.sram_bytes // 16) * 16
                    part_record |= {"vela": estimate.as_dict(), "npu_note": NOT_EXECUTED}
                write_part_dir(staging / f"part{k}", part, arena, part_record, source.labels if k == 1 else None,
                               ARENA_MARGIN)
            if request.pair:
                record["pair"] = report.pair_record(_run_pair(staging, devices, best, workdir, log), chosen)
            record["seconds"] = round(time.perf_counter() - started, 1)
            report.write(staging, record, costs)
    return record


def _run_pair(staging: Path, devices, best, workdir: Path, log):
    from ..partition.pair import run_pair

    tflm_root = qemu.tflm_root_from_env()
    missing = qemu.missing_tools(tflm_root)
    if missing:
        raise KitError(f"--pair runs both parts on QEMU, but {missing}",
                       "install gcc-arm-none-eabi and qemu-system-arm and set TFLM_ROOT, or drop --pair")
    elves = []
    for k, template in enumerate(("part0_main.cc.j2", "part1_main.cc.j2")):
        log(f"building part {k}'s firmware for {devices[k].core}")
        project = qemu.render_project(staging / f"part{k}", workdir / f"pair{k}", template)
        elves.append(qemu.build(project, devices[k].core, tflm_root))
    log("running the pair on two QEMU instances joined by a UART relay")
    return run_pair(tuple(elves), (devices[0].core, devices[1].core), best.link_bytes, staging / "part1" / "golden.npz")


def _summary(record: dict) -> list[str]:
    lines = [f"{len(record['cuts'])} valid cuts, every one bit-exact on TFLM ({record['golden_source']})"]
    chosen = record["chosen"]
    if chosen:
        compute = " + ".join(f"{p['ms']:.2f}" for p in chosen["parts"])
        lines.append(f"cut: {chosen['label']} sending {', '.join(chosen['tensor_names'])}: {chosen['link_bytes']:,} B, "
                     f"end-to-end {chosen['latency_ms']:.2f} ms "
                     f"({compute} compute, {chosen['link_ms']:.2f} link)")
        for whole in (c for c in record["costs"] if not c["tensors"]):
            fits = "" if whole["fits"] else " (does not fit: " + "; ".join(
                f"{b} +{n:,} B" for b, n in whole["over_budget"]) + ")"
            lines.append(f"{whole['label']}: {whole['latency_ms']:.2f} ms{fits}")
    else:
        lines.append(f"costs not measured: {record['costs_skipped']}")
    if "pair" in record:
        pair = record["pair"]
        lines.append(f"pair on two QEMU: {'PASS' if pair['pass'] else 'FAIL'} {pair['passed']}/{pair['total']}")
        lines += [f"  {line}" for line in pair["errors"] + pair["golden_differences"]]
    return lines


def _register():
    import click

    @click.command("partition")
    @click.argument("model", type=click.Path(path_type=Path))
    @click.option("--devices", required=True, help="HEAD,TAIL as NAME:CORE@MHz[/FLASH/RAM], e.g. "
                  "nano33:cortex-m4@64MHz,h7:cortex-m7@280MHz. Part 0 runs on HEAD.")
    @click.option("--link", "link_spec", required=True, help="uart:BAUD, spi:HZ or a link profile of --profiles.")
    @click.option("--out", required=True, type=click.Path(path_type=Path), help="Output directory.")
    @click.option("--cut", default="auto", show_default=True,
                  help="TENSOR[,TENSOR] (names, or #index) crossing the cut, or auto: the best within budgets.")
    @click.option("--objective", default="latency", show_default=True, type=click.Choice(costing.CUT_OBJECTIVES),
                  help="What --cut auto minimises: end-to-end latency, energy, or the pipeline period (balance).")
    @click.option("--profiles", "profile_file", type=click.Path(path_type=Path),
                  help="YAML: device/link name -> fields (core, mhz, flash_bytes, ram_bytes, active_mw; "
                       "bytes_per_s, overhead_bytes).")
    @click.option("--data", type=click.Path(path_type=Path), help="Inputs (.npz 'x') for a bare .tflite.")
    @click.option("--vectors", default=8, show_default=True, type=click.IntRange(1, 10_000))
    @click.option("--seed", default=0, show_default=True)
    @click.option("--pair", is_flag=True, help="Also build both parts' firmware and run them on two QEMU "
                  "instances joined by a UART relay.")
    @click.option("--force", is_flag=True, help="Replace --out if it already holds files.")
    def partition_command(model, devices, link_spec, out, cut, objective, profile_file, data, vectors, seed, pair, force):
        """Split MODEL (a converted model directory or an int8 .tflite) across two devices."""
        request = Request(model, devices, link_spec, out, cut, objective, profile_file, data, vectors, seed, pair, force)
        try:
            record = partition(request, log=lambda m: click.echo(f"[tflm-kit] {m}", err=True))
        except KitError as error:
            click.echo(f"error: {error}", err=True)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            click.echo("interrupted: nothing was written to the output directory", err=True)
            raise SystemExit(130) from None
        click.echo(f"artifacts: {out}/  (report: {Path(out) / 'report.md'}; firmware: tflm-kit firmware "
                   f"--model-dir {Path(out) / 'part0'} and part1)")
        for line in _summary(record):
            click.echo(line)
        if "pair" in record and not record["pair"]["pass"]:
            raise SystemExit(1)

    return partition_command


partition_command = _register()
