"""One conversion run: recipe -> stages -> .tflite -> validated artifacts in --out.

The run is a row of phases, each a function below with a typed result: load the inputs, run the
stages, check the model is deployable, run the golden vectors, measure the arena, render the C
sources, validate bit for bit, build the manifest, and write everything through a staging folder
that is checked before it replaces --out. Progress goes to `events` (converter/progress.py).
"""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .. import progress
from ..errors import KitError
from ..inputs.dataset import Dataset, check_training_labels, load_data, sample_count, take
from ..inputs.recipe_inputs import recipe_inputs
from ..progress import Note, Sink, phase
from ..recipe import Recipe
from ..reports.deployed import DeployedComparison, compare_deployed, tensors_compressed
from ..reports.manifest import ConversionParts, sha256
from ..system import out_lock, tf_env
from ..system.outdir import check_output_path
from ..tflite.model import ModelInfo, read_model
from ..tflm.deployable import check_deployable
from ..tflm.arena import arena_with_margin, first_sample, measure_arena
from ..tflm import target_arena
from ..tflm.runners import quantize_inputs, run_tflm
from .convert_aot import build_aot
from ..tflm.kernels import registered_variants
from ..tflm.target_arena import ArenaFigure
from .convert_output import check_and_write, validate_artifacts
from ..runtimes.device_check import DeviceCheck, model_facts, probe_arena, resolve_setting, run_device_check


@dataclass(frozen=True)
class Loaded:
    """The recipe's model (a Keras model, or the bytes of a .tflite) and its data."""

    model: object
    data: Dataset
    flatbuffer: bool


@dataclass(frozen=True)
class StagesRun:
    model_bytes: bytes               # the final flatbuffer
    first_flatbuffer: bytes          # as the converter made it (or as the .tflite came)
    records: list                    # StageRecord per stage, in order
    notes: list[str]                 # each stage's own note for report.md
    sections: list[str]              # report.md lines the stages add after the tables
    artifacts: dict                  # extra files the stages add to the output (name -> bytes)

    @property
    def uncompressed(self) -> Optional[bytes]:
        """The flatbuffer before the flatbuffer stages, when they changed it (LiteRT runs that one:
        it has no TFLM_DECODE kernel), else None."""
        return self.first_flatbuffer if self.first_flatbuffer != self.model_bytes else None


@dataclass(frozen=True)
class Golden:
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    source: str                      # where the inputs came from, for people


@dataclass(frozen=True)
class Arena:
    measured: int                    # bytes TFLM used on the target (figure.bytes), or on the host without one
    size: int                        # measured + margin, rounded up to 16 bytes: kTensorArenaSize
    figure: Optional[ArenaFigure] = None   # where `measured` comes from
    host: Optional[ArenaFigure] = None     # TFLM's Python runtime on this host, a labelled extra
    device: Optional[DeviceCheck] = None   # the golden self-test on the emulated core, when it ran


def golden_inputs(data: Dataset, info: ModelInfo, count: int) -> tuple[list[np.ndarray], str]:
    """Real inputs spread over the eval set (or the calibration set), quantized to each input's type."""
    x, source = data.spread_inputs(count)
    return quantize_inputs(x, info, data.input_names), source


def input_shapes(model) -> list[tuple]:
    """Every Keras model input's shape without the batch axis, in model order; all fixed."""
    shapes = [tuple(tensor.shape[1:]) for tensor in model.inputs]
    for shape in shapes:
        if any(d is None for d in shape):
            raise KitError(f"the model input shape {shape} has unknown dimensions",
                           "build the model with a fixed input shape (e.g. Input((49, 10, 1)))")
    return shapes


def _input_shape(model) -> tuple:
    """The one input's shape, for callers that take single-input models only."""
    if len(model.inputs) != 1:
        raise KitError(f"the model has {len(model.inputs)} inputs; this takes single-input models",
                       "wrap the model so it takes one input tensor")
    return input_shapes(model)[0]


def load_inputs(recipe: Recipe, events: Sink) -> Loaded:
    if recipe.model.is_flatbuffer:
        from ..tflm.isolation import open_untrusted

        model_bytes, info = open_untrusted(recipe.resolve(recipe.model.path), log=lambda text: events(Note(text)))
        return Loaded(model_bytes, load_data(recipe, [tuple(t.shape[1:]) for t in info.inputs]), True)
    from ..inputs.keras_model import load_model

    model = load_model(recipe)
    data = load_data(recipe, input_shapes(model))
    if len(model.inputs) > 1:  # the flatbuffer may order them otherwise: runners match them by name
        data = replace(data, input_names=tuple(model.input_names))
    check_training_labels(recipe, data, model)  # before training: TensorFlow's own error is a traceback
    return Loaded(model, data, False)


def _stage_detail(name: str, settings, data: Dataset) -> str:
    if name == "quantize":
        return (f"quantize ({settings.mode}, "
                f"{min(settings.calibration_samples, sample_count(data.x_calibration))} calibration samples)")
    if name != "compress":
        return name
    methods = [label for label, on in (("LUT", settings.lut), ("PRUNE", settings.prune)) if on]
    parts = ([f"{' + '.join(methods)} decoded by TFLM DECODE"] if methods else []) + \
        (["packed int4 filters"] if settings.int4 else []) + \
        (["offline memory plan"] if settings.memory_plan == "offline" else []) + \
        (["metadata stripped"] if settings.strip_metadata else [])
    return f"compress ({', '.join(parts) or 'nothing set'})"


def run_stages(recipe: Recipe, loaded: Loaded, events: Sink) -> StagesRun:
    from ..stages.base import StageContext
    from ..stages.registry import get

    context = StageContext(loaded.data, recipe.seed, recipe.base_dir, events)
    model, first_flatbuffer, records, notes, sections = loaded.model, None, [], [], []
    artifacts: dict[str, bytes] = {}
    if loaded.flatbuffer:
        first_flatbuffer = model
    pipeline = recipe.pipeline()
    for number, (name, settings) in enumerate(pipeline, start=1):
        stage = get(name)
        with phase(events, name, _stage_detail(name, settings, loaded.data), number, len(pipeline)):
            result = stage.run(model, settings, context)
        model = result.model
        records.append(result.record)
        notes.append(stage.report_note(result.record))
        sections += stage.report_section(result.record)
        artifacts |= stage.artifacts(result.record)
        if stage.takes == "keras" and stage.gives == "flatbuffer":
            first_flatbuffer = model
        elif result.reference is not None:
            first_flatbuffer = result.reference  # a lossy flatbuffer stage: later checks compare with its reference
    return StagesRun(model, first_flatbuffer, records, notes, sections, artifacts)


def check_model(model_bytes: bytes, recipe: Recipe, data: Dataset) -> ModelInfo:
    """The one deployability check of the final flatbuffer: TFLM can load and run it as asked."""
    from ..emit.sources import resolver_ops

    info = read_model(model_bytes)
    # no float ops (unless float16 was asked for), int64, dynamic shapes left
    check_deployable(model_bytes, require_int8=not recipe.model.is_flatbuffer and recipe.quantize.mode != "float16")
    resolver_ops(info)  # fail now, with the op names, if TFLM lacks a kernel
    one_sample = take(data.x_calibration, slice(None, 1))
    fed = [tuple(x.shape[1:]) for x in quantize_inputs(one_sample, info, data.input_names)]
    if fed != [tuple(t.shape[1:]) for t in info.inputs]:  # runners feed the data by position
        raise KitError(f"the flatbuffer's inputs take {[tuple(t.shape[1:]) for t in info.inputs]} but the data "
                       f"would feed them {fed}", "report this with the model: the converter reordered its inputs")
    if data.labels and len(data.labels) != info.outputs[0].elements:
        raise KitError(f"{len(data.labels)} labels given but the model's first output has "
                       f"{info.outputs[0].elements} values", "give one label per output class (data.labels), or none")
    return info


def run_golden(model_bytes: bytes, info: ModelInfo, data: Dataset, count: int) -> Golden:
    inputs, source = golden_inputs(data, info, count)
    return Golden(inputs, run_tflm(model_bytes, inputs), source)


def measure(model_bytes: bytes, info: ModelInfo, golden: Golden, margin: float) -> Arena:
    """The host's arena (TFLM's Python runtime): the figure when no device check runs, labelled as the host's."""
    measured = measure_arena(model_bytes, first_sample(golden.inputs, info))
    figure = target_arena.host(measured, platform.machine())
    return Arena(measured, arena_with_margin(measured, margin), figure, figure)


def device_arena(recipe: Recipe, core: str, model_bytes: bytes, info: ModelInfo, golden: Golden,
                 host_arena: Arena, labels) -> Arena:
    """The golden self-test on `core` under QEMU (runtimes/device_check.py): bit-identical outputs or a KitError,
    and the arena the device used, which the firmware then reserves (+ the recipe's margin)."""
    probe = probe_arena(host_arena.measured)
    probe_sources = render(recipe, model_bytes, info, Arena(probe, probe), golden, labels)
    facts = model_facts(recipe.name, model_bytes, info, len(golden.inputs[0]), probe)
    device = run_device_check(core, recipe.name, model_bytes, probe_sources, golden.inputs, golden.outputs, facts)
    return Arena(device.arena.bytes, arena_with_margin(device.arena.bytes, recipe.arena_margin), device.arena,
                 host_arena.host, device)


def deployed_comparison(recipe: Recipe, stages: StagesRun, golden: Golden, arena: Arena, labels,
                        events: Sink) -> Optional[DeployedComparison]:
    """A compressed model's flash and arena next to the uncompressed model's, both on the target: the
    uncompressed model gets its own device check when the compressed one had one (its outputs are its own)."""
    plain = stages.uncompressed
    if plain is None or not tensors_compressed(stages.records):
        return None
    plain_info = read_model(plain)
    plain_golden = Golden(golden.inputs, run_tflm(plain, golden.inputs), golden.source)
    plain_arena = measure(plain, plain_info, plain_golden, recipe.arena_margin)
    if arena.device is None or arena.figure is None or arena.host is None:
        return compare_deployed(stages.model_bytes, plain, arena.host or arena.figure, plain_arena.host)
    with phase(events, "device", f"device check of the uncompressed model on {arena.device.core} under QEMU "
                                 "(its arena, for the comparison)"):
        plain_arena = device_arena(recipe, arena.device.core, plain, plain_info, plain_golden, plain_arena, labels)
    return compare_deployed(stages.model_bytes, plain, arena.figure, plain_arena.figure, (plain_arena.host, arena.host))


def render(recipe: Recipe, model_bytes: bytes, info: ModelInfo, arena: Arena, golden: Golden,
           labels) -> dict[str, str]:
    from ..emit.sources import render_all

    return render_all(recipe.name, "model.tflite", model_bytes, sha256(model_bytes), info,
                      arena_measured=arena.measured, arena_size=arena.size, arena_margin=recipe.arena_margin,
                      labels=labels, golden_inputs=golden.inputs, golden_outputs=golden.outputs,
                      host=platform.machine(), arena_figure=arena.figure,
                      arena_host=arena.host if arena.figure is not arena.host else None)


def _mode_and_accuracy(recipe: Recipe, run: StagesRun, data: Dataset) -> tuple[str, Optional[float], Optional[float]]:
    """The flatbuffer's mode, the float model's accuracy and the flatbuffer's (on TFLM)."""
    converter = next((r for r in run.records if r.kind == "quantize"), None)
    if converter is not None:
        return (recipe.quantize.mode, converter.quality_before.get("eval_accuracy"),
                converter.quality_after.get("eval_accuracy"))
    from ..stages.quantize import tflite_quality

    # a .tflite source: no Keras model to score; its type names the mode
    mode = read_model(run.model_bytes).inputs[0].type.lower()
    return mode, None, tflite_quality(run.model_bytes, data).get("eval_accuracy")


@out_lock.released_after
def convert(recipe: Recipe, out: Path, force: bool = False, events: Optional[Sink] = None,
            log: Optional[Callable[[str], None]] = None, device_check: Optional[str] = None) -> dict:
    """Run `recipe` into `out`; returns the manifest. Progress goes to `events` (a progress sink);
    `log` is a shorthand for `events=progress.ConsoleSink(log)`. device_check: overrides the recipe's
    `device_check` (auto | off | cortex-m4 | cortex-m7; runtimes/device_check.py)."""
    events = events or (progress.ConsoleSink(log) if log is not None else progress.silent)
    out = Path(out)
    check_output_path(out, force, inputs=recipe_inputs(recipe))
    core = resolve_setting(device_check or recipe.device_check)  # before the work: a named core it cannot run fails now
    started = time.perf_counter()
    if not recipe.model.is_flatbuffer:  # a .tflite needs no TensorFlow
        tf_env.deterministic(recipe.seed)

    with phase(events, "load", "loading the model and data"):
        loaded = load_inputs(recipe, events)
    stages = run_stages(recipe, loaded, events)
    model_bytes = stages.model_bytes
    info = check_model(model_bytes, recipe, loaded.data)

    with phase(events, "golden+arena", "running golden vectors on TFLM and measuring the arena on this host"):
        golden = run_golden(model_bytes, info, loaded.data, recipe.golden.vectors)
        arena = measure(model_bytes, info, golden, recipe.arena_margin)
    if core is not None:
        with phase(events, "device", f"device check: building the golden self-test for {core} and running it "
                                     "under QEMU (outputs and arena)"):
            arena = device_arena(recipe, core, model_bytes, info, golden, arena, loaded.data.labels)
    sources = render(recipe, model_bytes, info, arena, golden, loaded.data.labels)

    with phase(events, "validate", "validating bit for bit: TFLM vs the C array, LiteRT reference and optimized kernels"):
        validation = validate_artifacts(model_bytes, golden.inputs, golden.outputs, sources["model_data.cc"],
                                        recipe.name, stages.uncompressed)

    aot = None
    if (recipe.runtime or "both") != "tflm":
        with phase(events, "aot", "compiling the model to C (AOT runtime) and checking it bit for bit on the host"):
            aot = build_aot(recipe, model_bytes, golden.inputs, golden.outputs, events)

    mode, float_accuracy, quantized_accuracy = _mode_and_accuracy(recipe, stages, loaded.data)
    parts = ConversionParts(
        name=recipe.name, recipe=recipe.model_dump(mode="json"), model_bytes=len(model_bytes),
        model_sha256=sha256(model_bytes), info=info, arena_measured=arena.measured, arena_size=arena.size,
        arena_margin=recipe.arena_margin, host=platform.machine(), stages=stages.records, validation=validation,
        arena_figure=arena.figure, arena_host=arena.host, device_check=arena.device.as_dict() if arena.device else None,
        kernels=registered_variants(model_bytes),
        golden_vectors=int(len(golden.inputs[0])), golden_source=golden.source, mode=mode,
        float_accuracy=float_accuracy, quantized_accuracy=quantized_accuracy,
        source="tflite" if loaded.flatbuffer else "keras", aot=aot.as_dict() if aot else None)
    deployed = deployed_comparison(recipe, stages, golden, arena, loaded.data.labels, events)
    with phase(events, "write", "writing the artifacts"):
        return check_and_write(out, model_bytes, sources, golden.inputs, golden.outputs, parts, stages, started,
                               deployed, aot_files=dict(aot.program.files) if aot else None)
