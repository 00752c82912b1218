"""4-bit weights: requantize CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED filters to 16 levels and
store them as packed INT4 tensors, which TFLM's kernels unpack into an int8 scratch buffer.

Two steps, so the lossy one can be checked apart from the lossless one:
- `requantize(model_bytes)`: the "int8 twin" -- every eligible filter channel c rescaled so its
  values fit [-7, 7] (q' = clip(round(q / m_c)), scale' = scale * m_c, m_c the step of least squared
  error among fractions of max|q_c| / 7, m_c = 1 when the channel already fits), its bias rescaled to stay in accumulator units (bias' = round(bias /
  m_c), bias scale' = bias scale * m_c). Lossy, like any coarser quantization.
- `pack(twin_bytes)`: the same model with those filters as INT4 (two values per byte, element 2i in
  the low nibble, as tensor_utils::UnpackDenseInt4IntoInt8 reads them). Lossless: TFLM must give
  the twin's output bytes exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..schema import schema
from ..tflite_model import TfliteModel

FILTER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
FILTER_INPUT, BIAS_INPUT = 1, 2
LEVELS = 7  # symmetric 4-bit range used: [-7, 7] (TFLite's int4 weights leave -8 unused too)


@dataclass(frozen=True)
class Int4Choice:
    tensor: int
    name: str
    operator: str
    shape: tuple
    rescaled_channels: int      # channels whose values did not fit [-7, 7] and were requantized
    bytes_before: int
    bytes_after: int

    def as_dict(self) -> dict:
        return {"method": "int4", "tensor": self.tensor, "name": self.name, "operator": self.operator,
                "shape": list(self.shape), "rescaled_channels": self.rescaled_channels,
                "bytes_before": self.bytes_before, "bytes_after": self.bytes_after}


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _filters(model: TfliteModel):
    """(filter index, bias index or None, operator name) for every filter only one such operator reads."""
    users = model.buffer_users()
    for operator in model.operators:  # main subgraph only
        op = model.operator_name(operator)
        inputs = [int(i) for i in operator.inputs]
        if op not in FILTER_OPS or len(inputs) <= FILTER_INPUT:
            continue
        f = inputs[FILTER_INPUT]
        tensor = model.tensors[f]
        quant = tensor.quantization
        if op == "FULLY_CONNECTED" and quant is not None and quant.scale is not None and len(quant.scale) > 1:
            continue  # TFLM's FULLY_CONNECTED refuses int4 filters quantized per channel (fully_connected_common.cc)
        if model.tensor_type(tensor) != "INT8" or model.data(tensor) is None or users.get(tensor.buffer) != 1 \
                or len(model.consumers(f)) != 1 or quant is None or quant.scale is None \
                or any(int(z) for z in (quant.zeroPoint if quant.zeroPoint is not None else [])):
            continue
        bias = inputs[BIAS_INPUT] if len(inputs) > BIAS_INPUT and inputs[BIAS_INPUT] >= 0 else None
        if bias is not None and (model.data(model.tensors[bias]) is None or users.get(model.tensors[bias].buffer) != 1
                                 or model.tensor_type(model.tensors[bias]) != "INT32"):
            continue
        yield f, bias, op


def _channels(array: np.ndarray, scales: int, axis: int) -> np.ndarray:
    """The filter as (channels, values per channel); one row when quantized per tensor."""
    return np.moveaxis(array, axis, 0).reshape(scales, -1) if scales > 1 else array.reshape(1, -1)


def requantize(model_bytes: bytes, layers: list[str] | None = None) -> tuple[bytes, list[Int4Choice]]:
    """The int8 twin: eligible filters on a 4-bit grid (values in [-7, 7]), their biases rescaled.
    layers: only filters whose tensor name contains one of these strings (None: every eligible one)."""
    model = TfliteModel.from_bytes(model_bytes)
    choices = []
    for f, bias, op in list(_filters(model)):
        tensor = model.tensors[f]
        if layers is not None and not any(part in model.tensor_name(tensor) for part in layers):
            continue
        quant = tensor.quantization
        array, scales, axis = model.constant(tensor), len(quant.scale), int(quant.quantizedDimension or 0)
        rows = _channels(array, scales, axis).astype(np.float64)
        factor = _factors(rows)
        requantized = np.clip(_round_half_away(rows / factor[:, None]), -LEVELS, LEVELS).astype(np.int8)
        shaped = np.moveaxis(requantized.reshape(np.moveaxis(array, axis, 0).shape), 0, axis) if scales > 1 \
            else requantized.reshape(array.shape)
        model.buffers[tensor.buffer].data = np.frombuffer(shaped.tobytes(), np.uint8)
        quant.scale = [float(s) for s in np.asarray(quant.scale, np.float64) * factor]
        if bias is not None:
            _rescale_bias(model, bias, factor)
        choices.append(Int4Choice(f, model.tensor_name(tensor), op, tuple(array.shape), int((factor > 1).sum()),
                                  array.size, (array.size + 1) // 2))
    return model.to_bytes(), choices


# Step sizes tried per channel, as fractions of max|q| / 7: a smaller step clips the few largest
# weights to +-7 but resolves the many small ones (scaling by the maximum alone rounded most
# ResNet-8 weights to 0).
CLIP_FRACTIONS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


def least_error_steps(rows: np.ndarray, min_step: float) -> np.ndarray:
    """Per row (channel), the grid step among CLIP_FRACTIONS of max|row| / 7 (at least min_step) with the
    least squared error after rounding half away from zero and clipping to [-7, 7]. The one rule for
    int8 filters here and for float filters fine-tuned on the grid (stages/int4_finetune.py)."""
    peak = np.abs(rows).max(axis=1) / LEVELS
    steps = np.maximum(peak[:, None] * np.asarray(CLIP_FRACTIONS)[None, :], min_step)  # (channels, tries)
    rounded = np.clip(_round_half_away(rows[:, None, :] / steps[:, :, None]), -LEVELS, LEVELS) * steps[:, :, None]
    error = ((rounded - rows[:, None, :]) ** 2).sum(axis=2)
    return steps[np.arange(len(rows)), error.argmin(axis=1)]


def _factors(rows: np.ndarray) -> np.ndarray:
    """m_c per channel for int8 values; 1 keeps channels whose values already fit."""
    return least_error_steps(rows, 1.0)


def _rescale_bias(model: TfliteModel, bias: int, factor: np.ndarray) -> None:
    tensor = model.tensors[bias]
    values = model.constant(tensor).astype(np.float64)
    factors = factor if len(factor) == len(values) else np.full(len(values), factor[0])
    model.buffers[tensor.buffer].data = np.frombuffer(
        _round_half_away(values / factors).astype(np.int32).tobytes(), np.uint8)
    quant = tensor.quantization
    if quant is not None and quant.scale is not None:
        scales = np.asarray(quant.scale, np.float64)
        quant.scale = [float(s) for s in scales * (factors if len(scales) == len(factors) else factors[0])]


def pack_nibbles(values: np.ndarray) -> bytes:
    """int8 values in [-8, 7] as packed int4: element 2i in the low nibble of byte i."""
    flat = values.reshape(-1).astype(np.int8)
    if flat.size % 2:
        flat = np.append(flat, np.int8(0))
    low, high = flat[0::2].astype(np.uint8) & 0x0F, flat[1::2].astype(np.uint8) & 0x0F
    return (low | (high << 4)).astype(np.uint8).tobytes()


def unpack_nibbles(packed: bytes, elements: int) -> np.ndarray:
    raw = np.frombuffer(packed, np.uint8)
    low = ((raw & 0x0F).astype(np.int8) << 4) >> 4   # sign-extend each nibble
    high = (raw.astype(np.int8) >> 4)
    return np.stack([low, high], axis=1).reshape(-1)[:elements]


def pack(twin_bytes: bytes, choices: list[Int4Choice]) -> bytes:
    """The twin with the chosen filters stored as INT4 (values must already lie in [-8, 7])."""
    model = TfliteModel.from_bytes(twin_bytes)
    for choice in choices:
        tensor = model.tensors[choice.tensor]
        values = model.constant(tensor)
        if values.min() < -8 or values.max() > 7:
            raise ValueError(f"tensor {choice.name} holds values outside int4's [-8, 7]")
        model.buffers[tensor.buffer].data = np.frombuffer(pack_nibbles(values), np.uint8)
        tensor.type = schema.TensorType.INT4
    return model.to_bytes(aligned=True)
