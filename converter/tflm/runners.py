"""Run a .tflite on TFLM (the golden runtime) and on LiteRT (reference and optimized kernels).

One interpreter setup per runtime and one per-vector loop for all of them: outputs, and when
asked every intermediate tensor, come from the same invokes, so a caller that needs both runs
the model once per runtime.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import KitError, foreign_text
from ..inputs.dataset import input_list
from ..system.native_output import captured_fds
from ..tflite.model import Graph, ModelInfo, TensorInfo, read_graph, read_model

# runtime key -> what the user reads. "litert_optimized_inspectable" is the optimized kernels without
# XNNPACK (LiteRT's default delegate), which fuses operators and hides their intermediate tensors.
RUNTIME_NAMES = {"tflm": "TFLM", "litert_reference": "LiteRT", "litert_optimized": "LiteRT optimized kernels",
                 "litert_optimized_inspectable": "LiteRT optimized kernels (no XNNPACK)"}
LITERT_RESOLVERS = {"litert_reference": "BUILTIN_REF", "litert_optimized": "BUILTIN",
                     "litert_optimized_inspectable": "BUILTIN_WITHOUT_DEFAULT_DELEGATES"}
MAX_DEFAULT_ARENA = 256 << 20


class RuntimeFailed(KitError):
    """A runtime refused the model or failed while running it (not a crash: that ends the process)."""


@dataclass
class RuntimeRun:
    runtime: str
    outputs: list[np.ndarray]                       # per model output: (vectors, ...) in its type
    tensors: list[dict[int, np.ndarray]] | None     # per vector: op output tensor index -> value, when kept


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


def quantize_inputs(x, info: ModelInfo, names=None) -> list[np.ndarray]:
    """Float inputs of every model input (one array, or a list: inputs/dataset.py) quantized to the
    runtime's input list. `names`: the Keras input names of the list's arrays, when the list is in
    Keras order (the converter may order a flatbuffer's inputs otherwise); None: in flatbuffer order."""
    parts = input_list(x)
    if len(parts) != len(info.inputs):
        raise KitError(f"the data holds {len(parts)} input array(s) but the model has {len(info.inputs)} inputs",
                       "give one input array per model input, in model order")
    if names is not None and len(parts) > 1:
        parts = [parts[i] for i in flatbuffer_order(info, list(names))]
    return [quantize(part, tensor) for part, tensor in zip(parts, info.inputs)]


def flatbuffer_order(info: ModelInfo, names: list[str]) -> list[int]:
    """For each flatbuffer input, the position of its Keras input in `names`. The TFLite converter
    names a Keras input `serving_default_<name>:0` and may order them otherwise (measured: TF 2.21
    put input 'b' before 'a')."""
    order = []
    for tensor in info.inputs:
        found = [i for i, name in enumerate(names) if tensor.name in (f"serving_default_{name}:0", name)]
        if len(found) != 1:
            raise KitError(f"cannot tell which Keras input (of {names}) the flatbuffer input '{tensor.name}' is",
                           "give the model's Input layers distinct names")
        order.append(found[0])
    if sorted(order) != list(range(len(names))):
        raise KitError(f"the flatbuffer inputs {[t.name for t in info.inputs]} do not match the Keras inputs "
                       f"{names} one to one", "give the model's Input layers distinct names")
    return order


def dequantize(q: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    if tensor.type.startswith("FLOAT") or tensor.scale is None:
        return q.astype(np.float32)
    return ((q.astype(np.float32) - tensor.zero_point) * tensor.scale).astype(np.float32)


def default_arena(model_bytes: bytes, graph: Graph) -> int:
    """The one arena rule for running (measuring is arena.py's bisection): TFLM's own default of ten
    times the model, at least 1 MB, and room for every tensor four times over, so that keeping all
    intermediates (kPreserveAllTensors) or decompressing LUT weights into the arena fits."""
    tensor_bytes = sum(t.nbytes for t in graph.tensors.values())
    return min(MAX_DEFAULT_ARENA, max(1 << 20, 10 * len(model_bytes), 4 * tensor_bytes))


class _TflmSession:
    def __init__(self, model_bytes: bytes, info: ModelInfo, arena_size: int, keep_tensors: bool):
        from tflite_micro.python.tflite_micro import runtime

        config = runtime.InterpreterConfig.kPreserveAllTensors if keep_tensors else \
            runtime.InterpreterConfig.kAllocationRecording
        self.info = info
        self.interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size, intrepreter_config=config)

    def set_input(self, index: int, x: np.ndarray) -> None:
        self.interpreter.set_input(x.reshape(self.info.inputs[index].shape), index)

    def invoke(self) -> None:
        self.interpreter.invoke()

    def output(self, index: int) -> np.ndarray:
        return self.interpreter.get_output(index)

    def tensor(self, index: int) -> np.ndarray:
        return np.array(self.interpreter.GetTensor(index, 0)["tensor_data"])


class _LitertSession:
    def __init__(self, model_bytes: bytes, resolver: str, keep_tensors: bool):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.interpreter = Interpreter(model_content=model_bytes, num_threads=1,
                                       experimental_op_resolver_type=getattr(OpResolverType, resolver),
                                       experimental_preserve_all_tensors=keep_tensors)
        self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()

    def set_input(self, index: int, x: np.ndarray) -> None:
        detail = self.inputs[index]
        self.interpreter.set_tensor(detail["index"], x.reshape(detail["shape"]))

    def invoke(self) -> None:
        self.interpreter.invoke()

    def output(self, index: int) -> np.ndarray:
        return self.interpreter.get_tensor(self.outputs[index]["index"])

    def tensor(self, index: int) -> np.ndarray:
        return np.array(self.interpreter.get_tensor(index))


def run_model(model_bytes: bytes, inputs: list[np.ndarray], runtime: str = "tflm", keep_tensors: bool = False,
              arena_size: int | None = None) -> RuntimeRun:
    """Every vector through one runtime: inputs[i] has shape (N, ...) in the model's input type.

    Raises RuntimeFailed, with the runtime's own words on one line, when it refuses the model."""
    if runtime not in RUNTIME_NAMES:
        raise ValueError(f"unknown runtime {runtime!r}; one of {sorted(RUNTIME_NAMES)}")
    info, graph = read_model(model_bytes), read_graph(model_bytes)
    if not info.inputs or not info.outputs:  # TFLM segfaults invoking such a model
        raise RuntimeFailed(f"the model has {len(info.inputs)} input and {len(info.outputs)} output tensors; "
                            "the kit runs models with at least one of each", "re-export the model with its inputs "
                            "and outputs")
    wanted = [t for node in graph.nodes for t in node.outputs if t in graph.tensors] if keep_tensors else []
    if keep_tensors and runtime == "tflm":
        model_bytes = _without_offline_plan(model_bytes)
    count = len(inputs[0])
    outputs = [np.empty((count, *t.sample_shape), t.dtype) for t in info.outputs]
    tensors: list | None = [] if keep_tensors else None
    with quiet_native_stderr() as printed:
        try:
            session = _TflmSession(model_bytes, info, arena_size or default_arena(model_bytes, graph), keep_tensors) \
                if runtime == "tflm" else _LitertSession(model_bytes, LITERT_RESOLVERS[runtime], keep_tensors)
            for v in range(count):
                for i, x in enumerate(inputs):
                    session.set_input(i, x[v:v + 1])
                session.invoke()
                for j, output in enumerate(outputs):
                    output[v] = np.asarray(session.output(j)).reshape(output[v].shape)
                if tensors is not None:
                    tensors.append({t: session.tensor(t) for t in wanted})
        except Exception as exc:  # a runtime refusing the model, in its own words (read while captured)
            failure = _refusal(runtime, exc, printed())
        else:
            failure = None
    if failure is not None:
        raise failure from None
    return RuntimeRun(runtime, outputs, tensors)


def _without_offline_plan(model_bytes: bytes) -> bytes:
    """The model with every tensor planned online. TFLM's kPreserveAllTensors mode keeps every tensor
    alive for the whole run, which an offline plan's shared offsets cannot honour: AllocateTensors fails
    (seen on a MobileNet-like model planned by tflite/memory_plan.py). Placement does not change a
    tensor's values, so the intermediates are read with the plan set aside."""
    from ..tflite.memory_plan import ONLINE, read_offline_plan, with_offline_plan

    offsets = read_offline_plan(model_bytes)
    return model_bytes if offsets is None else with_offline_plan(model_bytes, [ONLINE] * len(offsets))


def _refusal(runtime: str, exc: Exception, printed: str) -> RuntimeFailed:
    name = RUNTIME_NAMES[runtime]
    if runtime == "tflm" and isinstance(exc, RuntimeError):  # allocation or invoke failed: TFLM says why on fd 2
        return RuntimeFailed(f"{name} failed to run the model: {exc}. {foreign_text(printed, tail=True)}",
                             "check that every operator is supported by TFLM", code=f"{runtime}-failed")
    if runtime != "tflm" and "zero_point values and" in str(exc):
        # LiteRT's own words for a per-channel tensor with one zero point: what compress strip_metadata writes
        # (TFLM expands the single value; LiteRT does not), so the model is fine for TFLM
        return RuntimeFailed(f"{name} refused this model ({foreign_text(exc, with_type=True)})",
                             "this is a model whose repeated per-channel zero points were stripped (compress "
                             "strip_metadata), which only TFLM reads: validate the model converted without "
                             "strip_metadata (convert's own report compared it with LiteRT before stripping)",
                             code=f"{runtime}-refused-stripped")
    return RuntimeFailed(f"{name} refused this model ({foreign_text(exc, with_type=True)})",
                         "re-export the model", code=f"{runtime}-refused")


_WEIGHTED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL",
                           "UNIDIRECTIONAL_SEQUENCE_LSTM", "SVDF"})
SECONDS_PER_MAC = 5e-8       # ~20 M multiply-accumulates/s: reference kernels on a slow, busy host, with margin
SECONDS_PER_INVOKE = 0.05    # interpreter overhead per vector
STARTUP_SECONDS = 60.0       # a fresh interpreter importing the runtimes (and TensorFlow when asked)


def estimated_macs(graph: Graph) -> int:
    """Multiply-accumulates per invoke, from above: each output element of a weighted op times the
    weights of one output channel; every other op touches its inputs and outputs once."""
    total = 0
    for node in graph.nodes:
        ins = [graph.tensors[t] for t in node.inputs if t in graph.tensors]
        out = sum(graph.tensors[t].elements for t in node.outputs if t in graph.tensors)
        if node.op in _WEIGHTED_OPS and len(ins) > 1 and ins[1].shape:
            channels = ins[1].shape[-1] if node.op == "DEPTHWISE_CONV_2D" else ins[1].shape[0]
            total += out * max(1, ins[1].elements // max(1, channels))
        else:
            total += out + sum(t.elements for t in ins)
    return total


def time_limit(model_bytes: bytes, invokes: int, startup: float | None = None) -> float:
    """Seconds a child may take for `invokes` runs of this model before it counts as hung."""
    per_invoke = SECONDS_PER_INVOKE + estimated_macs(read_graph(model_bytes)) * SECONDS_PER_MAC
    return (STARTUP_SECONDS if startup is None else startup) + invokes * per_invoke


def run_tflm(model_bytes: bytes, inputs: list[np.ndarray], arena_size: int | None = None) -> list[np.ndarray]:
    """Outputs for N vectors: inputs[i] has shape (N, ...) in the model's input type."""
    return run_model(model_bytes, inputs, "tflm", arena_size=arena_size).outputs


def run_litert(model_bytes: bytes, inputs: list[np.ndarray], reference_kernels: bool) -> list[np.ndarray]:
    return run_model(model_bytes, inputs, "litert_reference" if reference_kernels else "litert_optimized").outputs
