"""Run a .tflite on TFLM (the golden runtime) and on LiteRT (reference and optimized kernels)."""
from __future__ import annotations

import numpy as np

from ..errors import KitError
from ..system.native_output import captured_fds
from ..tflite.model import ModelInfo, TensorInfo


def quiet_native_stderr():
    """TFLM reports allocation failures on fd 2; keep them for error messages, off the console."""
    return captured_fds(2)


def quantize(x: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """Float inputs to the tensor's integer type, rounding as TFLite's converter does (half away from zero)."""
    if tensor.type.startswith("FLOAT") or tensor.scale is None:
        return x.astype(tensor.dtype)
    info = np.iinfo(tensor.dtype)
    scaled = x.astype(np.float64) / tensor.scale + tensor.zero_point
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    return np.clip(rounded, info.min, info.max).astype(tensor.dtype)


def dequantize(q: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    if tensor.type.startswith("FLOAT") or tensor.scale is None:
        return q.astype(np.float32)
    return ((q.astype(np.float32) - tensor.zero_point) * tensor.scale).astype(np.float32)


def _tflm_interpreter(model_bytes: bytes, arena_size: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size)


def run_tflm(model_bytes: bytes, info: ModelInfo, inputs: list[np.ndarray], arena_size: int | None = None) -> list[np.ndarray]:
    """Outputs for N vectors: inputs[i] has shape (N, ...) in the model's input type."""
    count = len(inputs[0])
    arena = arena_size or max(1 << 20, 10 * len(model_bytes))
    with quiet_native_stderr() as printed:
        try:
            interpreter = _tflm_interpreter(model_bytes, arena)
            outputs = [np.empty((count, *t.shape[1:]) if t.shape else (count,), t.dtype) for t in info.outputs]
            for v in range(count):
                for i, x in enumerate(inputs):
                    interpreter.set_input(x[v:v + 1].reshape(info.inputs[i].shape), i)
                interpreter.invoke()
                for j in range(len(outputs)):
                    outputs[j][v] = interpreter.get_output(j).reshape(outputs[j][v].shape)
        except RuntimeError as exc:
            # read TFLM's message while the capture file is still open
            failure, detail = exc, " ".join(printed().split())[-300:]
        else:
            failure = None
    if failure is not None:
        raise KitError(f"TFLM failed to run the model: {failure}. {detail}",
                       "check that every operator is supported by TFLM") from None
    return outputs


def run_litert(model_bytes: bytes, inputs: list[np.ndarray], reference_kernels: bool) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.BUILTIN
    with quiet_native_stderr():
        interpreter = Interpreter(model_content=model_bytes, experimental_op_resolver_type=resolver, num_threads=1)
        interpreter.allocate_tensors()
    input_details = interpreter.get_input_details()
    output_details = interpreter.get_output_details()
    count = len(inputs[0])
    outputs = [np.empty((count, *d["shape"][1:]), d["dtype"]) for d in output_details]
    for v in range(count):
        for i, detail in enumerate(input_details):
            interpreter.set_tensor(detail["index"], inputs[i][v:v + 1].reshape(detail["shape"]))
        interpreter.invoke()
        for j, detail in enumerate(output_details):
            outputs[j][v] = interpreter.get_tensor(detail["index"]).reshape(outputs[j][v].shape)
    return outputs
