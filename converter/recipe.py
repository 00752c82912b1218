"""The recipe: one YAML file that drives a run, validated on load.

Every error names the field, the value given and what is allowed, on one line.
Relative paths in a recipe are relative to the recipe file, so a recipe and its
model travel together.
"""
from __future__ import annotations

import keyword
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import KitError
from .federated.settings import FederatedSettings

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
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSource(_Strict):
    """Where the float Keras model comes from: a file or a builder function."""

    path: Optional[str] = Field(None, description=".keras, .h5 or SavedModel directory")
    builder: Optional[str] = Field(None, description="'file.py:function' or 'module:function'")
    builder_args: dict = Field(default_factory=dict)
    trust_custom_code: bool = False

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.builder is None):
            raise ValueError("give exactly one of 'path' or 'builder'")
        return self


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
    x_train: str = "x_train"
    y_train: str = "y_train"
    x_eval: str = "x_test"
    y_eval: str = "y_test"
    x_calibration: Optional[str] = Field(None, description="npz key; default: the training inputs")
    scale: float = Field(1.0, description="inputs are multiplied by this ...")
    offset: float = Field(0.0, description="... then this is added")
    labels: Optional[list[str]] = None

    @model_validator(mode="after")
    def _one_source(self):
        if sum(x is not None for x in (self.npz, self.builder, self.random)) != 1:
            raise ValueError("give exactly one of 'npz', 'builder' or 'random'")
        return self


LOSSES = Literal["sparse_categorical_crossentropy", "categorical_crossentropy", "mse", "binary_crossentropy"]


class TrainSettings(_Strict):
    """Fit the float model on data.x_train before optimizing (for builders that return it untrained)."""

    epochs: int = Field(5, ge=1, le=1000)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    loss: LOSSES = "sparse_categorical_crossentropy"


class PruneSettings(_Strict):
    final_sparsity: float = Field(0.5, gt=0.0, lt=1.0)
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    schedule: Literal["constant", "polynomial"] = "polynomial"
    structured_2_4: bool = False
    epochs: int = Field(2, ge=1, le=1000)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    loss: LOSSES = "sparse_categorical_crossentropy"

    @model_validator(mode="after")
    def _ordered(self):
        if self.schedule == "polynomial" and self.initial_sparsity >= self.final_sparsity:
            raise ValueError("initial_sparsity must be below final_sparsity")
        return self


class ClusterSettings(_Strict):
    loss: LOSSES = "sparse_categorical_crossentropy"
    clusters: int = Field(16, ge=2, le=256)
    per_layer: dict[str, Annotated[int, Field(ge=2, le=256)]] = Field(
        default_factory=dict, description="layer name -> its own cluster count (others get 'clusters')")
    per_channel: bool = True
    preserve_sparsity: bool = True
    centroid_init: Literal["kmeans_plus_plus", "linear", "density_based", "random"] = "kmeans_plus_plus"
    epochs: int = Field(1, ge=0, le=1000)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-4, gt=0)


class QatSettings(_Strict):
    """Quantization-aware fine-tuning (TF-MOT); the schemes keep pruning and/or clustering."""

    scheme: Literal["default", "prune_preserve", "cluster_preserve", "prune_cluster_preserve"] = "default"
    epochs: int = Field(1, ge=1, le=1000)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    loss: LOSSES = "sparse_categorical_crossentropy"


class DistillSettings(_Strict):
    """Knowledge distillation: train a (smaller) student on the current model's softened outputs.
    The student then replaces the model for the stages after this one."""

    student_builder: str = Field(description="'file.py:function' (relative to the recipe) or 'module:function'")
    builder_args: dict = Field(default_factory=dict)
    temperature: float = Field(4.0, gt=0, le=100)
    alpha: float = Field(0.1, ge=0.0, le=1.0, description="weight of the hard-label loss; 1 - alpha on the teacher's")
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0)


class QuantizeSettings(_Strict):
    mode: Literal["int8", "int16x8", "float16"] = "int8"
    int8_io: bool = Field(True, description="integer input/output tensors (int16 for int16x8); else float32")
    per_channel: bool = True
    calibration_samples: int = Field(200, ge=1, le=100_000)


class CompressSettings(_Strict):
    """TFLM LUT compression of the quantized flatbuffer (after quantize; decoded by TFLM_DECODE)."""

    lut: bool = True
    max_index_bits: int = Field(7, ge=1, le=7, description="leave tensors that need wider indices as they are")
    verify_samples: int = Field(200, ge=1, le=100_000,
                                description="real inputs on which TFLM must give identical bytes before and after")
    strip_metadata: bool = Field(False, description="drop what TFLM never reads: names, signatures, converter "
                                 "metadata, repeated weight zero points, encoded tensors' quantization")


class Stage(_Strict):
    """One Keras-level stage; exactly one key is set."""

    train: Optional[TrainSettings] = None
    prune: Optional[PruneSettings] = None
    cluster: Optional[ClusterSettings] = None
    qat: Optional[QatSettings] = None
    distill: Optional[DistillSettings] = None
    federated: Optional[FederatedSettings] = None

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

    @property
    def kind(self) -> str:
        return next(kind for kind in STAGE_KINDS if getattr(self, kind) is not None)

    @property
    def settings(self):
        return getattr(self, self.kind)


STAGE_KINDS = ("train", "prune", "cluster", "qat", "distill", "federated")


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
    arena_margin: float = Field(0.10, ge=0.0, le=10.0, description="fraction added to the measured arena")

    @field_validator("name")
    @classmethod
    def _c_identifier(cls, name: str) -> str:
        if not IDENTIFIER.match(name):
            raise ValueError("must be a C identifier: letters, digits and _, not starting with a digit")
        if name in C_KEYWORDS or keyword.iskeyword(name):
            raise ValueError("is a C/C++ keyword; choose another name")
        return name

    # Set by load_recipe: the folder relative paths are resolved against.
    base_dir: Path = Field(default=Path("."), exclude=True)

    def resolve(self, relative: str) -> Path:
        """A recipe path: $VARIABLES expanded, then relative to the recipe file."""
        for variable in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", relative):
            if variable not in os.environ:
                raise KitError(f"recipe path '{relative}' uses ${variable}, which is not set",
                               f"export {variable}=<folder> (for the MLPerf Tiny recipes: the shared data folder)")
        path = Path(os.path.expandvars(relative)).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)


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
        raise KitError(_describe(first) + suffix, "see the recipe reference in README.md") from None
    return recipe.model_copy(update={"base_dir": base_dir})


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise KitError(f"recipe {path} does not exist or is not a file", "give the path of a recipe YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise KitError(f"recipe {path} is not valid YAML{where}", "fix the YAML syntax") from None
    return parse_recipe(data, base_dir=path.resolve().parent)
