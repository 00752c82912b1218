"""`tflm-kit partition`: split an int8 model across two devices, bit-exact, at a measured best cut.

Every valid cut is split and checked on TFLM (part 0 then part 1 == the whole model, byte for
byte, on every golden vector), priced from measurements (converter/partition/measure.py) and
listed; the chosen cut's parts are written as two model directories `tflm-kit firmware` takes.
"""
from __future__ import annotations

import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import KitError
from ..progress import Sink, notes, silent
from ..partition import cost as costing
from ..partition import channels, graph, plan, pricing, profiles, qemu, report
from ..partition.artifacts import PartModel, arena_of, write_part_dir
from ..partition.measure import measure_core
from ..aot.graph import NotCompilable
from ..runtimes.base import ModelSources, Runtime
from ..runtimes.boards import load_board
from ..runtimes.run import build_settings
from ..runtimes.registry import get_runtime
from ..partition.vela import NOT_EXECUTED
from ..system.elf_size import image_size
from ..system.extras import require
from ..system.outdir import check_output_path, staged_output
from ..system.safe_yaml import load_json_file
from ..tflite.model import read_model
from ..tflm.arena import ARENA_MARGIN
from ..tflm.runners import run_tflm
from .model_inputs import model_inputs

NPU_RUNTIME = "tflm"    # an Ethos-U part is Vela's command stream, run by TFLM's ethos-u operator


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
    runtime: str = "tflm"       # runtimes/registry.py: what each part is written, priced and run with


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
        manifest = load_json_file(model / "manifest.json", "manifest", "re-run `tflm-kit convert` for that directory") \
            if (model / "manifest.json").is_file() else {}
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


def _measure(source: Source, view, whole_arena: int, cores: set, workdir: Path, log, runtime: Runtime) -> dict:
    """core -> CoreMeasurement of the whole model's firmware with `runtime`, or {"skipped": reason} when the tools
    are missing here."""
    if not cores:
        return {}
    missing = _missing_firmware_tools(runtime)
    if missing:
        return {"skipped": missing}
    info = read_model(source.model)
    whole = PartModel(f"{source.name}_whole", source.model, source.inputs, run_tflm(source.model, source.inputs))
    write_part_dir(workdir / "whole", whole, whole_arena, {"part": "whole", "cut": "none"},
                   runtime=(runtime.name, runtime.model_sources(whole.model, whole.inputs, whole.outputs)))
    names = list(info.operator_counts)
    kinds = [op.name for op in sorted(view.ops, key=lambda op: op.index)]
    measured = {}
    for core in sorted(cores):
        log(f"measuring instructions per operator of the {runtime.name} firmware on {core} "
            f"(QEMU {qemu.qemu_core(core).machine})")
        measured[core] = measure_core(workdir / "whole", core, workdir, qemu.tflm_root_from_env(), names,
                                      runtime.name, kinds)
    return measured


def partition(request: Request, events: Sink = silent) -> dict:
    """Split the model across two devices; progress goes to `events` as Note lines."""
    log = notes(events)
    started = time.perf_counter()
    out = Path(request.out)
    check_output_path(out, request.force, inputs=tuple(Path(p) for p in (request.model, request.data, request.profiles)
                                                       if p is not None))
    devices, link = _devices_and_link(request)
    runtime = get_runtime(request.runtime)
    if runtime.name != NPU_RUNTIME and any(d.is_npu for d in devices):
        raise KitError(f"--runtime {runtime.name} compiles each part for a Cortex-M core, but an Ethos-U part is "
                       "Vela's command stream, which TFLM's ethos-u operator runs", "use --runtime tflm with an "
                       "Ethos-U device")
    if request.pair:
        _check_pair_tools(runtime)
    source = read_source(request.model, request.data, request.vectors, request.seed)
    with _way_out(runtime):
        return _partition(request, devices, link, runtime, source, log, started, out)


def _partition(request: Request, devices, link, runtime: Runtime, source: Source, log, started: float, out: Path) -> dict:
    view = plan.load(source.model)
    _check_measurable(request, devices, runtime)
    golden = run_tflm(source.model, source.inputs)
    _check_recorded(Path(request.model), golden)
    cuts, wanted = _cuts(request, view)
    log(f"{len(cuts)} valid cuts; splitting each and checking part 0 then part 1 against the whole model on TFLM")
    splits = [plan.split(source.model, view, c, source.inputs, golden) for c in cuts]
    for s in splits:
        plan.verify(s, golden)
    log("measuring the tensor arena of every part on TFLM")
    whole_arena, arenas = _arenas(source, splits)
    _precheck(cuts, splits, arenas, devices, runtime)
    vela = pricing.VelaCache()
    with tempfile.TemporaryDirectory(prefix="tflm-kit-partition-") as folder:
        workdir = Path(folder)
        measured = _measure(source, view, whole_arena, {d.core for d in devices if not d.is_npu}, workdir, log, runtime)
        if "skipped" in measured:  # an explicit --cut: the parts are written, their costs are not measured
            costs, chosen = [], None
        else:
            costs = pricing.price_cuts(view, splits, arenas, whole_arena, measured, devices, link, source, runtime, vela)
            chosen = costs[cuts.index(wanted)] if wanted is not None else costing.choose(costs, request.objective)
        index = cuts.index(wanted) if wanted is not None else [c.tensors for c in costs].index(chosen.tensors)
        best = splits[index]
        record = report.record(source, view, cuts, splits, costs, chosen, devices, link, request, measured,
                               runtime.name)
        if costs:
            record["channel_partitioning"] = _channel_plans(source, view, golden, measured, devices, link, costs, chosen)
        if any(d.is_npu for d in devices):
            record["npu"] = _npu_estimates(source, best, devices, vela)
        with staged_output(out) as staging:
            _write_parts(staging, source, view, best, arenas[index], golden, devices, vela, runtime, log)
            if request.pair:
                record["pair"] = report.pair_record(_run_pair(staging, devices, best, workdir, log, runtime), chosen)
            record["seconds"] = round(time.perf_counter() - started, 1)
            report.write(staging, record, costs)
    return record


@contextmanager
def _way_out(runtime: Runtime):
    """A part the runtime cannot compile (the AOT generator names the operator) says how partition gets past it."""
    try:
        yield
    except NotCompilable as error:
        raise KitError(f"a part cannot use the {runtime.name} runtime: {error.problem}",
                       "run partition with --runtime tflm (TFLM's interpreter runs every operator the kit converts)",
                       code=error.code) from None


def _devices_and_link(request: Request) -> tuple:
    known = profiles.load_profiles(request.profiles)
    devices = profiles.parse_devices(request.devices, known)
    link = profiles.parse_link(request.link, known)
    if any(d.is_npu for d in devices):
        require("npu", "an Ethos-U device (Arm's Vela compiler)")
    if request.pair and any(d.is_npu for d in devices):
        raise KitError("--pair runs both parts on emulated Cortex-M cores; an Ethos-U part cannot run here",
                       "drop --pair, or give two Cortex-M devices")
    return devices, link


def _check_measurable(request: Request, devices, runtime: Runtime) -> None:
    """--cut auto needs every Cortex-M part's instructions measured on QEMU here, with the runtime's firmware."""
    missing = _missing_firmware_tools(runtime) if any(not d.is_npu for d in devices) else None
    if missing and request.cut == "auto":
        raise KitError(f"--cut auto needs instructions measured on QEMU, but {missing}",
                       f"{_tools_fix(runtime)}, or give --cut TENSOR")


def _cuts(request: Request, view) -> tuple[list, object]:
    """Every valid cut, with --cut's own added when it is not among them; and --cut's (None for auto)."""
    cuts = graph.enumerate_cuts(view)
    wanted = None
    if request.cut != "auto":
        wanted = graph.cut_at(view, [graph.resolve_tensor(view, n.strip()) for n in request.cut.split(",") if n.strip()])
        if wanted not in cuts:
            cuts.append(wanted)
    if not cuts:
        raise KitError("the model has no valid cut (fewer than two operators, or no tensor separates it)",
                       "run it whole on one device")
    return cuts, wanted


def _arenas(source: Source, splits: list) -> tuple[int, list[tuple[int, int]]]:
    """The whole model's measured arena, and each split's (part 0, part 1) arenas."""
    whole_arena = arena_of(source.model, read_model(source.model), source.inputs)
    arenas = [(arena_of(s.head, read_model(s.head), source.inputs), arena_of(s.tail, read_model(s.tail), s.at_cut))
              for s in splits]
    return whole_arena, arenas


def _precheck(cuts: list, splits: list, arenas: list, devices, runtime: Runtime) -> None:
    """Refuse early when no cut fits by each part's model and the runtime's static RAM (TFLM: its arena; AOT: its
    planned buffer) alone."""
    def need(device, model: bytes, arena: int, receive: int) -> tuple[int, int]:
        return (0, 0) if device.is_npu else \
            (len(model), pricing.deployed_ram(runtime, model, arena, device.core, receive > 0) + receive)

    costing.precheck([f"cut {k}" for k in range(len(cuts))],
                     [(need(devices[0], s.head, a0, 0), need(devices[1], s.tail, a1, s.link_bytes))
                      for s, (a0, a1) in zip(splits, arenas)], devices)


def _channel_plans(source: Source, view, golden, measured, devices, link, costs, chosen) -> list[dict]:
    whole0 = next(c for c in costs if c.label == f"whole on {devices[0].name}")
    plans = channels.price(source.model, {op.index: op.name for op in view.ops}, source.inputs, golden,
                           measured, devices, link, whole0.latency_ms, chosen.latency_ms)
    return [p.as_dict() for p in plans]


def _npu_estimates(source: Source, best, devices, vela) -> dict:
    return {"note": NOT_EXECUTED, "estimates": [
        {"part": part, "device": d.name, **vela.get(model, d.accelerator).as_dict()}
        for part, d, model in ((0, devices[0], best.head), (1, devices[1], best.tail),
                               ("whole", devices[0], source.model), ("whole", devices[1], source.model))
        if d.is_npu]}


def _write_parts(staging: Path, source: Source, view, best, arenas: tuple, golden, devices, vela, runtime: Runtime,
                 log) -> None:
    """part0/ and part1/: each a model directory `firmware` takes (an Ethos-U part: Vela's model), with the
    runtime's own sources (the AOT runtime's aot/: generated C proven on the host against the part's vectors)."""
    parts = [PartModel(f"{source.name}_part0", best.head, source.inputs, best.at_cut),
             PartModel(f"{source.name}_part1", best.tail, best.at_cut, golden)]
    for k, (part, arena) in enumerate(zip(parts, arenas)):
        part_record = {"part": k, "cut": "+".join(report.tensor_label(view, t) for t in best.cut.tensors),
                       "device": devices[k].name}
        sources = (runtime.name, ModelSources() if devices[k].is_npu else
                   runtime.model_sources(part.model, part.inputs, part.outputs))
        for line in sources[1].lines:
            log(f"part {k} ({runtime.name}): {line}")
        if devices[k].is_npu:  # Vela's model, its SRAM estimate as the arena; golden = TFLM's
            estimate = vela.get(part.model, devices[k].accelerator)
            part = PartModel(part.name, estimate.model, part.inputs, part.outputs)
            arena = -(-estimate.sram_bytes // 16) * 16
            part_record |= {"vela": estimate.as_dict(), "npu_note": NOT_EXECUTED}
        write_part_dir(staging / f"part{k}", part, arena, part_record, source.labels if k == 1 else None,
                       ARENA_MARGIN, sources)


def _missing_firmware_tools(runtime: Runtime) -> str | None:
    """Why the runtime's Cortex-M firmware cannot be built and run on QEMU here (None: it can): the Arm toolchain,
    QEMU and the settings the runtime's build reads (TFLM: TFLM_ROOT; AOT: CMSIS_NN_ROOT)."""
    tflm_root = qemu.tflm_root_from_env()
    settings = runtime.needs(load_board(qemu.BOARDS["cortex-m4"])).settings
    missing = qemu.missing_tools(tflm_root, "TFLM_ROOT" in settings)
    if missing:
        return missing
    try:
        build_settings({"board": qemu.BOARDS["cortex-m4"], "runtime": runtime.name}, tflm_root)
    except KitError as error:
        return error.problem
    return None


def _tools_fix(runtime: Runtime) -> str:
    settings = runtime.needs(load_board(qemu.BOARDS["cortex-m4"])).settings
    return "install gcc-arm-none-eabi and qemu-system-arm" + (f" and set {' and '.join(settings)}" if settings else "")


def _check_pair_tools(runtime: Runtime) -> None:
    """Before any work: --pair builds both parts' firmware with the runtime and runs them on QEMU."""
    missing = _missing_firmware_tools(runtime)
    if missing:
        raise KitError(f"--pair runs both parts' {runtime.name} firmware on QEMU, but {missing}",
                       f"{_tools_fix(runtime)}, or drop --pair")


def _run_pair(staging: Path, devices, best, workdir: Path, log, runtime: Runtime):
    from ..partition.pair import run_pair

    _check_pair_tools(runtime)
    tflm_root = qemu.tflm_root_from_env()
    elves = []
    for k in (0, 1):
        log(f"building part {k}'s firmware ({runtime.name} runtime) for {devices[k].core}")
        project = qemu.render_project(staging / f"part{k}", workdir / f"pair{k}", f"part{k}", runtime.name)
        elves.append(qemu.build(project, devices[k].core, tflm_root))
    log("running the pair on two QEMU instances joined by a UART relay")
    result = run_pair(tuple(elves), (devices[0].core, devices[1].core), best.link_bytes, staging / "part1" / "golden.npz")
    result.images = tuple(image_size(elf) for elf in elves)
    return result


def summary_lines(record: dict) -> list[str]:
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
        lines += [f"part {k} on {p['device']} ({p['runtime']} runtime): flash {p['flash_bytes']:,} B, RAM {p['ram_bytes']:,} B"
                  for k, p in enumerate(chosen["parts"])]
    else:
        lines.append(f"costs not measured: {record['costs_skipped']}")
    if "pair" in record:
        pair = record["pair"]
        lines.append(f"pair on two QEMU: {'PASS' if pair['pass'] else 'FAIL'} {pair['passed']}/{pair['total']} "
                     f"({record['runtime']} runtime)")
        lines += [f"  part {k} firmware (measured, arm-none-eabi-size): program {image['flash']:,} B, static RAM "
                  f"{image['static_ram']:,} B" for k, image in enumerate(pair.get("images") or []) if image]
        lines += [f"  {line}" for line in pair["errors"] + pair["golden_differences"]]
    return lines
