"""tflm-kit: Keras model (or .tflite) -> optimized int8 .tflite -> validated TFLM firmware artifacts.

The public API is `__all__` below; bench/, tools/, the pytest plugin and users import from here,
not from the sub-packages (whose layout may change). Importing the package has no side effects:
each name loads its module on first use (PEP 562 `__getattr__`), so `import converter` does not load
TensorFlow. Modules that need TensorFlow go through `tf_env`, which selects Keras 2 first.

    from converter import convert, load_recipe, ConsoleSink
    done = convert(load_recipe("models/recipes/default.yaml"), "build/digits", events=ConsoleSink())
    done.tensor_arena_size, done.validation["tflm_vs_c_array"].equal, done.manifest  # a Conversion

The table is grouped by use, as TF-MOT's api/ is: run a recipe; its inputs; stages; runtimes and the
flatbuffer; validation and goldens; firmware; a search's building blocks; federated; progress; errors.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> "module:attribute" (module relative to this package; no attribute: the module)
_EXPORTS = {
    # run a recipe
    "convert": "flows.convert:convert",
    "Conversion": "flows.convert:Conversion",
    "load_recipe": "recipe:load_recipe",
    "parse_recipe": "recipe:parse_recipe",
    "Recipe": "recipe:Recipe",
    # the recipe's inputs: where the model and data come from, loaded without the recipe
    "ModelSource": "inputs.sources:ModelSource",
    "DataSource": "inputs.sources:DataSource",
    "DataSpec": "inputs.dataset:DataSpec",
    "load_model": "inputs.keras_model:load_model",
    "load_data": "inputs.dataset:load_data",
    "Dataset": "inputs.dataset:Dataset",
    "kws_mfcc": "inputs.features.kws_mfcc",
    "ad_logmel": "inputs.features.ad_logmel",
    # validate and golden regression tests
    "validate_model": "flows.validate:validate_model",
    "validate_in_child": "flows.validate:validate_in_child",
    "record_golden": "flows.golden:record",
    "check_golden": "flows.golden:check",
    "GoldenMismatch": "flows.golden:GoldenMismatch",
    # firmware
    "render_firmware": "flows.firmware:render_firmware",
    "list_boards": "runtimes.boards:list_boards",
    "flash": "flows.flash:flash",
    "measure_bare": "runtimes.bare:measure_bare",
    "image_size": "system.elf_size:image_size",
    "price_all": "runtimes.registry:price_all",
    "runtime_names": "runtimes.registry:runtime_names",
    # errors
    "KitError": "errors:KitError",
    "CheckFailed": "errors:CheckFailed",
    # progress
    "ConsoleSink": "progress:ConsoleSink",
    "EventLog": "progress:EventLog",
    "PhaseStarted": "progress:PhaseStarted",
    "PhaseEnded": "progress:PhaseEnded",
    "Epoch": "progress:Epoch",
    "Trial": "progress:Trial",
    "Note": "progress:Note",
    # stages: run one, or write one (see stages/base.py)
    "run_stage": "stages:run_stage",
    "KerasStage": "stages.base:KerasStage",
    "ConverterStage": "stages.base:ConverterStage",
    "FlatbufferStage": "stages.base:FlatbufferStage",
    "StageSettings": "stages.base:StageSettings",
    "StageContext": "stages.base:StageContext",
    "StageRecord": "stages.base:StageRecord",
    "StageResult": "stages.base:StageResult",
    "register_stage": "stages.base:register",
    "TrainSettings": "stages.train:TrainSettings",
    "PruneSettings": "stages.prune:PruneSettings",
    "ClusterSettings": "stages.cluster:ClusterSettings",
    "QatSettings": "stages.qat:QatSettings",
    "DistillSettings": "stages.distill:DistillSettings",
    "QuantizeSettings": "stages.quantize:QuantizeSettings",
    "CompressSettings": "stages.compress:CompressSettings",
    "Int4FineTuneSettings": "stages.int4_finetune:Int4FineTuneSettings",
    "compress_model": "stages.compress:compress_model",
    "CompressRecord": "stages.compressors:CompressRecord",
    "strip_metadata": "tflite.strip:strip",
    # the flatbuffer and the runtimes
    "read_model": "tflite.info:read_model",
    "read_graph": "tflite.info:read_graph",
    "check_deployable": "tflm.deployable:check_deployable",
    "open_untrusted": "tflm.isolation:open_untrusted",
    "check_runs_safely": "tflm.isolation:check_runs_safely",
    "run_tflm": "tflm.runners:run_tflm",
    "run_litert": "tflm.runners:run_litert",
    "quantize": "tflm.runners:quantize",
    "dequantize": "tflm.runners:dequantize",
    "output_metrics": "compare.fidelity:output_metrics",
    "measure_arena": "tflm.arena:measure_arena",
    "TfliteModel": "tflite.tflite_model:TfliteModel",
    # what the device stores and how a candidate is judged (optimize's building blocks)
    "deployed_flash": "tflm.footprint:deployed_flash",
    "DeployedCost": "optimize.cost:DeployedCost",
    "device_available": "optimize.cost:device_available",
    "device_cost": "optimize.cost:device_cost",
    "linked_image_bytes": "optimize.cost:linked_image_bytes",
    "Guards": "optimize.guards:Guards",
    "CLASSIFIER": "optimize.guards:CLASSIFIER",
    "REGRESSION": "optimize.guards:REGRESSION",
    "evidence_note": "optimize.guards:evidence_note",
    "FEW_SELECTION_INPUTS": "optimize.guards:FEW_SELECTION_INPUTS",
    "describe_candidate": "optimize.space:describe",
    "cluster_counts": "optimize.space:cluster_counts",
    # the AOT runtime: the model compiled to C (docs/aot.md)
    "generate_aot": "aot.program:generate",
    "AotProgram": "aot.program:AotProgram",
    "AotNumerics": "aot.lower:Numerics",
    "AotPlanOptions": "aot.inplace:PlanOptions",
    "AOT_NO_INPLACE": "aot.inplace:NO_INPLACE",
    "validate_aot_on_host": "aot.validate:validate_on_host",
    # federated fine-tuning
    "DpSettings": "federated.settings:DpSettings",
    "write_federated_plot": "federated.presentation:write_accuracy_plot",
    # TensorFlow with Keras 2 (tf_env.tensorflow(), tf_env.keras()): import through this, first
    "tf_env": "system.tf_env",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'converter' has no attribute {name!r}")
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    value = getattr(module, attribute) if attribute else module
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
