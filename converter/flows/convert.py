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
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from .. import progress
from ..compare.golden_format import GoldenVectors
from ..errors import KitError
from ..inputs.dataset import Dataset, check_training_labels, load_data, take
from ..progress import Note, Sink, phase
from ..recipe import Recipe
from ..reports.deployed import DeployedComparison, compare_deployed, tensors_compressed
from ..reports.manifest import ConversionParts, sha256
from ..stages.base import check_extras
from ..system import out_lock, tf_env
from ..system.outdir import check_output_path
from ..tflite.model import ModelInfo, read_model
from ..tflm.consistency import check_consistent
from ..tflm.deployable import check_deployable
from ..tflm import target_arena
from ..tflm.arena import arena_with_margin, first_sample, measure_arena
from ..tflm.runners import quantize_inputs, run_tflm
from ..tflm.kernels import registered_variants
from ..tflm.derived_arena import derived_figure
from ..tflm.target_arena import ArenaFigure
from .convert_aot import build_aot
from .convert_output import check_and_write, check_litert_differences, validate_artifacts
from ..runtimes.device_check import (DEVICE_REFUSES, DeviceCheck, model_facts, probe_arena, probe_settings,
                                     resolve_setting, run_device_check)
from .flatbuffer_fixes import fold_and_prove, rewrite_note


@dataclass(frozen=True)
class Loaded:
    """The recipe's model (a Keras model, or the bytes of a .tflite) and its data."""

    model: object
    data: Dataset
    flatbuffer: bool
    float_accuracy: Optional[float] = None   # a PyTorch source: its float module's, scored by the child


@dataclass(frozen=True)
class StagesRun:
    model_bytes: bytes               # the final flatbuffer
    first_flatbuffer: bytes          # as the converter made it (or as the .tflite came)
    records: list                    # StageRecord per stage, in order
    notes: list[str]                 # each stage's own note for report.md
    sections: list[str]              # report.md lines the stages add after the tables
    artifacts: dict                  # extra files the stages add to the output (name -> bytes)
    rewrites: tuple = ()             # automatic flatbuffer fixes (flows/flatbuffer_fixes.py), for the manifest

    @property
    def uncompressed(self) -> Optional[bytes]:
        """The flatbuffer before the flatbuffer stages, when they changed it (LiteRT runs that one:
        it has no TFLM_DECODE kernel), else None."""
        return self.first_flatbuffer if self.first_flatbuffer != self.model_bytes else None


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


def load_torch(recipe: Recipe, events: Sink) -> Loaded:
    """A PyTorch model: the data first (it calibrates), then litert-torch's int8 flatbuffer."""
    from ..inputs.torch_model import convert_torch, torch_python
    from ..stages.training import accuracy

    source = recipe.model.torch
    python = torch_python(source)  # the extra (or the named Python) before any work
    data = load_data(recipe.data_spec(), [tuple(source.input_shape)])
    conversion = convert_torch(source, recipe.base_dir, data, recipe.seed, python)
    events(Note(conversion.note()))
    score = None
    if conversion.float_outputs is not None and data.labeled_eval:
        score = accuracy(conversion.float_outputs.reshape(len(conversion.float_outputs), -1), data.y_eval)
    return Loaded(conversion.model_bytes, data, True, None if score is None else round(score, 5))


def load_inputs(recipe: Recipe, events: Sink) -> Loaded:
    if recipe.model.torch is not None:
        return load_torch(recipe, events)
    if recipe.model.is_flatbuffer:
        from ..tflm.isolation import open_untrusted

        model_bytes, info = open_untrusted(recipe.resolve(recipe.model.path), log=lambda text: events(Note(text)))
        return Loaded(model_bytes, load_data(recipe.data_spec(), [t.sample_shape for t in info.inputs]), True)
    from ..inputs.keras_model import input_names, input_shapes, load_model
    from ..stages.base import check_keras3

    model = load_model(recipe.model, recipe.base_dir)
    check_keras3(model, [kind for kind, _ in recipe.pipeline()], f"model {recipe.model.path or recipe.model.builder}")
    data = load_data(recipe.data_spec(), input_shapes(model))
    if len(model.inputs) > 1:  # the flatbuffer may order them otherwise: runners match them by name
        data = replace(data, input_names=input_names(model))
    check_training_labels(recipe.training_losses(), data, model)  # before training: TensorFlow's own error is a traceback
    return Loaded(model, data, False)


def run_stages(recipe: Recipe, loaded: Loaded, events: Sink) -> StagesRun:
    from ..stages.base import ConverterStage, StageContext
    from ..stages.registry import get

    context = StageContext(loaded.data, recipe.seed, recipe.base_dir, events)
    model, first_flatbuffer, records, notes, sections = loaded.model, None, [], [], []
    artifacts: dict[str, bytes] = {}
    rewrites: list[dict] = []
    if loaded.flatbuffer:
        model = first_flatbuffer = fix_flatbuffer(model, recipe, loaded.data, rewrites, events)
    pipeline = recipe.pipeline()
    for number, (name, settings) in enumerate(pipeline, start=1):
        stage = get(name)
        with phase(events, name, stage.phase_detail(settings, loaded.data), number, len(pipeline)):
            result = stage.run(model, settings, context)
        model, record = result.model, result.record
        if isinstance(stage, ConverterStage):
            model = first_flatbuffer = fix_flatbuffer(model, recipe, loaded.data, rewrites, events)
            if model is not result.model:  # scored again: the converter's own output runs wrongly on TFLM
                details = record.details_dict()
                details = details | ({"tflite_bytes": len(model), "tflite_bytes_before_rewrite":
                                      details["tflite_bytes"]} if "tflite_bytes" in details else {})
                record = replace(record, details=details, quality_after=stage.flatbuffer_quality(model, context))
        records.append(record)
        notes.append(stage.report_note(record))
        sections += stage.report_section(record)
        artifacts |= stage.artifacts(record)
        if result.reference is not None and stage.takes == "flatbuffer":
            first_flatbuffer = result.reference  # a lossy flatbuffer stage: later checks compare with its reference
    sections += [rewrite_note(r) for r in rewrites]
    return StagesRun(model, first_flatbuffer, records, notes, sections, artifacts, tuple(rewrites))


def fix_flatbuffer(model_bytes: bytes, recipe: Recipe, data: Dataset, rewrites: list, events: Sink) -> bytes:
    """The converter's (or the .tflite source's) flatbuffer after the automatic fixes, each proven on
    the golden vectors; each applied fix is appended to `rewrites`."""
    if not recipe.validation.rewrite_dilated_convolutions:
        return model_bytes
    inputs, _ = golden_inputs(data, read_model(model_bytes), recipe.golden.vectors)
    fixed = fold_and_prove(model_bytes, inputs)
    if fixed.record is None:
        return model_bytes
    rewrites.append(fixed.record)
    events(Note(rewrite_note(fixed.record).removeprefix("- ")))
    return fixed.model_bytes


def check_model(model_bytes: bytes, recipe: Recipe, data: Dataset, litert_bytes: Optional[bytes] = None) -> ModelInfo:
    """The one deployability check of the final flatbuffer: TFLM can load and run it as asked, and its
    outputs depend on its inputs only (litert_bytes: the model LiteRT loads, when compression changed it)."""
    from ..emit.sources import resolver_ops

    info = read_model(model_bytes)
    # no float ops (unless float16 was asked for), int64, dynamic shapes left
    check_deployable(model_bytes, require_int8=recipe.model.torch is not None or (
        not recipe.model.is_flatbuffer and recipe.quantize.mode != "float16"))
    resolver_ops(info)  # fail now, with the op names, if TFLM lacks a kernel
    one_sample = take(data.x_calibration, slice(None, 1))
    fed = [tuple(x.shape[1:]) for x in quantize_inputs(one_sample, info, data.input_names)]
    if fed != [t.sample_shape for t in info.inputs]:  # runners feed the data by position
        raise KitError(f"the flatbuffer's inputs take {[t.sample_shape for t in info.inputs]} but the data "
                       f"would feed them {fed}", "report this with the model: the converter reordered its inputs")
    check_consistent(model_bytes, quantize_inputs(take(data.x_calibration, slice(None, 2)), info, data.input_names),
                     litert_bytes)
    if data.labels and len(data.labels) != info.outputs[0].elements:
        raise KitError(f"{len(data.labels)} labels given but the model's first output has "
                       f"{info.outputs[0].elements} values", "give one label per output class (data.labels), or none")
    return info


def run_golden(model_bytes: bytes, info: ModelInfo, data: Dataset, count: int) -> GoldenVectors:
    inputs, source = golden_inputs(data, info, count)
    return GoldenVectors(inputs, run_tflm(model_bytes, inputs), source)


def measure(model_bytes: bytes, info: ModelInfo, golden: GoldenVectors, margin: float) -> Arena:
    """The host's arena (TFLM's Python runtime): the figure when no device check runs, labelled as the host's."""
    measured = measure_arena(model_bytes, first_sample(golden.inputs, info))
    figure = target_arena.host(measured, platform.machine())
    return Arena(measured, arena_with_margin(measured, margin), figure, figure)


def derived_arena(model_bytes: bytes, host_arena: Arena, margin: float) -> Arena:
    """Without a device check: the Cortex-M4's arena derived from the model (tflm/derived_arena.py), the host's
    kept as a labelled extra; the host's figure (labelled as not the device's) only for a model the derivation
    does not model."""
    figure = derived_figure(model_bytes)
    if figure is None:
        return host_arena
    return Arena(figure.bytes, arena_with_margin(figure.bytes, margin), figure, host_arena.host)


def device_arena(recipe: Recipe, core: str, model_bytes: bytes, info: ModelInfo, golden: GoldenVectors,
                 host_arena: Arena, labels) -> Arena:
    """The golden self-test on `core` under QEMU (runtimes/device_check.py): bit-identical outputs or a KitError,
    and the arena the device used, which the firmware then reserves (+ the recipe's margin)."""
    probe = probe_arena(host_arena.measured)
    probe_sources = render(recipe, model_bytes, info, Arena(probe, probe), golden, labels)
    probe_sources["model_settings.h"] = probe_settings(probe_sources["model_settings.h"], probe)
    facts = model_facts(recipe.name, model_bytes, info, len(golden.inputs[0]), probe)
    device = run_device_check(core, model_bytes, probe_sources, golden.inputs, golden.outputs, facts)
    return Arena(device.arena.bytes, arena_with_margin(device.arena.bytes, recipe.arena_margin), device.arena,
                 host_arena.host, device)


def device_arena_or_aot(recipe: Recipe, core: str, model_bytes: bytes, info: ModelInfo, golden: GoldenVectors,
                        host_arena: Arena, labels, events: Sink) -> Arena:
    """The device check, except that a recipe emitting only the AOT runtime is not stopped by TFLM's firmware
    library refusing the model (its Cortex-M FULLY_CONNECTED takes int16 per tensor only): the AOT code is what
    ships, and it is checked against the host's TFLM in the aot phase; the arena then is the derived one."""
    try:
        return device_arena(recipe, core, model_bytes, info, golden, host_arena, labels)
    except KitError as refused:
        if refused.code != DEVICE_REFUSES or recipe.runtime != "aot":
            raise
        events(Note(f"device check skipped: {refused.problem} (runtime: aot ships the generated C, checked "
                    "against the host's TFLM)"))
    return derived_arena(model_bytes, host_arena, recipe.arena_margin)


def deployed_comparison(recipe: Recipe, stages: StagesRun, golden: GoldenVectors, arena: Arena, labels,
                        events: Sink) -> Optional[DeployedComparison]:
    """A compressed model's flash and arena next to the uncompressed model's, both on the target: the
    uncompressed model gets its own device check when the compressed one had one (its outputs are its own)."""
    plain = stages.uncompressed
    if plain is None or not tensors_compressed(stages.records):
        return None
    plain_info = read_model(plain)
    plain_golden = GoldenVectors(golden.inputs, run_tflm(plain, golden.inputs), golden.source)
    plain_arena = measure(plain, plain_info, plain_golden, recipe.arena_margin)
    if arena.device is None and arena.figure is not None and arena.figure.kind == "derived":
        plain_derived = derived_arena(plain, plain_arena, recipe.arena_margin).figure
        if plain_derived is not None and plain_derived.kind == "derived":
            return compare_deployed(stages.model_bytes, plain, arena.figure, plain_derived,
                                    (plain_arena.host, arena.host) if plain_arena.host and arena.host else None)
    if arena.device is None or arena.figure is None or arena.host is None:
        return compare_deployed(stages.model_bytes, plain, arena.host or arena.figure, plain_arena.host)
    with phase(events, "device", f"device check of the uncompressed model on {arena.device.core} under QEMU "
                                 "(its arena, for the comparison)"):
        plain_arena = device_arena(recipe, arena.device.core, plain, plain_info, plain_golden, plain_arena, labels)
    return compare_deployed(stages.model_bytes, plain, arena.figure, plain_arena.figure, (plain_arena.host, arena.host))


def render(recipe: Recipe, model_bytes: bytes, info: ModelInfo, arena: Arena, golden: GoldenVectors,
           labels) -> dict[str, str]:
    from ..emit.sources import render_all

    return render_all(recipe.name, "model.tflite", model_bytes, sha256(model_bytes), info,
                      arena_measured=arena.measured, arena_size=arena.size, arena_margin=recipe.arena_margin,
                      labels=labels, golden_inputs=golden.inputs, golden_outputs=golden.outputs,
                      host=platform.machine(), arena_figure=arena.figure,
                      arena_host=arena.host if arena.figure is not arena.host else None)


def _mode_and_accuracy(recipe: Recipe, run: StagesRun, loaded: Loaded) -> tuple[str, Optional[float], Optional[float]]:
    """The flatbuffer's mode, the float model's accuracy and the flatbuffer's (on TFLM)."""
    converter = next((r for r in run.records if r.kind == "quantize"), None)
    if converter is not None:
        return (recipe.quantize.mode, converter.quality_before.get("eval_accuracy"),
                converter.quality_after.get("eval_accuracy"))
    from ..stages.quantize import tflite_quality

    # a .tflite or PyTorch source: no Keras model to score (a PyTorch one was scored by its child); its type names the mode
    mode = read_model(run.model_bytes).inputs[0].type.lower()
    return mode, loaded.float_accuracy, tflite_quality(run.model_bytes, loaded.data).get("eval_accuracy")


class Agreement(NamedTuple):
    """How many golden vectors another run reproduced, and by how far the others missed (LSB)."""
    equal: int
    total: int
    max_lsb: int

    @property
    def bit_exact(self) -> bool:
        return self.equal == self.total


@dataclass(frozen=True)
class Conversion:
    """What `convert` made: the figures a caller reads, typed; `manifest` is manifest.json as written
    (the JSON contract, for whoever needs a field not lifted here)."""
    out: Path
    model_bytes: int
    mode: str
    tensor_arena_size: int
    arena_measured: int
    float_quality: Any
    quantized_quality: Any
    validation: dict[str, Agreement]   # tflm_vs_c_array, tflm_vs_litert_reference, tflm_vs_litert_optimized
    deployed: Optional[DeployedComparison]
    manifest: dict
    arena_source: str = "measured on the host with TFLM's Python runtime"   # where arena_measured comes from

    @classmethod
    def from_manifest(cls, out: Path, manifest: dict) -> "Conversion":
        summary = manifest["summary"]
        validation = {name: Agreement(result["equal"], result["total"], result["max_lsb"])
                      for name, result in manifest["validation"].items()}
        deployed = DeployedComparison(**manifest["deployed"]) if "deployed" in manifest else None
        return cls(Path(out), summary["model_bytes"], summary["mode"], summary["tensor_arena_size"],
                   summary["arena_measured"], summary["float_quality"], summary["quantized_quality"], validation,
                   deployed, manifest, summary.get("arena_source") or cls.arena_source)


@out_lock.released_after
def convert(recipe: Recipe, out: Path, force: bool = False, events: Optional[Sink] = None,
            log: Optional[Callable[[str], None]] = None, device_check: Optional[str] = None) -> Conversion:
    """Run `recipe` into `out`. Progress goes to `events` (a progress sink); `log` is a shorthand for
    `events=progress.ConsoleSink(log)`. device_check: overrides the recipe's `device_check`
    (auto | off | cortex-m4 | cortex-m7 | cortex-m0plus; runtimes/device_check.py)."""
    events = events or (progress.ConsoleSink(log) if log is not None else progress.silent)
    out = Path(out)
    check_output_path(out, force, inputs=recipe.input_paths())
    check_extras([kind for kind, _ in recipe.pipeline()])
    core = resolve_setting(device_check or recipe.device_check)  # before the work: a named core it cannot run fails now
    started = time.perf_counter()
    if not recipe.model.is_flatbuffer:  # a .tflite needs no TensorFlow
        tf_env.deterministic(recipe.seed)

    with phase(events, "load", "loading the model and data"):
        loaded = load_inputs(recipe, events)
    stages = run_stages(recipe, loaded, events)
    model_bytes = stages.model_bytes
    info = check_model(model_bytes, recipe, loaded.data, stages.uncompressed)

    with phase(events, "golden+arena", "running golden vectors on TFLM and measuring the arena on this host"):
        golden = run_golden(model_bytes, info, loaded.data, recipe.golden.vectors)
        arena = measure(model_bytes, info, golden, recipe.arena_margin)
    if core is not None:
        with phase(events, "device", f"device check: building the golden self-test for {core} and running it "
                                     "under QEMU (outputs and arena)"):
            arena = device_arena_or_aot(recipe, core, model_bytes, info, golden, arena, loaded.data.labels, events)
    else:
        arena = derived_arena(model_bytes, arena, recipe.arena_margin)
    sources = render(recipe, model_bytes, info, arena, golden, loaded.data.labels)

    with phase(events, "validate", "validating bit for bit: TFLM vs the C array, LiteRT reference and optimized kernels"):
        validation = validate_artifacts(model_bytes, golden.inputs, golden.outputs, sources["model_data.cc"],
                                        recipe.name, stages.uncompressed)
        litert_differences = check_litert_differences(validation, stages.uncompressed or model_bytes, golden.inputs,
                                                      recipe.validation.accept_litert_differences)

    aot = None
    if (recipe.runtime or "both") != "tflm":
        with phase(events, "aot", "compiling the model to C (AOT runtime) and checking it bit for bit on the host"):
            aot = build_aot(recipe, model_bytes, golden.inputs, golden.outputs, events)

    mode, float_accuracy, quantized_accuracy = _mode_and_accuracy(recipe, stages, loaded)
    parts = ConversionParts(
        name=recipe.name, recipe=recipe.model_dump(mode="json"), model_bytes=len(model_bytes),
        model_sha256=sha256(model_bytes), info=info, arena_measured=arena.measured, arena_size=arena.size,
        arena_margin=recipe.arena_margin, host=platform.machine(), stages=stages.records, validation=validation,
        arena_figure=arena.figure, arena_host=arena.host, device_check=arena.device.as_dict() if arena.device else None,
        kernels=registered_variants(model_bytes),
        golden_vectors=int(len(golden.inputs[0])), golden_source=golden.source, mode=mode,
        float_accuracy=float_accuracy, quantized_accuracy=quantized_accuracy,
        source="torch" if recipe.model.torch is not None else "tflite" if loaded.flatbuffer else "keras",
        rewrites=stages.rewrites, litert_differences=litert_differences, aot=aot.as_dict() if aot else None)
    deployed = deployed_comparison(recipe, stages, golden, arena, loaded.data.labels, events)
    with phase(events, "write", "writing the artifacts"):
        manifest = check_and_write(out, model_bytes, sources, golden.inputs, golden.outputs, parts, stages, started,
                                   deployed, aot_files=dict(aot.program.files) if aot else None)
    return Conversion.from_manifest(out, manifest)
