"""Post-training full-integer quantization with the TFLite converter and a representative dataset.

The stage has the same shape as the others, but its output model is the .tflite
flatbuffer (bytes) rather than a Keras model.
"""
from __future__ import annotations

import time

import numpy as np

from ..system import tf_env
from ..inputs.dataset import Dataset
from ..errors import KitError
from ..recipe import QuantizeSettings
from ..tflm.runners import dequantize, quantize, run_tflm
from ..tflite.model import read_model
from .training import accuracy
from . import StageResult

def calibration_inputs(data: Dataset, samples: int) -> np.ndarray:
    """The first `samples` calibration inputs: a fixed choice keeps the conversion reproducible."""
    return data.x_calibration[:samples]


MODE_NAMES = {"int8": "int8", "int16x8": "int16 activations, int8 weights", "float16": "float16 weights"}


def convert(model, settings: QuantizeSettings, data: Dataset) -> bytes:
    tf = tf_env.tensorflow()
    calibration = calibration_inputs(data, settings.calibration_samples)

    def representative_dataset():
        for x in calibration:
            yield [x[np.newaxis].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
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
        reason = " ".join(str(exc).split())[:300]
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
        run_tflm(model_bytes, info, [quantize(data.x_calibration[:1], info.inputs[0])])
    except KitError as exc:
        raise KitError(f"TFLM cannot run the float16 model ({exc.problem[:220]})",
                       "use quantize.mode: int8 or int16x8 (TFLM's DEQUANTIZE has no float16 input; "
                       "for smaller weights use cluster + compress instead)") from None


def tflite_quality(model_bytes: bytes, data: Dataset) -> dict:
    """Top-1 accuracy of the converted model on TFLM (the runtime the device uses)."""
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
    from .training import keras_quality

    started = time.perf_counter()
    model_bytes = convert(model, settings, data)
    converted = time.perf_counter()
    quality_before = keras_quality(model, data)
    scored_float = time.perf_counter()
    quality_after = tflite_quality(model_bytes, data)
    done = time.perf_counter()
    record = {
        "stage": "quantize",
        "settings": settings.model_dump(),
        "calibration_samples_used": int(len(calibration_inputs(data, settings.calibration_samples))),
        "tflite_bytes": len(model_bytes),
        "quality_before": quality_before,
        "quality_after": quality_after,
        "seconds": round(done - started, 2),
        # scoring the eval set is most of this stage on big eval sets (eval_samples: 0 skips it)
        "seconds_split": {"convert": round(converted - started, 2), "score_float": round(scored_float - converted, 2),
                          "score_tflm": round(done - scored_float, 2)},
    }
    return StageResult(model_bytes, record)
