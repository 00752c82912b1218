"""Where a recipe's model and data come from (its `model:` and `data:` sections): the settings of this
layer, which `recipe.py` composes into the Recipe. inputs/ reads them and never sees the Recipe."""
from __future__ import annotations

from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """Base of the recipe's sections: unknown fields are errors, values never change after load."""

    # allow_inf_nan: YAML's .inf/.nan pass a `gt=0` bound and fail much later with a misleading error.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TorchSource(BaseModel):
    """A PyTorch model: litert-torch converts it to a full-integer int8 flatbuffer (PT2E quantization
    calibrated on the recipe's data) in a child process; then it is a flatbuffer like a .tflite: flatbuffer
    stages only. The recipe's model.torch section (inputs/ owns its settings types)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    builder: Optional[str] = Field(None, description="'file.py:function' or 'module:function' returning a "
                                   "trained torch.nn.Module")
    builder_args: dict = Field(default_factory=dict)
    exported: Optional[str] = Field(None, description="or a torch.export.save file (.pt2): torch.export.load "
                                    "unpickles it, so it needs model.trust_custom_code: true")
    input_shape: list[int] = Field(..., min_length=1, max_length=5,
                                   description="one input sample's shape without the batch axis, in the "
                                   "data's layout (the layout the firmware feeds)")
    channels_last: bool = Field(True, description="the data and the firmware are channels-last (H, W, C) "
                                "and the module takes channels-first (C, H, W): litert-torch's "
                                "to_channel_last_io wraps it")
    per_channel: bool = True
    calibration_samples: int = Field(200, ge=1, le=100_000)
    python: Optional[str] = Field(None, description="a Python with torch and litert-torch installed "
                                  "(default: $TFLM_KIT_TORCH_PYTHON, else the kit's own Python)")

    @model_validator(mode="after")
    def _one_module(self):
        if (self.builder is None) == (self.exported is None):
            raise ValueError("give exactly one of 'builder' or 'exported'")
        return self

    @field_validator("input_shape")
    @classmethod
    def _positive(cls, shape: list[int]) -> list[int]:
        if any(d < 1 for d in shape):
            raise ValueError("every dimension must be at least 1")
        return shape


class ModelSource(Strict):
    """Where the model comes from: a file, a builder function, or a PyTorch module (torch). A .tflite
    file and a PyTorch model skip the Keras stages and quantize: only flatbuffer stages (compress) run."""

    path: Optional[str] = Field(None, description=".keras, .h5, SavedModel directory, or .tflite")
    builder: Optional[str] = Field(None, description="'file.py:function' or 'module:function'")
    builder_args: dict = Field(default_factory=dict)
    trust_custom_code: bool = False
    torch: Optional[TorchSource] = Field(None, description="a PyTorch model converted by litert-torch")

    @model_validator(mode="after")
    def _one_source(self):
        if [self.path, self.builder, self.torch].count(None) != 2:
            raise ValueError("give exactly one of 'path', 'builder' or 'torch'")
        if self.torch is not None and self.torch.exported is not None and not self.trust_custom_code:
            raise ValueError("torch.exported is read by torch.export.load, which unpickles the file (it can run "
                             "code): set model.trust_custom_code: true if you trust where it came from, or give "
                             "torch.builder")
        return self

    @property
    def is_flatbuffer(self) -> bool:
        """No Keras stages and no quantize section: the load phase gives a flatbuffer."""
        return self.torch is not None or (self.path is not None and self.path.lower().endswith(".tflite"))


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
