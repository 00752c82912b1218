"""What a stage is: typed kinds, one record format, and the registry the recipe schema is built from.

A stage changes the model and says what it did. There are three kinds, by what goes in and out:

- `KerasStage`       Keras model -> Keras model   (train, prune, cluster, qat, distill, ...)
- `ConverterStage`   Keras model -> flatbuffer    (quantize: the one step that makes the .tflite)
- `FlatbufferStage`  flatbuffer  -> flatbuffer    (compress, ...): bytes in, bytes out

Writing a stage (e.g. stages/federated.py) is one file plus one line in stages/registry.py:

    from pydantic import Field
    from .base import KerasStage, StageContext, StageSettings, register

    class FederatedSettings(StageSettings):
        rounds: int = Field(3, ge=1)

    @register
    class Federated(KerasStage):
        name = "federated"                     # the key in a recipe's `stages:` list
        Settings = FederatedSettings
        must_not_follow = ("qat",)              # optional ordering rule, checked at recipe load

        def transform(self, model, settings, context: StageContext):
            ...                                 # import TensorFlow here, not at module level
            return new_model, {"rounds": settings.rounds}   # details: JSON-ready

        def report_note(self, record) -> str:   # optional: the 'notes' cell of report.md
            return f"{record.details_dict()['rounds']} rounds"

The base class runs `transform`, measures quality before and after and the weights, times it, and
builds the `StageRecord`: no stage assembles its own record. Stage modules import TensorFlow only
inside functions, so the recipe schema (built from the registry) loads without TensorFlow.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, Protocol


from pydantic import BaseModel, ConfigDict

from ..errors import KitError
from ..progress import Sink, silent


class StageSettings(BaseModel):
    """Base of every stage's settings: unknown fields are errors; settings never change after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StageContext:
    """What every stage may use besides the model and its settings."""

    data: Any                        # inputs.dataset.Dataset
    seed: int = 0
    base_dir: Path = Path(".")       # the recipe's folder: relative paths in settings resolve here
    events: Sink = silent            # progress (epochs, trials) goes here


class Details(Protocol):
    """A stage's typed details (compress: stages/compressors.CompressRecord); JSON only at write time."""

    def as_dict(self) -> dict: ...


@dataclass(frozen=True)
class StageRecord:
    """What one stage did, as the manifest and the report show it."""

    kind: str
    settings: dict
    # a JSON-ready dict (most stages, for now), or a typed record with as_dict() (compress: CompressRecord)
    details: dict | Details = field(default_factory=dict)
    quality_before: Optional[dict] = None    # None: the stage does not score the model
    quality_after: Optional[dict] = None
    layers: Optional[list] = None            # per-layer weight statistics after a Keras stage
    sparsity_after: Optional[float] = None
    seconds: float = 0.0
    seconds_split: Optional[dict] = None     # where the time went, when a stage has distinct parts

    def __getitem__(self, key: str):
        """Read like the dict it becomes in manifest.json (record["stage"], record["seconds"], ...)."""
        return self.as_dict()[key]

    def get(self, key: str, default=None):
        return self.as_dict().get(key, default)

    def details_dict(self) -> dict:
        """The details as the manifest holds them (a typed record's as_dict())."""
        return self.details if isinstance(self.details, dict) else self.details.as_dict()

    def as_dict(self) -> dict:
        out = {"stage": self.kind, "settings": self.settings, **self.details_dict()}
        if self.quality_before is not None:
            out |= {"quality_before": self.quality_before, "quality_after": self.quality_after}
        if self.layers is not None:
            out |= {"sparsity_after": self.sparsity_after, "layers": self.layers}
        out["seconds"] = self.seconds
        if self.seconds_split is not None:
            out["seconds_split"] = self.seconds_split
        return out


@dataclass(frozen=True)
class StageResult:
    model: Any            # a Keras model, or the flatbuffer (bytes) after a converter stage
    record: StageRecord
    # a flatbuffer stage whose output must equal another model than its input on TFLM (compress with
    # int4: the int8 model with the same 4-bit levels); the later checks compare with it
    reference: Optional[bytes] = None


class Stage:
    """Common to all kinds. Subclasses set `name`, `Settings` and implement `transform`."""

    name: ClassVar[str]
    Settings: ClassVar[type[StageSettings]]
    takes: ClassVar[str]                       # "keras" or "flatbuffer"
    gives: ClassVar[str]
    must_not_follow: ClassVar[tuple[str, ...]] = ()   # kinds that may not come earlier in the list
    # True: the recipe's own top-level section (`quantize:`, `compress:`), never a `stages:` entry (one spelling)
    section: ClassVar[bool] = False
    # None: the stage takes a Keras 3 model too; else the fix shown when one meets it (check_keras3)
    keras3_instead: ClassVar[Optional[str]] = None
    extra: ClassVar[Optional[str]] = None       # the pip extra the stage needs (system/extras.py), if any

    def transform(self, model, settings, context: StageContext) -> tuple[Any, dict]:
        raise NotImplementedError

    # What a stage declares about itself, so the flows and the recipe never ask for a stage by name.
    def phase_detail(self, settings, data) -> str:  # noqa: ARG002 (a hook: stages override it)
        """The progress line of this stage's phase ('stage 2/3: <detail>')."""
        return self.name

    def label_loss(self, settings) -> Optional[str]:  # noqa: ARG002 (a hook: stages override it)
        """The loss this stage trains with on the data's labels (checked before any training), or None."""
        return None

    def input_files(self, settings) -> list[str]:  # noqa: ARG002 (a hook: stages override it)
        """Builder specs ('file.py:function') this stage reads besides the recipe's: an output folder
        must never hold them."""
        return []

    def report_note(self, record: StageRecord) -> str:  # noqa: ARG002 (a hook: stages override it)
        """The 'notes' cell of this stage's row in report.md."""
        return ""

    def report_section(self, record: StageRecord) -> list[str]:  # noqa: ARG002 (a hook: stages override it)
        """Extra report.md lines after the tables (e.g. a per-round table), when a row is not enough."""
        return []

    def artifacts(self, record: StageRecord) -> dict[str, bytes]:  # noqa: ARG002 (a hook: stages override it)
        """Extra files this stage adds to the output folder (e.g. a plot), by file name."""
        return {}

    def run(self, model, settings, context: StageContext) -> StageResult:
        started = time.perf_counter()
        new_model, details = self.transform(model, settings, context)
        return StageResult(new_model, StageRecord(self.name, settings.model_dump(), details,
                                                  seconds=round(time.perf_counter() - started, 2)))


# What a Keras 3 model can take instead of a stage built on TF-MOT or tf_keras: the kit's own post-training levers.
KERAS3_PTQ = ("drop the stage: a Keras 3 model takes train, quantize (int8, int16x8) and compress (int4, lut, "
              "prune, memory_plan, strip_metadata); or build the model with tf_keras for TF-MOT")


class KerasStage(Stage):
    """Keras model -> Keras model; the record has eval quality before/after and the weights after."""

    takes = gives = "keras"
    keras3_instead = KERAS3_PTQ

    def label_loss(self, settings) -> Optional[str]:
        """A Keras stage whose settings have epochs > 0 trains on the labels with its `loss` (default sparse
        categorical cross-entropy); a stage that trains otherwise says so by overriding this."""
        if getattr(settings, "epochs", 0) > 0:
            return getattr(settings, "loss", "sparse_categorical_crossentropy")
        return None

    def run(self, model, settings, context: StageContext) -> StageResult:
        from .training import keras_quality
        from .weights import overall_sparsity, weight_stats

        started = time.perf_counter()
        before = keras_quality(model, context.data)
        new_model, details = self.transform(model, settings, context)
        weights = weight_stats(new_model)
        record = StageRecord(self.name, settings.model_dump(), details, before,
                             keras_quality(new_model, context.data), weights, overall_sparsity(weights),
                             round(time.perf_counter() - started, 2))
        return StageResult(new_model, record)


class ConverterStage(Stage):
    """Keras model -> flatbuffer; quality is the float model's (Keras) and the flatbuffer's (TFLM)."""

    takes, gives = "keras", "flatbuffer"
    section = True

    def flatbuffer_quality(self, model_bytes: bytes, context: StageContext) -> dict:
        raise NotImplementedError

    def run(self, model, settings, context: StageContext) -> StageResult:
        from .training import keras_quality

        started = time.perf_counter()
        model_bytes, details = self.transform(model, settings, context)
        converted = time.perf_counter()
        before = keras_quality(model, context.data)
        scored_float = time.perf_counter()
        after = self.flatbuffer_quality(model_bytes, context)
        done = time.perf_counter()
        # scoring the eval set is most of this stage on big eval sets (eval_samples: 0 skips it)
        split = {"convert": round(converted - started, 2), "score_float": round(scored_float - converted, 2),
                 "score_tflm": round(done - scored_float, 2)}
        record = StageRecord(self.name, settings.model_dump(), details, before, after,
                             seconds=round(done - started, 2), seconds_split=split)
        return StageResult(model_bytes, record)


class FlatbufferStage(Stage):
    """flatbuffer (bytes) -> flatbuffer; the stage itself must prove the new bytes behave the same."""

    takes = gives = "flatbuffer"

    def transform_with_reference(self, model_bytes: bytes, settings,
                                 context: StageContext) -> tuple[bytes, dict | Details, bytes]:
        """(new model, details, the model TFLM must match byte for byte): the input model, unless the stage
        is lossy and names another (compress with int4: the int8 model with the same 4-bit levels)."""
        new_bytes, details = self.transform(model_bytes, settings, context)
        return new_bytes, details, model_bytes

    def run(self, model_bytes: bytes, settings, context: StageContext) -> StageResult:
        started = time.perf_counter()
        new_bytes, details, reference = self.transform_with_reference(model_bytes, settings, context)
        record = StageRecord(self.name, settings.model_dump(), details, seconds=round(time.perf_counter() - started, 2))
        return StageResult(new_bytes, record, reference=reference if reference != model_bytes else None)


_REGISTRY: dict[str, Stage] = {}


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator: make a stage known by its `name` (one instance; stages keep no state)."""
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(f"two stages are named {cls.name!r}")
    _REGISTRY[cls.name] = cls()
    return cls


def registered() -> dict[str, Stage]:
    """Every registered stage by name, in registration order (see stages/registry.py)."""
    return dict(_REGISTRY)


def check_order(kinds: list[str], source: str = "keras") -> None:
    """The ordering rules of a stage list, checked when a recipe loads. `source` is what the model
    file is: "keras" (Keras stages, then the converter, then flatbuffer stages) or "flatbuffer"
    (a .tflite: flatbuffer stages only). Raises OrderError(index, message)."""
    stages = registered()
    seen: list[str] = []
    for index, kind in enumerate(kinds):
        stage = stages[kind]
        if source == "flatbuffer" and stage.takes != "flatbuffer":
            raise OrderError(index, f"{kind} works on a Keras model, and the model is a .tflite "
                                    "(only flatbuffer stages such as compress can run on it)")
        if stage.section:
            raise OrderError(index, f"{kind} is not a list stage (it is the recipe's '{kind}:' section)")
        if stage.takes == "keras" and any(stages[k].takes == "flatbuffer" for k in seen):
            raise OrderError(index, f"{kind} works on a Keras model and comes after a flatbuffer stage "
                                    "(flatbuffer stages run after quantize)")
        late = [k for k in stage.must_not_follow if k in seen]
        if late:
            raise OrderError(index, f"{kind} comes after {late[0]}; {kind} must come before {late[0]}")
        seen.append(kind)


class OrderError(ValueError):
    def __init__(self, index: int, message: str):
        self.index = index
        super().__init__(message)


def check_extras(kinds: list[str]) -> None:
    """Before any work: every stage's pip extra is installed, else one line naming the pip install."""
    from ..system.extras import require

    for kind in kinds:
        if _REGISTRY[kind].extra is not None:
            require(_REGISTRY[kind].extra, f"stage {kind}")


def check_keras3(model, kinds: list[str], where: str) -> None:
    """Refuse, before any stage runs, a Keras 3 model with a stage that takes Keras 2 models only
    (TF-MOT 0.8 wraps tf_keras layers only: prune, cluster, qat; and the stages built on tf_keras)."""
    from ..system import tf_env

    if not tf_env.is_keras3(model):
        return
    for kind in kinds:
        instead = _REGISTRY[kind].keras3_instead
        if instead is not None:
            raise KitError(f"stage {kind} needs a Keras 2 (tf_keras) model and {where} is a Keras 3 model", instead)
