"""How closely the quantized model follows the float one: output metrics and per-layer SQNR."""
from __future__ import annotations

import numpy as np

from ..tflm.runners import dequantize
from ..tflite.model import Graph


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio; inf when identical."""
    reference, test = reference.astype(np.float64).ravel(), test.astype(np.float64).ravel()
    noise = np.sum((reference - test) ** 2)
    signal = np.sum(reference ** 2)
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(signal / noise)) if signal > 0 else float("-inf")


def output_metrics(float_out: np.ndarray, quant_out: np.ndarray, labels: np.ndarray | None = None) -> dict:
    f = float_out.reshape(len(float_out), -1).astype(np.float64)
    q = quant_out.reshape(len(quant_out), -1).astype(np.float64)
    error = q - f
    norms = np.linalg.norm(f, axis=1) * np.linalg.norm(q, axis=1)
    cosine = np.sum(f * q, axis=1) / np.where(norms == 0, 1, norms)
    metrics = {
        "vectors": int(len(f)),
        "rmse": float(np.sqrt(np.mean(error ** 2))),
        "mae": float(np.mean(np.abs(error))),
        "relative_l2": float(np.linalg.norm(error) / max(np.linalg.norm(f), 1e-30)),
        "cosine_similarity": float(np.mean(cosine)),
        "sqnr_db": sqnr_db(f, q),
    }
    if f.shape[1] > 1:
        metrics["top1_agreement"] = float(np.mean(np.argmax(f, 1) == np.argmax(q, 1)))
        if labels is not None and len(labels) == len(f):
            metrics["accuracy_float"] = float(np.mean(np.argmax(f, 1) == labels))
            metrics["accuracy_quantized"] = float(np.mean(np.argmax(q, 1) == labels))
    return metrics


def _named_layers(tensor_name: str, layer_names: list[str], keras3: bool = False) -> list[str]:
    """Keras layers a TFLite tensor is named after. A fused op's output carries the name of
    every layer it absorbed, e.g. 'model/conv/Relu;model/conv/BiasAdd;model/bn/FusedBatchNorm'.
    Keras 3 names a layer's ops after its call: 'sequential_1/conv_1/Relu' for layer 'conv'."""
    parts = {piece for name in tensor_name.split(";") for piece in name.split("/")}
    if keras3:
        parts |= {piece.rpartition("_")[0] for piece in parts if piece.rpartition("_")[2].isdigit()}
    return [name for name in layer_names if name in parts]


def per_layer_sqnr(keras_model, graph: Graph, float_inputs: np.ndarray, quant_tensors: list[dict]) -> list[dict]:
    """SQNR of each int8 intermediate tensor against the Keras layer output it holds.

    Of the layers a tensor is named after (and of the same size), the best-matching one is
    taken; a tensor whose best match is below 0 dB holds none of them (for example a
    FULLY_CONNECTED output before a softmax that Keras folds into the Dense layer) and is
    left out rather than reported as a precision loss.
    """
    from ..system import tf_env

    keras = tf_env.keras_of(keras_model)  # a Keras 3 model is probed with Keras 3
    keras3 = tf_env.is_keras3(keras_model)
    layers = [layer for layer in keras_model.layers if not isinstance(layer, keras.layers.InputLayer)]
    names = [layer.name for layer in layers]
    probe = keras.Model(keras_model.inputs, [layer.output for layer in layers])
    float_outputs = dict(zip(names, probe.predict(float_inputs, verbose=0)))
    rows = []
    for node in graph.nodes:
        for t in node.outputs:
            tensor = graph.tensors.get(t)
            if tensor is None or tensor.scale is None:
                continue
            quantized = np.stack([dequantize(vector[t], tensor).ravel() for vector in quant_tensors])
            scored = [(sqnr_db(float_outputs[name].reshape(len(quantized), -1), quantized), name)
                      for name in _named_layers(tensor.name, names, keras3)
                      if float_outputs[name][0].size == tensor.elements]
            if scored and max(scored)[0] > 0:
                best, layer = max(scored)
                rows.append({"node": node.index, "op": node.op, "layer": layer, "sqnr_db": round(best, 2)})
    return rows
