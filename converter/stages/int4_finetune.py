"""int4-aware fine-tuning: filters projected onto the 4-bit grid the compress step's `int4` stores.

The compress step requantizes an int8 filter to 16 levels ([-7, 7] times a step per channel, per
tensor for FULLY_CONNECTED). Done after training, that rounding is a loss nothing repairs (on the
MLPerf Tiny IC ResNet-8, every filter rounded to 4 bits keeps 68% top-1 agreement with the float model).
This stage fine-tunes with the filters the forward pass sees already on that grid (straight-through:
the gradient at the projected filter updates a float shadow copy, so steps smaller than the grid
still accumulate), and leaves every filter exactly on it. After int8 quantization (step max/127)
each value is round(q * 127 / 7) and the compress step's requantization finds q again: the packed
int4 model holds exactly the filters this stage trained (tests/test_optimize.py checks it).

The grid's step per channel is the largest |weight| / 7 times a clip fraction, chosen once from the
float filter by the compress step's own rule (least squared error), so the largest weights land on
+-7 and int8 quantization keeps that maximum.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from pydantic import Field

from ..errors import KitError
from ..progress import Epoch
from ..system import tf_env
from .base import KerasStage, StageContext, StageSettings, register
from .training import LOSSES, compile_for_training, freeze_batch_norm, rounded_losses

LEVELS = 7
FILTER_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense")


class Int4FineTuneSettings(StageSettings):
    """Fine-tune with filters on the 4-bit grid of the compress step's int4 (use with compress int4: true)."""

    layers: Optional[list[str]] = Field(None, description="Keras layer names to put on the grid (Conv2D, "
                                        "DepthwiseConv2D, Dense); default: every such layer")
    epochs: int = Field(2, ge=0, le=1000)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    loss: LOSSES = "sparse_categorical_crossentropy"
    freeze_batch_norm: bool = True
    other_filters_frozen: bool = Field(False, description="keep the other Conv2D/DepthwiseConv2D/Dense kernels as "
                                       "they are (e.g. clustered by an earlier stage)")


def kernel_of(layer):
    """The filter variable (DepthwiseConv2D names it depthwise_kernel)."""
    return layer.depthwise_kernel if type(layer).__name__ == "DepthwiseConv2D" else layer.kernel


def grid_axes(layer) -> tuple[int, ...]:
    """Kernel axes one grid step spans: all but the output channel (per tensor for Dense, as TFLM's
    FULLY_CONNECTED takes int4 filters only when quantized per tensor)."""
    kind = type(layer).__name__
    if kind == "Dense":
        return tuple(range(len(layer.kernel.shape)))
    if kind == "DepthwiseConv2D":
        return (0, 1)            # (kh, kw, channels, multiplier): one step per channel x multiplier
    return tuple(range(len(layer.kernel.shape) - 1))


def clip_fractions(kernel: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Per channel, the compress step's clip fraction of least squared error (keepdims shape). The grid
    axes lead the kernel's shape, so each channel is a column of the kernel reshaped to (grid, channels)."""
    from ..tflite.compression.int4 import least_error_steps

    grid = int(np.prod([kernel.shape[a] for a in axes]))
    rows = kernel.reshape(grid, -1).T
    peak = np.abs(rows).max(axis=1) / LEVELS
    steps = least_error_steps(rows, 1e-12)
    fractions = np.where(peak > 0, steps / np.maximum(peak, 1e-30), 1.0)
    return fractions.reshape((1,) * len(axes) + kernel.shape[len(axes):]).astype(np.float32)


def project(tf, kernel, fraction, axes):
    """The kernel on the grid: round half away from zero, as the compress step rounds."""
    peak = tf.reduce_max(tf.abs(kernel), axis=axes, keepdims=True)
    step = tf.maximum(peak * fraction / LEVELS, 1e-12)
    scaled = kernel / step
    rounded = tf.sign(scaled) * tf.floor(tf.abs(scaled) + 0.5)
    return tf.clip_by_value(rounded, -LEVELS, LEVELS) * step


def grid_layers(model, names: Optional[list[str]]) -> list:
    eligible = [layer for layer in model.layers if type(layer).__name__ in FILTER_LAYERS]
    if names is None:
        return eligible
    unknown = sorted(set(names) - {layer.name for layer in eligible})
    if unknown:
        raise KitError(f"int4_finetune.layers names {', '.join(unknown)}, which is not a Conv2D, DepthwiseConv2D "
                       "or Dense layer of the model",
                       f"use some of: {', '.join(layer.name for layer in eligible)[:200]}")
    return [layer for layer in eligible if layer.name in names]


@register
class Int4FineTune(KerasStage):
    """Filters on the int4 grid, fine-tuned straight-through; the compress step's int4 then loses nothing."""

    name, Settings, must_not_follow = "int4_finetune", Int4FineTuneSettings, ("qat",)

    def transform(self, model, settings: Int4FineTuneSettings, context: StageContext):
        return _fine_tune(model, settings, context)

    def report_note(self, record) -> str:
        return f"{len(record.details_dict()['layers'])} filter(s) on the 4-bit grid"


def _fine_tune(model, settings: Int4FineTuneSettings, context: StageContext):
    tf, data = tf_env.tensorflow(), context.data
    layers = grid_layers(model, settings.layers)
    if settings.epochs and not data.trainable:
        raise KitError("int4_finetune needs training data (x_train and y_train) and the data source has none",
                       "add x_train/y_train to the data, or set int4_finetune.epochs to 0")
    grids = []
    for layer in layers:
        axes = grid_axes(layer)
        kernel = kernel_of(layer)
        fraction = tf.constant(clip_fractions(kernel.numpy(), axes))
        grids.append((kernel, tf.Variable(kernel.read_value(), name=f"{layer.name}_shadow"),
                      fraction, list(axes)))
    losses = []
    if settings.epochs:
        if settings.freeze_batch_norm:
            freeze_batch_norm(model)
        losses = _straight_through(tf, model, grids, settings, context)
        freeze_batch_norm(model, frozen=False)
    for kernel, shadow, fraction, axes in grids:
        kernel.assign(project(tf, shadow, fraction, axes))
    distinct = {layer.name: _max_levels(layer) for layer in layers}
    return model, {"layers": [layer.name for layer in layers], "loss_per_epoch": rounded_losses(losses),
                   "max_levels_per_step": distinct}


def _straight_through(tf, model, grids, settings: Int4FineTuneSettings, context: StageContext) -> list[float]:
    keras, data = tf_env.keras(), context.data
    tf_env.reseed(context.seed)
    compile_for_training(model, settings.loss, settings.learning_rate)  # the kit's loss for these targets
    loss_fn, optimizer = model.loss, keras.optimizers.Adam(settings.learning_rate)
    shadow_of = {kernel.ref(): shadow for kernel, shadow, _, _ in grids}
    held = {kernel_of(layer).ref() for layer in model.layers if settings.other_filters_frozen
            and type(layer).__name__ in FILTER_LAYERS and kernel_of(layer).ref() not in shadow_of}
    variables = [v for v in model.trainable_variables if v.ref() not in held]
    updated = [shadow_of.get(v.ref(), v) for v in variables]

    @tf.function
    def step(x, y):
        for kernel, shadow, fraction, axes in grids:
            kernel.assign(project(tf, shadow, fraction, axes))
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), updated))
        return loss

    x, y = np.asarray(data.x_train), np.asarray(data.y_train)
    order_rng = np.random.default_rng(context.seed)
    losses = []
    for epoch in range(settings.epochs):
        order, total, batches = order_rng.permutation(len(x)), 0.0, 0
        for start in range(0, len(x), settings.batch_size):
            rows = order[start:start + settings.batch_size]
            total += float(step(tf.constant(x[rows]), tf.constant(y[rows])))
            batches += 1
        losses.append(total / max(batches, 1))
        context.events(Epoch("int4_finetune", epoch + 1, settings.epochs, losses[-1]))
    return losses


def _max_levels(layer) -> int:
    """Most distinct values any grid step holds (<= 15 when the filter is on the grid)."""
    kernel = kernel_of(layer).numpy()
    axes = grid_axes(layer)
    rows = np.moveaxis(kernel, [a for a in range(kernel.ndim) if a not in axes], list(range(kernel.ndim - len(axes))))
    rows = rows.reshape(-1, int(np.prod([kernel.shape[a] for a in axes])))
    return int(max(len(np.unique(row)) for row in rows))

