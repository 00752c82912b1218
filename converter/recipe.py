"""The recipe: one YAML file that drives a run, validated on load.

Every error names the field, the value given and what is allowed, on one line.
Relative paths in a recipe are relative to the recipe file, so a recipe and its
model travel together (system/paths.py). The `stages:` entries are the registered
stages (stages/registry.py); their order is checked on load (stages/base.check_order).
The run is `Recipe.pipeline()`: Keras stages, quantize, flatbuffer stages, compress;
a .tflite model skips the first two.
"""
from __future__ import annotations

import keyword
import math
import re
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_serializer,
                      model_validator)

from .errors import KitError
from .stages.base import OrderError, check_order
from .stages.registry import list_stages
from .system.paths import resolve_path
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


class _Strict(BaseModel):
    # allow_inf_nan: YAML's .inf/.nan pass a `gt=0` bound and fail much later with a misleading error.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelSource(_Strict):
    """Where the model comes from: a file or a builder function. A .tflite file skips the Keras
    stages and quantize: only flatbuffer stages (compress) run on it."""

    path: Optional[str] = Field(None, description=".keras, .h5, SavedModel directory, or .tflite")
    builder: Optional[str] = Field(None, description="'file.py:function' or 'module:function'")
    builder_args: dict = Field(default_factory=dict)
    trust_custom_code: bool = False

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.builder is None):
            raise ValueError("give exactly one of 'path' or 'builder'")
        return self

    @property
    def is_flatbuffer(self) -> bool:
        return self.path is not None and self.path.lower().endswith(".tflite")


class RandomData(_Strict):
    """Seeded uniform inputs, for models with no real data at hand (validation only, no training)."""

    samples: int = Field(100, ge=1, le=100_000)
    low: float = 0.0
    high: float = 1.0

    @model_validator(mode="after")
    def _range(self):
        if self.high <= self.low:
            raise ValueError("high must be above low")
        return self


class DataSource(_Strict):
    """Arrays for training, calibration and evaluation: an .npz, a builder, or seeded random inputs."""

    npz: Optional[str] = None
    builder: Optional[str] = None
    random: Optional[RandomData] = None
    builder_args: dict = Field(default_factory=dict)
    # npz keys. A model with several inputs reads `<key>_0` … `<key>_<n-1>`, or the list given.
    x_train: Union[str, list[str]] = "x_train"
    y_train: str = "y_train"
    x_eval: Union[str, list[str]] = "x_test"
    y_eval: str = "y_test"
    x_calibration: Optional[Union[str, list[str]]] = Field(None, description="npz key; default: the training inputs")
    scale: float = Field(1.0, description="inputs are multiplied by this ...")
    offset: float = Field(0.0, description="... then this is added")
    labels: Optional[list[str]] = None

    @model_validator(mode="after")
    def _one_source(self):
        if sum(x is not None for x in (self.npz, self.builder, self.random)) != 1:
            raise ValueError("give exactly one of 'npz', 'builder' or 'random'")
        return self


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
Stage = _stage_entry_model()


def __getattr__(name: str):
    """Each stage's settings class lives with its stage; `from converter.recipe import PruneSettings`
    still works, found through the registry."""
    from .stages.registry import stages

    for stage in stages().values():
        if stage.Settings.__name__ == name:
            return stage.Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class GoldenSettings(_Strict):
    vectors: int = Field(8, ge=1, le=10_000)


class Recipe(_Strict):
    name: str = Field(description="C identifier for the generated symbols")
    model: ModelSource
    data: DataSource
    stages: list[Stage] = Field(default_factory=list)
    quantize: QuantizeSettings = Field(default_factory=QuantizeSettings)
    compress: Optional[CompressSettings] = None
    golden: GoldenSettings = Field(default_factory=GoldenSettings)
    seed: int = 0
    eval_samples: int = Field(2000, ge=0, le=1_000_000, description="cap on eval inputs scored on TFLM")
    arena_margin: float = Field(ARENA_MARGIN, ge=0.0, le=10.0, description="fraction added to the measured arena")
    runtime: Optional[Literal["tflm", "aot", "both"]] = Field(
        None, description="runtimes to emit: tflm (MicroInterpreter), aot (the model compiled to C, docs/aot.md) "
                          "or both; unset means both, skipping AOT with a note when the model is outside its set")
    device_check: Literal["auto", "off", "cortex-m4", "cortex-m7", "cortex-m0plus"] = Field(
        "auto", description="run the golden self-test on this emulated core under QEMU during convert (its outputs "
                            "must equal TFLM's on the host; its arena goes into model_settings.h); auto: cortex-m4 "
                            "when TFLM_ROOT, arm-none-eabi-gcc and qemu-system-arm are there")

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
        if self.model.is_flatbuffer and "quantize" in self.model_fields_set:
            raise KitError("recipe field 'quantize' is set, but the model is a .tflite, which is already converted",
                           "remove the quantize section (or start from the Keras model)")
        if self.compress is not None and "compress" in kinds:
            raise KitError("recipe gives compress twice (the 'compress' section and in 'stages')",
                           "keep one of them")


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
