"""Post-training full-integer quantization with the TFLite converter and a representative dataset.

The one converter stage: a Keras model goes in, the .tflite flatbuffer (bytes) comes out. Its record
has the float model's quality (Keras) and the quantized model's (on TFLM), timed separately.
"""
from __future__ import annotations

import contextlib
import tempfile
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from ..errors import KitError, foreign_text
from ..system import tf_env
from ..tflite.model import read_model
from ..inputs.dataset import input_list, sample_count, take
from ..inputs.keras_model import input_names
from ..tflm.runners import dequantize, quantize_inputs, run_tflm
from .base import ConverterStage, StageContext, StageRecord, StageSettings, register
from .training import accuracy

if TYPE_CHECKING:
    from ..inputs.dataset import Dataset


class QuantizeSettings(StageSettings):
    mode: Literal["int8", "int16x8", "float16"] = "int8"
    int8_io: bool = Field(True, description="integer input/output tensors (int16 for int16x8); else float32")
    per_channel: bool = True
    calibration_samples: int = Field(200, ge=1, le=100_000)


def calibration_inputs(data: Dataset, samples: int) -> list[np.ndarray]:
    """The first `samples` calibration inputs, one array per model input: a fixed choice keeps the
    conversion reproducible."""
    return input_list(take(data.x_calibration, slice(None, samples)))


MODE_NAMES = {"int8": "int8", "int16x8": "int16 activations, int8 weights", "float16": "float16 weights"}


@contextlib.contextmanager
def _converter_for(tf, model):
    """The TFLite converter for a Keras model. A Keras 3 model is exported with batch 1, as tf_keras models
    are traced: TensorFlow's own export of it has a dynamic batch, and its Flatten becomes SHAPE +
    STRIDED_SLICE + PACK + RESHAPE (three more kernels in flash) instead of one RESHAPE. The inputs keep
    their names (serving_default_<name>:0), which the runners match several inputs by."""
    if not tf_env.is_keras3(model):
        yield tf.lite.TFLiteConverter.from_keras_model(model)
        return
    specs = [tf.TensorSpec((1, *tensor.shape[1:]), tf.float32, name=name)
             for tensor, name in zip(model.inputs, input_names(model))]
    with tempfile.TemporaryDirectory(prefix="tflm-kit-keras3-") as folder:
        model.export(folder, format="tf_saved_model", input_signature=specs, verbose=False)
        yield tf.lite.TFLiteConverter.from_saved_model(folder)


def convert(model, settings: QuantizeSettings, data: Dataset) -> bytes:
    tf = tf_env.tensorflow()
    calibration = calibration_inputs(data, settings.calibration_samples)

    def representative_dataset():  # one sample of every input
        for v in range(len(calibration[0])):
            sample = [x[v][np.newaxis].astype(np.float32) for x in calibration]
            # several inputs by name: the converter's calibrator feeds a list in its own order, not Keras's
            yield sample if len(sample) == 1 else dict(zip(input_names(model), sample))

    with _converter_for(tf, model) as converter:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if settings.mode == "float16":
            # fp16 weight storage only: the converter inserts DEQUANTIZE ops and keeps float kernels
            converter.target_spec.supported_types = [tf.float16]
        else:
            converter.representative_dataset = representative_dataset
            int16 = settings.mode == "int16x8"
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 if int16
                else tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if settings.int8_io:
                converter.inference_input_type = tf.int16 if int16 else tf.int8
                converter.inference_output_type = tf.int16 if int16 else tf.int8
        converter._experimental_disable_per_channel = not settings.per_channel
        try:
            model_bytes = bytes(converter.convert())
        except Exception as exc:
            reason = foreign_text(exc)
            raise KitError(f"the TFLite converter could not make a {MODE_NAMES[settings.mode]} model: {reason}",
                           "replace layers that have no integer TFLite kernel" if settings.mode != "float16"
                           else "use quantize.mode: int8") from None
    if settings.mode == "float16":
        check_runs_on_tflm(model_bytes, data)
    return model_bytes


def check_runs_on_tflm(model_bytes: bytes, data: Dataset) -> None:
    """Refuse a model TFLM cannot prepare. Probed rather than assumed: at TFLM 90b983c the DEQUANTIZE
    kernel takes int8/int16/uint8 inputs only (dequantize_common.cc), so fp16 weights do not load."""
    info = read_model(model_bytes)
    try:
        run_tflm(model_bytes, quantize_inputs(take(data.x_calibration, slice(None, 1)), info,
                                                    data.input_names))
    except KitError as exc:
        raise KitError(f"TFLM cannot run the float16 model ({exc.problem[:220]})",
                       "use quantize.mode: int8 or int16x8 (TFLM's DEQUANTIZE has no float16 input; "
                       "for smaller weights use cluster + compress instead)") from None


def tflite_quality(model_bytes: bytes, data: Dataset) -> dict:
    """Top-1 accuracy of the converted model on TFLM (the runtime the device uses)."""
    if not data.labeled_eval:
        return {}
    info = read_model(model_bytes)
    if len(info.outputs) != 1:
        return {}
    count = sample_count(data.x_eval)
    outputs = run_tflm(model_bytes, quantize_inputs(data.x_eval, info, data.input_names))
    score = accuracy(dequantize(outputs[0], info.outputs[0]).reshape(count, -1), data.y_eval[:count])
    return {} if score is None else {"eval_accuracy": round(score, 5), "eval_samples": count, "runtime": "tflm"}


@register
class Quantize(ConverterStage):
    name = "quantize"
    Settings = QuantizeSettings

    def phase_detail(self, settings: QuantizeSettings, data) -> str:
        return (f"quantize ({settings.mode}, "
                f"{min(settings.calibration_samples, sample_count(data.x_calibration))} calibration samples)")

    def transform(self, model, settings: QuantizeSettings, context: StageContext):
        model_bytes = convert(model, settings, context.data)
        used = int(len(calibration_inputs(context.data, settings.calibration_samples)[0]))
        return model_bytes, {"calibration_samples_used": used, "tflite_bytes": len(model_bytes)}

    def flatbuffer_quality(self, model_bytes: bytes, context: StageContext) -> dict:
        return tflite_quality(model_bytes, context.data)

    def report_note(self, record: StageRecord) -> str:
        details = record.details_dict()
        return f"{details['tflite_bytes']:,} B, {details['calibration_samples_used']} calibration samples"

