"""Post-training full-integer quantization with the TFLite converter and a representative dataset.

The stage has the same shape as the others, but its output model is the .tflite
flatbuffer (bytes) rather than a Keras model.
"""
from __future__ import annotations

import time

import numpy as np

from .. import tf_env
from ..data import Dataset
from ..errors import KitError
from ..recipe import QuantizeSettings
from ..runtimes import dequantize, quantize, run_tflm
from ..tflite_model import read_model
from ..training import accuracy
from . import StageResult

def calibration_inputs(data: Dataset, samples: int) -> np.ndarray:
    """The first `samples` calibration inputs: a fixed choice keeps the conversion reproducible."""
    return data.x_calibration[:samples]


def convert(model, settings: QuantizeSettings, data: Dataset) -> bytes:
    tf = tf_env.tensorflow()
    calibration = calibration_inputs(data, settings.calibration_samples)

    def representative_dataset():
        for x in calibration:
            yield [x[np.newaxis].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if settings.int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel = not settings.per_channel
    try:
        return bytes(converter.convert())
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300]
        raise KitError(f"the TFLite converter could not make a full-integer model: {reason}",
                       "replace layers that have no int8 TFLite kernel") from None


def tflite_quality(model_bytes: bytes, data: Dataset) -> dict:
    """Top-1 accuracy of the int8 model on TFLM (the runtime the device uses)."""
    if not data.labeled_eval:
        return {}
    info = read_model(model_bytes)
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        return {}
    x = data.x_eval
    outputs = run_tflm(model_bytes, info, [quantize(x, info.inputs[0])])
    score = accuracy(dequantize(outputs[0], info.outputs[0]).reshape(len(x), -1), data.y_eval[:len(x)])
    return {} if score is None else {"eval_accuracy": round(score, 5), "eval_samples": int(len(x)), "runtime": "tflm"}


def run(model, settings: QuantizeSettings, data: Dataset, seed: int = 0) -> StageResult:
    from ..training import keras_quality

    started = time.perf_counter()
    model_bytes = convert(model, settings, data)
    record = {
        "stage": "quantize",
        "settings": settings.model_dump(),
        "calibration_samples_used": int(len(calibration_inputs(data, settings.calibration_samples))),
        "tflite_bytes": len(model_bytes),
        "quality_before": keras_quality(model, data),
        "quality_after": tflite_quality(model_bytes, data),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return StageResult(model_bytes, record)
