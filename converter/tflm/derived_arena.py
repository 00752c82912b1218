"""The tensor arena a 32-bit Cortex-M needs, derived from the model without a toolchain or an emulator.

When the device check cannot run (no TFLM_ROOT, arm-none-eabi-gcc or qemu-system-arm, or `device_check: off`),
the firmware still reserves the target's arena, not the x86-64 host's: this module replays what TFLM 90b983c2's
MicroInterpreter::AllocateTensors() does in the arena, for the cortex_m_generic build with the CMSIS-NN kernels
(the libraries TFLM_ROOT holds; the operators CMSIS-NN has no kernel for, MEAN, LOGISTIC, TANH, ..., run TFLM's
reference kernels, modelled from their sources), with the struct sizes of a 32-bit build:

- the arena is one buffer: the persistent section grows down from its end (SingleArenaBufferAllocator::
  AllocatePersistentBuffer aligns each allocation down: `tail = align_up(tail + size, alignment)`); the
  non-persistent section grows up from its start (scratch-buffer requests while preparing, temporary
  TfLiteTensors a kernel's Prepare holds, the memory planner's lists, then the plan itself);
- persistent: the allocator objects, one TfLiteEvalTensor per tensor, one NodeAndRegistration per operator, each
  operator's builtin options and its kernel's OpData (16-byte aligned), the per-channel multipliers and shifts,
  scratch-buffer handles, and the TfLiteTensor (+ its quantization) of every model input and output;
- non-persistent: TFLM's GreedyMemoryPlanner over the activations and the kernels' scratch buffers (sizes from
  CMSIS-NN's `arm_*_get_buffer_size` as the gcc build answers them), every size rounded up to 16 bytes.

`arena_used_bytes()` is the plan plus the persistent section after AllocateTensors(); the smallest arena that
allocates and invokes (what the device check measures, a multiple of 16) is also bounded by the highest point
while the kernels prepare and while the planner plans (the MLPerf AD model: 2,580 B used, 3,024 B needed).
tests/test_derived_arena.py compares both with QEMU's figures; docs/firmware.md has the table.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tflite.memory_placement import Buffer, align, greedy
from . import target_arena
from ..tflite.schema import NUMPY_TYPES
from ..tflite.tflite_model import TfliteModel

TFLM_COMMIT = "90b983c2"
ALIGNMENT = 16                       # MicroArenaBufferAlignment()
# 32-bit sizes (arm-none-eabi-g++ -mcpu=cortex-m4, TF_LITE_STATIC_MEMORY; sizeof/alignof printed by the compiler)
ALLOCATORS = (36, 44, 36, 8)         # SingleArenaBufferAllocator, GreedyMemoryPlanner, MicroAllocator, MicroBuiltinDataAllocator
SUBGRAPH_ALLOCATIONS = 8
EVAL_TENSOR = 12                     # TfLiteEvalTensor
NODE_AND_REGISTRATION = 32
TFLITE_TENSOR = 32                   # TfLiteTensor (TF_LITE_STATIC_MEMORY)
AFFINE_QUANTIZATION = 12             # TfLiteAffineQuantization
SCRATCH_REQUEST = 12                 # internal::ScratchBufferRequest
SCRATCH_HANDLE = 4                   # ScratchBufferHandle
ALLOCATION_INFO = 24                 # AllocationInfo, one per tensor and scratch buffer while planning
PLANNER_PER_BUFFER = 40              # GreedyMemoryPlanner::per_buffer_size()
MAX_SCRATCH_PER_OP = 12              # kMaxScratchBuffersPerOp
POINTER = 4

# builtin options each parser allocates: (sizeof, alignof) of TfLite*Params
# (operators whose parser allocates none: PAD, TRANSPOSE, the activations, QUANTIZE, DEQUANTIZE)
PARAMS = {"CONV_2D": (28, 4), "DEPTHWISE_CONV_2D": (28, 4), "FULLY_CONNECTED": (5, 1), "ADD": (2, 1),
          "AVERAGE_POOL_2D": (40, 4), "MAX_POOL_2D": (40, 4), "SOFTMAX": (4, 4), "RESHAPE": (36, 4),
          "MEAN": (1, 1), "MUL": (1, 1), "CONCATENATION": (8, 4), "LEAKY_RELU": (4, 4), "STRIDED_SLICE": (24, 4),
          "SUB": (2, 1), "RESIZE_NEAREST_NEIGHBOR": (2, 1), "SQUEEZE": (36, 4), "SUM": (1, 1), "REDUCE_MAX": (1, 1)}
# the kernel's OpData (allocated in Init, 16-byte aligned): CMSIS-NN's where it has the operator, else the
# reference kernel's; RESHAPE and DECODE have no Init
OP_DATA = {"CONV_2D": 60, "DEPTHWISE_CONV_2D": 60, "FULLY_CONNECTED": 72, "ADD": 60, "AVERAGE_POOL_2D": 36,
           "MAX_POOL_2D": 36, "SOFTMAX": 64, "RESHAPE": 0, "TFLM_DECODE": 0,
           "QUANTIZE": 32, "DEQUANTIZE": 32,     # the reference kernels' OpDataQuantizeReference, DequantizeOpData
           # CMSIS-NN: OpDataMul, pad.h's OpData; TRANSPOSE has no Init, MAXIMUM and MINIMUM neither Init nor Prepare
           "MUL": 36, "PAD": 56, "TRANSPOSE": 0, "MAXIMUM": 0, "MINIMUM": 0,
           # the reference kernels (CMSIS-NN has none): OpDataReduce, concatenation.cc's OpData, OpDataLogistic,
           # tanh.cc's OpData, ReluOpData, Relu6OpData, HardSwishParams, LeakyReluOpData, StridedSliceParams,
           # OpDataSub, PreluParams; RESIZE_NEAREST_NEIGHBOR, EXPAND_DIMS and SQUEEZE have no Init
           "MEAN": 44, "SUM": 44, "REDUCE_MAX": 44, "CONCATENATION": 24, "LOGISTIC": 16, "TANH": 16, "RELU": 28,
           "RELU6": 8, "HARD_SWISH": 20, "LEAKY_RELU": 24, "STRIDED_SLICE": 84, "SUB": 52, "PRELU": 28,
           "RESIZE_NEAREST_NEIGHBOR": 0, "EXPAND_DIMS": 0, "SQUEEZE": 0}
DECODE_STATE_LUT = 36                # sizeof(DecodeStateLut), one per DECODE output
DSP_CORES = ("cortex-m4", "cortex-m4f", "cortex-m7", "cortex-m33")
MVE_CORES = ("cortex-m55", "cortex-m85")


class NotDerivable(ValueError):
    """The model has something the derivation does not model (the message says what)."""


@dataclass(frozen=True)
class ArenaDerivation:
    """What TFLM's allocator takes on a 32-bit core, piece by piece (bytes)."""
    core: str
    plan: int                        # non-persistent: the greedy plan of activations and scratch buffers
    persistent: int                  # the tail after AllocateTensors()
    prepare_peak: int                # head + tail at the highest point before the plan is committed
    pieces: dict[str, int] = field(default_factory=dict)   # persistent bytes by kind (alignment padding included)
    scratch: tuple[int, ...] = ()    # the scratch buffers the kernels request, in request order

    @property
    def used(self) -> int:
        """interpreter.arena_used_bytes() after AllocateTensors()."""
        return self.plan + self.persistent

    @property
    def needed(self) -> int:
        """The smallest arena (a multiple of 16) that allocates and invokes: what the device check measures."""
        return align(max(self.used, self.prepare_peak))


class _Arena:
    """SingleArenaBufferAllocator's two ends, as offsets from the (16-byte aligned) start and end."""

    def __init__(self) -> None:
        self.tail = 0
        self.pieces: dict[str, int] = {}
        self.peak = 0

    def persistent(self, kind: str, size: int, alignment: int = 4) -> None:
        before = self.tail
        self.tail = (self.tail + size + alignment - 1) // alignment * alignment
        self.pieces[kind] = self.pieces.get(kind, 0) + self.tail - before

    def reach(self, head: int) -> None:
        """The non-persistent section reaches `head` bytes now (with the tail as it is)."""
        self.peak = max(self.peak, head + self.tail)


def _elements(model: TfliteModel, tensor) -> int:
    return int(np.prod(model.shape(tensor), dtype=np.int64))


def _bytes(model: TfliteModel, tensor) -> int:
    """TFLM's byte length of a tensor: int4 tensors are planned at one byte per element (TfLiteTypeGetSize)."""
    kind = model.tensor_type(tensor)
    if kind == "INT4":
        return _elements(model, tensor)
    dtype = NUMPY_TYPES.get(kind)
    if dtype is None:
        raise NotDerivable(f"tensor {model.tensor_name(tensor)!r} has type {kind}")
    return _elements(model, tensor) * np.dtype(dtype).itemsize


def _quantization_bytes(tensor) -> tuple[int, int]:
    """Bytes a TfLiteTensor's affine quantization takes (struct, zero-point array), or (0, 0) without one."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0 or q.zeroPoint is None or len(q.zeroPoint) == 0:
        return 0, 0
    return AFFINE_QUANTIZATION, 4 + 4 * len(q.scale)


def _temp_tensor_bytes(model: TfliteModel, indices) -> int:
    """Temp TfLiteTensors a kernel holds at once (AllocateTempInput/OutputTensor), with their quantization."""
    total = 0
    for index in indices:
        if index is None or index < 0:
            continue
        struct, zero_points = _quantization_bytes(model.tensors[index])
        total += TFLITE_TENSOR + struct + zero_points
    return total


@dataclass(frozen=True)
class _Prepare:
    """What one kernel's Prepare adds: persistent (kind, bytes, alignment), scratch requests, temp tensors held."""
    persistent: tuple[tuple[str, int, int], ...] = ()
    scratch: tuple[int, ...] = ()
    temps: int = 0                   # bytes of temp TfLiteTensors (DeallocateTemp does not lower the temp
                                     # pointer: every temp of a Prepare counts until the node finishes)


def _padding(options, in_h: int, in_w: int, k_h: int, k_w: int, out_h: int, out_w: int) -> tuple[int, int]:
    """TFLM's ComputePaddingHeightWidth: half the total padding SAME needs (VALID: 0)."""
    def one(stride: int, dilation: int, size: int, kernel: int, out: int) -> int:
        return max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0) // 2
    return (one(options.strideH, getattr(options, "dilationHFactor", 1) or 1, in_h, k_h, out_h),
            one(options.strideW, getattr(options, "dilationWFactor", 1) or 1, in_w, k_w, out_w))


def _per_channel(channels: int) -> tuple[tuple[str, int, int], ...]:
    """per_channel_output_multiplier and _shift: context->AllocatePersistentBuffer, 16-byte aligned each."""
    return (("per-channel multipliers and shifts", 4 * channels, ALIGNMENT),) * 2


def _conv_scratch(model: TfliteModel, op, dsp: bool) -> int:
    """arm_convolve_wrapper_s8/_s4_get_buffer_size on a gcc build without MVE (DSP or plain C: the same)."""
    del dsp  # the 1x1 fast path asks for 0 bytes on gcc with and without DSP; im2col is the same on both
    x, w, y = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]], model.tensors[op.outputs[0]]
    _, in_h, in_w, in_c = model.shape(x)
    _, k_h, k_w, filter_c = model.shape(w)
    _, out_h, out_w, _ = model.shape(y)
    o = op.builtinOptions
    pad_h, pad_w = _padding(o, in_h, in_w, k_h, k_w, out_h, out_w)
    if pad_h == 0 and pad_w == 0 and k_h == 1 and k_w == 1 and o.dilationHFactor == 1 and o.dilationWFactor == 1 \
            and in_c == filter_c:
        return 0
    cols = k_w * k_h * in_c
    if model.tensor_type(w) != "INT4":
        cols += -cols % 4
    return 2 * cols * 2


def _dwconv_scratch(model: TfliteModel, op, dsp: bool) -> int:
    """arm_depthwise_conv_wrapper_s8/_s4_get_buffer_size without MVE: the optimized path's im2col on DSP."""
    x, w, y = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]], model.tensors[op.outputs[0]]
    batches, in_h, in_w, in_c = model.shape(x)
    _, k_h, k_w, out_c = model.shape(w)
    _, out_h, out_w, _ = model.shape(y)
    o = op.builtinOptions
    if not (in_c == out_c and batches == 1 and o.dilationHFactor == 1 and o.dilationWFactor == 1):
        return 0
    if model.tensor_type(w) == "INT4":
        return in_c * k_w * k_h * 2
    pad_h, pad_w = _padding(o, in_h, in_w, k_h, k_w, out_h, out_w)
    if not dsp or (k_w == 3 and k_h == 3 and pad_h <= 1 and pad_w <= 1):
        return 0
    return in_c * k_w * k_h * 2


def _inputs(op) -> list[int]:
    return [int(t) for t in (op.inputs if op.inputs is not None else [])]


def _mean_scratch(model: TfliteModel, inputs: list[int], output: int) -> tuple[int, ...]:
    """PrepareMeanOrSumHelper's requests (reduce_common.cc; MEAN and SUM): the int8 accumulator (an int32 per
    output element), then _max_scratch's two."""
    return (4 * _elements(model, model.tensors[output]), *_max_scratch(model, inputs, output))


def _max_scratch(model: TfliteModel, inputs: list[int], output: int) -> tuple[int, ...]:
    """PrepareMinMaxHelper's requests (REDUCE_MAX): input_iter (an int per input dimension), resolved_axis (an int
    per axis)."""
    del output
    x, axes = model.tensors[inputs[0]], model.tensors[inputs[1]]
    return (4 * len(model.shape(x)), 4 * _elements(model, axes))


# the temp TfLiteTensors each kernel's Prepare allocates (input indices, output), repeats included: the reference
# kernels' *_common.cc / CMSIS-NN's *.cc at TFLM 90b983c2
_TEMPS = {
    **dict.fromkeys(("MAX_POOL_2D", "SOFTMAX", "RESHAPE", "QUANTIZE", "DEQUANTIZE", "LOGISTIC", "RELU", "HARD_SWISH",
                     "LEAKY_RELU", "SQUEEZE"), lambda i, o: (i[0], o)),
    **dict.fromkeys(("ADD", "MUL", "SUB", "TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR", "EXPAND_DIMS", "PRELU"),
                    lambda i, o: (i[0], i[1], o)),      # the second: perm, size, axis, alpha
    **dict.fromkeys(("MAXIMUM", "MINIMUM"), lambda *_: ()),    # no Prepare
    "RELU6": lambda i, _: (i[0],),                       # Relu6Prepare reads the input's quantization only
    "TANH": lambda i, o: (i[0], i[0], o),                # TanhPrepare's input, then CalculateArithmeticOpData's
    "PAD": lambda i, o: (*i, o),                         # input, paddings (and PADV2's constant), output
    "STRIDED_SLICE": lambda i, o: (*i[:4], o),           # StridedSliceContext: input, begin, end, strides, output
    "CONCATENATION": lambda i, o: (i[0], o, *i),         # input 0 and the output, then every input in turn
    # PrepareMeanOrSumHelper takes input, output, axis, then PrepareSimple input, axis, output again (int8);
    # PrepareMinMaxHelper the same six the other way round
    **dict.fromkeys(("MEAN", "SUM", "REDUCE_MAX"), lambda i, o: (i[0], o, i[1], i[0], i[1], o)),
}
_SCRATCH = {"MEAN": _mean_scratch, "SUM": _mean_scratch, "REDUCE_MAX": _max_scratch}


def _prepare(model: TfliteModel, op, name: str, dsp: bool) -> _Prepare:  # noqa: C901 (one table of kernels)
    """The kernel's Prepare in TFLM 90b983c2: CMSIS-NN's (tensorflow/lite/micro/kernels/cmsis_nn/*.cc) where it has
    the operator, else the reference kernel's (kernels/*.cc, *_common.cc)."""
    inputs, output = _inputs(op), int(op.outputs[0])
    temp = lambda *indices: _temp_tensor_bytes(model, indices)  # noqa: E731
    bias = inputs[2] if len(inputs) > 2 else -1
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        channels = model.shape(model.tensors[inputs[1]])[0 if name == "CONV_2D" else 3]
        scratch = (_conv_scratch if name == "CONV_2D" else _dwconv_scratch)(model, op, dsp)
        # Prepare holds input, filter, output; CalculateOpDataConv/DepthwiseConv again with the bias
        held = temp(inputs[0], inputs[1], output) + temp(inputs[0], inputs[1], bias, output)
        return _Prepare(_per_channel(channels), (scratch,) if scratch else (), held)
    if name == "FULLY_CONNECTED":
        q = model.tensors[inputs[1]].quantization
        per_channel = q is not None and q.scale is not None and len(q.scale) > 1
        out_c = model.shape(model.tensors[output])[-1]
        requests: tuple[int, ...] = ()
        accum = model.shape(model.tensors[inputs[1]])[-1]
        if model.tensor_type(model.tensors[inputs[0]]) == "INT8" and model.tensor_type(model.tensors[inputs[1]]) != "INT4" \
                and len(model.shape(model.tensors[output])) > 2 and accum % 4 == 0 and not per_channel:
            requests = (out_c * 4 * 2,)  # the 1x1-conv path's per-channel quantization (its own buffer is 0 on gcc)
        return _Prepare(_per_channel(out_c) if per_channel else (), requests, temp(inputs[0], inputs[1], bias, output))
    if name == "AVERAGE_POOL_2D":
        depth = model.shape(model.tensors[output])[-1]
        return _Prepare((), (4 * depth,) if dsp else (), 2 * temp(inputs[0], output))
    if name in _TEMPS:
        return _Prepare((), _SCRATCH[name](model, inputs, output) if name in _SCRATCH else (),
                        temp(*_TEMPS[name](inputs, output)))
    if name == "TFLM_DECODE":
        outputs = [int(t) for t in op.outputs]
        kinds = {(model.data(model.tensors[inputs[2 * k + 1]]) or b"\xff")[0] for k in range(len(outputs))}
        if kinds != {0}:
            raise NotDerivable("a DECODE operator with other than LUT tensors (pruned or Huffman) is not modelled")
        states = tuple(("DECODE state", size, ALIGNMENT) for size in (4 * len(outputs),)) + \
            tuple(("DECODE state", DECODE_STATE_LUT, ALIGNMENT) for _ in outputs)
        held = sum(temp(inputs[2 * k], inputs[2 * k + 1], out) for k, out in enumerate(outputs))
        return _Prepare(states, (), held)
    raise NotDerivable(f"operator {name} is not modelled (its CMSIS-NN kernel's allocations)")


def _planned_buffers(model: TfliteModel, scratch: list[tuple[int, int]]) -> list[Buffer]:
    """The buffers TFLM plans, in the order it adds them: tensors by index, then scratch buffers (live in the
    scope of the operator that asked for them)."""
    from ..tflite.memory_plan import NotPlannable, lifetimes

    try:
        buffers = lifetimes(model)
    except NotPlannable as error:
        raise NotDerivable(str(error)) from None
    count = len(model.tensors)
    return buffers + [Buffer(count + k, align(size), op + 1, op + 1) for k, (op, size) in enumerate(scratch)]


def _offline_offsets(model_bytes: bytes, tensors: int) -> dict[int, int]:
    """The tensors a model's OfflineMemoryAllocation places itself (tensor -> offset; -1 entries are online)."""
    from ..tflite.memory_plan import read_offline_plan

    offsets = read_offline_plan(model_bytes) or []
    if offsets and len(offsets) != tensors:
        raise NotDerivable(f"the offline memory plan has {len(offsets)} entries for {tensors} tensors")
    return {t: offset for t, offset in enumerate(offsets) if offset >= 0}


def _io_tensors(arena: _Arena, model: TfliteModel, indices) -> None:
    """AllocateTensors' TfLiteTensor* array (16-byte aligned) and one persistent TfLiteTensor per input/output."""
    indices = [int(t) for t in indices]
    arena.persistent("input/output TfLiteTensors", POINTER * len(indices), ALIGNMENT)
    for index in indices:
        arena.persistent("input/output TfLiteTensors", TFLITE_TENSOR)
        struct, zero_points = _quantization_bytes(model.tensors[index])
        if struct:
            arena.persistent("input/output TfLiteTensors", struct)
            arena.persistent("input/output TfLiteTensors", zero_points)


def _before_prepare(arena: _Arena, model: TfliteModel, names: list[str]) -> None:
    """The persistent allocations up to the kernels' Prepare: the interpreter's constructor, StartModelAllocation,
    the builtin options each parser allocates, and each kernel's Init (its OpData)."""
    for size in ALLOCATORS:
        arena.persistent("allocator objects", size)
    arena.persistent("subgraph allocations", SUBGRAPH_ALLOCATIONS * len(model.subgraphs))
    arena.persistent("TfLiteEvalTensors", EVAL_TENSOR * len(model.tensors))
    arena.persistent("node and registration array", NODE_AND_REGISTRATION * len(model.operators))
    for name in names:
        if name in PARAMS:
            arena.persistent("builtin options", *PARAMS[name])
    for name in names:
        if name not in OP_DATA:
            raise NotDerivable(f"operator {name} is not modelled (its CMSIS-NN kernel's OpData)")
        if OP_DATA[name]:
            arena.persistent("kernel OpData", OP_DATA[name], ALIGNMENT)


def _prepare_all(arena: _Arena, model: TfliteModel, names: list[str], dsp: bool) -> list[tuple[int, int]]:
    """Each kernel's Prepare in order: its persistent allocations, the non-persistent high point it reaches (the
    scratch requests so far + its temporaries), its scratch requests ((operator, bytes), in request order)."""
    scratch: list[tuple[int, int]] = []
    for index, (op, name) in enumerate(zip(model.operators, names)):
        if name not in ("TFLM_DECODE", "QUANTIZE", "DEQUANTIZE") and \
                model.tensor_type(model.tensors[int(op.inputs[0])]) != "INT8":
            raise NotDerivable(f"{name} with {model.tensor_type(model.tensors[int(op.inputs[0])])} input: only "
                               "int8 kernels' buffers are modelled")
        prepared = _prepare(model, op, name, dsp)
        for kind, size, alignment in prepared.persistent:
            arena.persistent(kind, size, alignment)
        arena.reach(SCRATCH_REQUEST * (len(scratch) + MAX_SCRATCH_PER_OP) + prepared.temps)
        scratch += [(index, size) for size in prepared.scratch]
    return scratch


def derive(model_bytes: bytes, core: str = "cortex-m4") -> ArenaDerivation:
    """AllocateTensors() replayed for `core` (CMSIS-NN with DSP on Cortex-M4/M7, its plain C path on Armv6-M);
    NotDerivable when the model has an operator or layout the replay does not model."""
    if core in MVE_CORES:
        raise NotDerivable(f"{core} runs CMSIS-NN's MVE kernels, whose buffers are not modelled")
    model = TfliteModel.from_bytes(model_bytes)
    names = [model.operator_name(op) for op in model.operators]
    arena = _Arena()
    _before_prepare(arena, model, names)
    scratch = _prepare_all(arena, model, names, core in DSP_CORES)
    if scratch:
        arena.persistent("scratch buffer handles", SCRATCH_HANDLE * len(scratch))
    for tensor in model.tensors:                  # variable tensors live in the persistent section
        if tensor.isVariable:
            arena.persistent("variable tensors", _bytes(model, tensor), ALIGNMENT)
    buffers = _planned_buffers(model, scratch)
    # planning: the requests, AllocationInfo per tensor and scratch buffer, then the planner's lists (16-aligned)
    planning = SCRATCH_REQUEST * (len(scratch) + MAX_SCRATCH_PER_OP) + POINTER * len(model.subgraphs) \
        + ALLOCATION_INFO * (len(model.tensors) + len(scratch))
    arena.reach(align(planning) + PLANNER_PER_BUFFER * len(buffers) + (align(arena.tail) - arena.tail))
    plan = greedy(buffers, _offline_offsets(model_bytes, len(model.tensors))).arena
    _io_tensors(arena, model, model.subgraph.inputs if model.subgraph.inputs is not None else [])
    _io_tensors(arena, model, model.subgraph.outputs if model.subgraph.outputs is not None else [])
    return ArenaDerivation(core, plan, arena.tail, arena.peak, dict(arena.pieces),
                           tuple(size for _, size in scratch))


def derived_figure(model_bytes: bytes, core: str = target_arena.DEFAULT_CORE) -> target_arena.ArenaFigure | None:
    """The smallest arena the model needs on `core`, as a labelled figure; None when the derivation does not
    model something in it (the caller keeps the host's figure, labelled as not the device's)."""
    try:
        return target_arena.derived(derive(model_bytes, core).needed, core)
    except (ValueError, IndexError):  # NotDerivable, or a tensor shape a kernel's rule does not expect
        return None
