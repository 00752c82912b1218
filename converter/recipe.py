"""The recipe: one YAML file that drives a run, validated on load.

Every error names the field, the value given and what is allowed, on one line.
Relative paths in a recipe are relative to the recipe file, so a recipe and its
model travel together (system/paths.py). The `stages:` entries are the registered
stages (stages/registry.py); their order is checked on load (stages/base.check_order).
The run is `Recipe.pipeline()`: Keras stages, quantize, flatbuffer stages, compress;
a .tflite model skips the first two. quantize and compress are the recipe's own sections, never
`stages:` entries (one spelling each).
"""
from __future__ import annotations

import keyword
import math
import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import (BaseModel, Field, ValidationError, create_model, field_validator, model_serializer,
                      model_validator)

from .errors import KitError
from .stages.base import OrderError, check_order
from .stages.registry import list_stages, stages
from .system.paths import resolve_path
from .inputs.builders import builder_file
from .inputs.dataset import DataSpec
from .inputs.sources import DataSource, ModelSource, Strict as _Strict
from .system.safe_yaml import load_yaml_file
from .tflm.arena import ARENA_MARGIN
from .stages.compress import CompressSettings
from .stages.quantize import QuantizeSettings

# C and C++ keywords a symbol name must not be (Python's own list is not enough).
C_KEYWORDS = frozenset(
    """alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t
    char32_t class compl concept const consteval constexpr constinit const_cast continue co_await
    co_return co_yield decltype default delete do double dynamic_cast else enum explicit export
    extern false float for friend goto if inline int long mutable namespace new noexcept not not_eq
    nullptr operator or or_eq private protected public register reinterpret_cast requires return
    short signed sizeof static static_assert static_cast struct switch template this thread_local
    throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t while
    xor xor_eq restrict _Bool _Complex _Imaginary main""".split()
)
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _stage_entry_model() -> type[BaseModel]:
    """One entry of `stages:`: a mapping with exactly one key, a registered stage's name, whose value
    is that stage's settings. Built from the registry (stages/registry.py), never listed here."""
    fields = {name: (Optional[stage.Settings], None) for name, stage in list_stages().items()}

    class _StageEntry(_Strict):
        @model_validator(mode="before")
        @classmethod
        def _null_means_defaults(cls, value):
            if isinstance(value, dict):
                return {k: ({} if v is None else v) for k, v in value.items()}
            return value

        @model_validator(mode="after")
        def _exactly_one(self):
            if sum(getattr(self, kind) is not None for kind in STAGE_KINDS) != 1:
                raise ValueError(f"each stage is exactly one of {', '.join(STAGE_KINDS)}")
            return self

        @model_serializer(mode="wrap")
        def _only_the_stage(self, handler):
            # {kind: settings}, as written in the recipe: not a None for every other registered stage
            return {self.kind: handler(self)[self.kind]}

        @property
        def kind(self) -> str:
            return next(kind for kind in STAGE_KINDS if getattr(self, kind) is not None)

        @property
        def settings(self):
            return getattr(self, self.kind)

    return create_model("Stage", __base__=_StageEntry, __doc__="One stage; exactly one key is set.", **fields)


STAGE_KINDS = tuple(list_stages())
SECTION_KINDS = tuple(name for name, stage in stages().items() if stage.section)   # quantize, compress
Stage = _stage_entry_model()


class GoldenSettings(_Strict):
    vectors: int = Field(8, ge=1, le=10_000)


class ValidationSettings(_Strict):
    """How strict the conversion's checks are (docs/validation.md)."""

    rewrite_dilated_convolutions: bool = Field(
        True, description="fold SPACE_TO_BATCH_ND -> convolution -> BATCH_TO_SPACE_ND into one dilated "
        "convolution (proven equal to LiteRT's reference kernels); off: such a model is refused")
    accept_litert_differences: list[str] = Field(
        default_factory=list, description="operators (e.g. CONV_2D) where a difference from LiteRT's reference "
        "kernels beyond the explained FULLY_CONNECTED rounding is accepted instead of failing the conversion")

    @field_validator("accept_litert_differences")
    @classmethod
    def _operator_names(cls, names: list[str]) -> list[str]:
        from .tflite.schema import BUILTIN_NAMES

        known = set(BUILTIN_NAMES.values())
        for name in names:
            if name not in known:
                raise ValueError(f"'{name}' is not a TFLite builtin operator name (e.g. CONV_2D, FULLY_CONNECTED)")
        return names


class Recipe(_Strict):
    name: str = Field(description="C identifier for the generated symbols")
    model: ModelSource
    data: DataSource
    stages: list[Stage] = Field(default_factory=list)
    quantize: QuantizeSettings = Field(default_factory=QuantizeSettings)
    compress: Optional[CompressSettings] = None
    golden: GoldenSettings = Field(default_factory=GoldenSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    seed: int = 0
    eval_samples: int = Field(2000, ge=0, le=1_000_000, description="cap on eval inputs scored on TFLM")
    arena_margin: float = Field(ARENA_MARGIN, ge=0.0, le=10.0, description="fraction added to the measured arena")
    device_check: Literal["auto", "off", "cortex-m4", "cortex-m7", "cortex-m0plus"] = Field(
        "auto", description="run the golden self-test on this emulated core under QEMU during convert (its outputs "
                            "must equal TFLM's on the host; its arena goes into model_settings.h); auto: cortex-m4 "
                            "when TFLM_ROOT, arm-none-eabi-gcc and qemu-system-arm are there")
    runtime: Optional[Literal["tflm", "aot", "both"]] = Field(
        None, description="runtimes to emit: tflm (MicroInterpreter), aot (the model compiled to C, docs/aot.md) "
                          "or both; unset means both, skipping AOT with a note when the model is outside its set")

    @field_validator("name")
    @classmethod
    def _c_identifier(cls, name: str) -> str:
        if not IDENTIFIER.match(name):
            raise ValueError("must be a C identifier: letters, digits and _, not starting with a digit")
        if name in C_KEYWORDS or keyword.iskeyword(name):
            raise ValueError("is a C/C++ keyword; choose another name")
        # The symbols made from it: g_<name>_model_data, namespace <name>_model, the guard <NAME>_MODEL_...
        if name.startswith("_") or name.endswith("_") or "__" in name:
            raise ValueError("would make reserved C++ identifiers (a leading underscore, or a double underscore "
                             "in the generated <name>_model symbols); start and end with a letter or digit, "
                             "no '__'")
        return name

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers(cls, data):
        """Every number in the recipe finite, whichever class declares its field (stage settings live in
        their stages): YAML's .inf/.nan pass a `gt=0` bound and fail much later with a misleading error."""
        found = _first_non_finite(data, ())
        if found is not None:
            where, value = found
            raise KitError(f"recipe field '{_field_path(where)}' = {value!r}: must be a finite number",
                           "see the recipe reference in README.md")
        return data

    @model_validator(mode="before")
    @classmethod
    def _sections_are_not_entries(cls, data):
        """quantize and compress are the recipe's own sections: one spelling, so a `stages:` entry naming one
        is refused with the move that fixes it (rather than as an unknown stage)."""
        entries = data.get("stages") if isinstance(data, dict) else None
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            kind = next((key for key in entry if key in SECTION_KINDS), None) if isinstance(entry, dict) else None
            if kind is not None:
                raise KitError(f"recipe field 'stages[{index}]' = '{kind}': {kind} is the recipe's '{kind}:' section, "
                               "not a stages entry", f"move its settings to a top-level '{kind}:' section")
        return data

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, seed: int) -> int:
        if not 0 <= seed < 2**32:  # what NumPy's and TensorFlow's seeding accept
            raise ValueError(f"must be from 0 to {2**32 - 1}")
        return seed

    # Set by load_recipe: the folder relative paths are resolved against.
    base_dir: Path = Field(default=Path("."), exclude=True)

    def resolve(self, relative: str) -> Path:
        """A recipe path: $VARIABLES expanded, then relative to the recipe file."""
        return resolve_path(relative, self.base_dir)

    def data_spec(self) -> DataSpec:
        """What inputs/ needs to load the data: the recipe itself never goes below its layer."""
        return DataSpec(self.data, self.base_dir, self.eval_samples, self.seed)

    def training_losses(self) -> set[str]:
        """The label loss of every stage that trains on the labels (each stage declares its own)."""
        from .stages.registry import get

        losses = (get(stage.kind).label_loss(stage.settings) for stage in self.stages)
        return {loss for loss in losses if loss is not None}

    def with_stage_settings(self, kind: str, **update) -> "Recipe":
        """The recipe with every `kind` stage's settings updated (e.g. the CLI's --ray-address)."""
        stages = [stage.model_copy(update={kind: stage.settings.model_copy(update=update)})
                  if stage.kind == kind else stage for stage in self.stages]
        return self.model_copy(update={"stages": stages})

    def input_paths(self) -> tuple[Path, ...]:
        """Every file and folder the recipe reads, what an output folder must never contain: the
        recipe's own folder (so the recipe itself, and whatever sits beside it), the model file or
        SavedModel, the data .npz, and the .py files of the model, data and distill student builders."""
        from .stages.registry import get

        paths = [self.base_dir]
        torch = self.model.torch
        for relative in (self.model.path, self.data.npz, torch.exported if torch else None):
            if relative is not None:
                paths.append(self.resolve(relative))
        specs = [self.model.builder, self.data.builder, torch.builder if torch else None]
        specs += [spec for stage in self.stages for spec in get(stage.kind).input_files(stage.settings)]
        paths += [builder_file(spec, self.base_dir) for spec in specs if spec is not None]
        return tuple(path for path in paths if path is not None)

    def pipeline(self) -> list[tuple[str, BaseModel]]:
        """Every stage that runs, in order, as (name, settings): the `stages:` list's Keras stages, then
        quantize (not for a .tflite model), then its flatbuffer stages, then `compress:`."""
        from .stages.registry import get

        listed = [(stage.kind, stage.settings) for stage in self.stages]
        keras = [(kind, settings) for kind, settings in listed if get(kind).takes == "keras"]
        flatbuffer = [(kind, settings) for kind, settings in listed if get(kind).takes == "flatbuffer"]
        converter = [] if self.model.is_flatbuffer else [("quantize", self.quantize)]
        tail = [("compress", self.compress)] if self.compress is not None else []
        return keras + converter + flatbuffer + tail

    def check_order(self) -> None:
        """The stage ordering rules (stages/base.check_order), as a recipe error naming the stage."""
        kinds = [stage.kind for stage in self.stages]
        try:
            check_order(kinds, "flatbuffer" if self.model.is_flatbuffer else "keras")
        except OrderError as error:
            raise KitError(f"recipe field 'stages[{error.index}]' = '{kinds[error.index]}': {error}",
                           "reorder the stages (see docs/architecture.md)") from None
        if self.model.torch is not None and "quantize" in self.model_fields_set:
            raise KitError("recipe field 'quantize' is set, but a PyTorch model is quantized by litert-torch",
                           "remove the quantize section (model.torch.per_channel and calibration_samples set it)")
        if self.model.is_flatbuffer and "quantize" in self.model_fields_set:
            raise KitError("recipe field 'quantize' is set, but the model is a .tflite, which is already converted",
                           "remove the quantize section (or start from the Keras model)")


def _first_non_finite(node, where: tuple):
    """(path, value) of the first inf/nan float in parsed YAML, else None (iterative: no deep recursion)."""
    pending = [(node, where)]
    while pending:
        node, where = pending.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return where, node
        if isinstance(node, dict):
            pending.extend((value, (*where, key)) for key, value in reversed(list(node.items())))
        elif isinstance(node, list):
            pending.extend((value, (*where, i)) for i, value in reversed(list(enumerate(node))))
    return None


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: dict) -> str:
    where = _field_path(error["loc"]) or "recipe"
    value = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"recipe field '{where}' is not a known field"
    if error["type"] == "missing":
        return f"recipe field '{where}' is required but missing"
    shown = repr(value) if not isinstance(value, dict) else "{...}"
    return f"recipe field '{where}' = {shown}: {message}"


def parse_recipe(data: object, base_dir: Path = Path(".")) -> Recipe:
    """Validate an already-parsed recipe mapping."""
    if not isinstance(data, dict):
        raise KitError(
            f"the recipe must be a YAML mapping, got {type(data).__name__}",
            "start from models/recipes/default.yaml",
        )
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise KitError(_describe(first) + suffix, "see the recipe reference in README.md",
                       code=f"recipe-{first['type']}@{_field_path(first['loc'])}") from None
    recipe.check_order()
    return recipe.model_copy(update={"base_dir": base_dir})


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise KitError(f"recipe {path} does not exist or is not a file", "give the path of a recipe YAML file")
    data = load_yaml_file(path, "recipe")  # bounded: file size, alias expansion, nesting
    return parse_recipe(data, base_dir=path.resolve().parent)
