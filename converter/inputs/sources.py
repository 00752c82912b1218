"""Where a recipe's model and data come from (its `model:` and `data:` sections): the settings of this
layer, which `recipe.py` composes into the Recipe. inputs/ reads them and never sees the Recipe."""
from __future__ import annotations

from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Base of the recipe's sections: unknown fields are errors, values never change after load."""

    # allow_inf_nan: YAML's .inf/.nan pass a `gt=0` bound and fail much later with a misleading error.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelSource(Strict):
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


class RandomData(Strict):
    """Seeded uniform inputs, for models with no real data at hand (validation only, no training)."""

    samples: int = Field(100, ge=1, le=100_000)
    low: float = 0.0
    high: float = 1.0

    @model_validator(mode="after")
    def _range(self):
        if self.high <= self.low:
            raise ValueError("high must be above low")
        return self


class DataSource(Strict):
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
