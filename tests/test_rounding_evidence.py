"""Why TFLM and LiteRT's reference kernels differ on FULLY_CONNECTED: the evidence, re-run on every CI pass.

The int32 accumulators of the MLPerf Tiny autoencoder's first layer are recomputed from its
weights; requantizing them with double rounding gives TFLM's output bit for bit, with single
rounding LiteRT's. If either runtime changes its arithmetic, this test says so.
"""
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from converter.compare.divergence import litert_tensors, tflm_tensors
from tests.rounding import double_rounding, quantize_multiplier, single_rounding
from converter.tflite.model import read_graph

ACTIVATION_LIMITS = {0: (-128, 127), 1: (None, 127), 3: (None, None)}  # NONE, RELU (lower = zero point), RELU6


def _constant(subgraph, model, tensor, dtype):
    t = subgraph.Tensors(tensor)
    return model.Buffers(t.Buffer()).DataAsNumpy().view(dtype).reshape(t.ShapeAsNumpy())


def _quant(subgraph, tensor):
    q = subgraph.Tensors(tensor).Quantization()
    return q.ScaleAsNumpy(), q.ZeroPointAsNumpy()


def test_fully_connected_rounding_modes_explain_the_difference(shared_data):
    model_bytes = (shared_data / "mlperf_tiny/anomaly_detection/ad01_int8.tflite").read_bytes()
    graph = read_graph(model_bytes)
    model = schema.Model.GetRootAs(model_bytes, 0)
    subgraph = model.Subgraphs(0)
    node = graph.nodes[0]
    assert node.op == "FULLY_CONNECTED"
    x = np.random.default_rng(0).integers(-128, 128, (12, 640)).astype(np.int8)
    tflm = tflm_tensors(model_bytes, [x])
    litert = litert_tensors(model_bytes, [x], "BUILTIN_REF")

    source, weights_index, bias_index = node.inputs
    output = node.outputs[0]
    weights = _constant(subgraph, model, weights_index, np.int8).astype(np.int64)
    bias = _constant(subgraph, model, bias_index, np.int32).astype(np.int64)
    (s_in,), (z_in,) = _quant(subgraph, source)
    s_w, _ = _quant(subgraph, weights_index)
    (s_out,), (z_out,) = _quant(subgraph, output)
    options = schema.FullyConnectedOptions()
    table = subgraph.Operators(0).BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    low, high = ACTIVATION_LIMITS[options.FusedActivationFunction()]
    low = z_out if low is None else low
    multipliers = [quantize_multiplier(float(s_in) * float(s) / float(s_out))
                   for s in (s_w if len(s_w) > 1 else [s_w[0]] * len(bias))]

    matches = {("double", "tflm"): 0, ("double", "litert"): 0, ("single", "tflm"): 0, ("single", "litert"): 0}
    differing_vectors = 0
    for v in range(len(x)):
        acc = weights @ (x[v].astype(np.int64) - z_in) + bias
        for mode, requantize in (("double", double_rounding), ("single", single_rounding)):
            y = np.array([requantize(np.array([acc[c]]), *multipliers[c])[0] for c in range(len(acc))]) + z_out
            y = np.clip(y, low, high)
            matches[(mode, "tflm")] += np.array_equal(y, tflm[v][output].ravel())
            matches[(mode, "litert")] += np.array_equal(y, litert[v][output].ravel())
        differing_vectors += not np.array_equal(tflm[v][output], litert[v][output])

    assert differing_vectors > 0, "the runtimes agreed on every vector: the known difference is gone"
    assert matches[("double", "tflm")] == len(x)
    assert matches[("single", "litert")] == len(x)
    assert matches[("double", "litert")] < len(x) and matches[("single", "tflm")] < len(x)
