"""A PyTorch model (the recipe's model.torch) -> a full-integer int8 flatbuffer, by litert-torch.

litert-torch's PT2E quantization, calibrated on the recipe's calibration inputs, runs in a child process
(inputs/torch_child.py, started as `python -I torch_child.py request.json`, an argument list): torch,
torchao, JAX and litert-torch stay out of the kit's process (they load their own protobuf and absl next
to TensorFlow's), and the child may be another environment's Python (model.torch.python, else
$TFLM_KIT_TORCH_PYTHON, else the kit's own, which needs `pip install "tflm-kit[torch]"`). litert-torch
leaves a float interface (QUANTIZE in, DEQUANTIZE out); the kit removes those two so the firmware feeds
int8 and reads int8, as for a Keras model quantized with int8_io.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import KitError, foreign_text
from ..system import tf_env
from ..system.extras import require
from ..system.paths import resolve_path
from .builders import builder_file
from .dataset import Dataset, input_list, sample_count, take

TORCH_PYTHON_ENV = "TFLM_KIT_TORCH_PYTHON"
CHILD = Path(__file__).with_name("torch_child.py")
TIMEOUT_SECONDS = 3600  # a builder may train; the MLPerf KWS DS-CNN trains and converts in minutes


class TorchSource(BaseModel):
    """A PyTorch model: litert-torch converts it to a full-integer int8 flatbuffer (PT2E quantization
    calibrated on the recipe's data) in a child process; then it is a flatbuffer like a .tflite: flatbuffer
    stages only. The recipe's model.torch section (defined here: this layer takes its own settings type)."""

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


@dataclass(frozen=True)
class TorchConversion:
    """The int8 flatbuffer and what the child measured: the float module's outputs on the eval inputs
    (to score the float model), the versions that converted it and the time each part took."""
    model_bytes: bytes
    float_outputs: Optional[np.ndarray]
    details: dict = field(default_factory=dict)

    def note(self) -> str:
        d = self.details
        return (f"PyTorch model converted by litert-torch {d.get('litert_torch')} (torch {d.get('torch')}), PT2E int8 "
                f"on {d.get('calibration_samples')} calibration samples: build {d.get('seconds_build')} s, "
                f"quantize + convert {d.get('seconds_convert')} s, in {d.get('python')}")


def torch_python(source: TorchSource) -> str:
    """The Python that converts: the recipe's, else $TFLM_KIT_TORCH_PYTHON, else this one (with the extra)."""
    named = source.python or os.environ.get(TORCH_PYTHON_ENV)
    if named is None:
        require("torch", "a PyTorch model (model.torch)")
        return sys.executable
    path = Path(named).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        where = "model.torch.python" if source.python else f"${TORCH_PYTHON_ENV}"
        raise KitError(f"{where} is {named}, which is not an executable Python",
                       "point it at the python of an environment with torch and litert-torch "
                       "(its own venv: pip install torch==2.13.0 litert-torch==0.10.0)")
    return str(path)


def _module_fields(source: TorchSource, base_dir: Path) -> dict:
    """What the child builds the module from: the builder, or the exported program's absolute path."""
    if source.exported is None:
        return {"builder": _builder_spec(source, base_dir), "exported": None}
    path = resolve_path(source.exported, base_dir).resolve()
    if not path.is_file():
        raise KitError(f"model.torch.exported {path} does not exist", "fix the path (relative to the recipe file)")
    return {"builder": None, "exported": str(path)}


def _builder_spec(source: TorchSource, base_dir: Path) -> str:
    """'file.py:function' with the file made absolute (the child's working directory is elsewhere)."""
    path = builder_file(source.builder, base_dir)
    if path is None:
        return source.builder
    if not path.is_file():
        raise KitError(f"model.torch builder file {path} does not exist", "fix the path (relative to the recipe file)")
    return f"{path}:{source.builder.rpartition(':')[2]}"


def _write_request(folder: Path, source: TorchSource, base_dir: Path, data: Dataset, seed: int) -> Path:
    calibration = input_list(take(data.x_calibration, slice(None, source.calibration_samples)))
    if len(calibration) != 1:
        raise KitError("a PyTorch model takes one input here, and the data has several", "give one input array")
    np.save(folder / "calibration.npy", calibration[0].astype(np.float32))
    if data.x_eval is not None and sample_count(data.x_eval):
        np.save(folder / "eval.npy", input_list(data.x_eval)[0].astype(np.float32))
    if data.trainable:  # for a builder that trains (it takes x_train, y_train)
        np.save(folder / "x_train.npy", input_list(data.x_train)[0].astype(np.float32))
        np.save(folder / "y_train.npy", np.asarray(data.y_train))
    request = {**_module_fields(source, base_dir), "builder_args": source.builder_args,
               "channels_last": source.channels_last, "per_channel": source.per_channel, "seed": seed}
    (folder / "request.json").write_text(json.dumps(request))
    return folder / "request.json"


def _run_child(python: str, request: Path, spec: str) -> None:
    try:
        done = subprocess.run([python, "-I", str(CHILD), str(request)], cwd=request.parent, capture_output=True,
                              text=True, timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise KitError(f"converting the PyTorch model {spec} took over {TIMEOUT_SECONDS} s",
                       "check the builder (does it train for long?)") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        cause = lines[-1].removeprefix("error: ") if lines else foreign_text(done.stderr, tail=True)
        raise KitError(f"litert-torch could not convert the PyTorch model {spec}: {foreign_text(cause)}",
                       "check the builder returns a trained torch.nn.Module taking model.torch.input_shape "
                       "(channels-first when channels_last is true), with operators litert-torch converts")


def int8_interface(model_bytes: bytes) -> bytes:
    """Drop litert-torch's QUANTIZE (float in) and DEQUANTIZE (float out): int8 in and out, as on the device."""
    tf = tf_env.tensorflow()
    from tensorflow.lite.python.util import modify_model_io_type

    try:
        return bytes(modify_model_io_type(model_bytes, tf.int8, tf.int8))
    except (ValueError, RuntimeError) as exc:
        raise KitError(f"the converted PyTorch model's inputs/outputs are not quantized at the edges "
                       f"({foreign_text(exc)})", "check that PT2E quantized the whole model") from None


def convert_torch(source: TorchSource, base_dir: Path, data: Dataset, seed: int, python: str) -> TorchConversion:
    """Convert in the child started with `python` (torch_python(source), checked before the data loads)."""
    with tempfile.TemporaryDirectory(prefix="tflm-kit-torch-") as name:
        folder = Path(name)
        request = _write_request(folder, source, base_dir, data, seed)
        _run_child(python, request, source.builder or source.exported)
        model_bytes = (folder / "model.tflite").read_bytes()
        details = json.loads((folder / "result.json").read_text()) | {"python": python}
        outputs = np.load(folder / "float_outputs.npy") if (folder / "float_outputs.npy").is_file() else None
    return TorchConversion(int8_interface(model_bytes), outputs, details)
