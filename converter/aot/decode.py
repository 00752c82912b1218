"""TFLM_DECODE lowered: the compressed tensors of the kit's `compress` stage (LUT, PRUNE) stay compressed in
flash and are decoded into the static buffer just before the operator that reads them, bit for bit as TFLM's
DECODE kernel does (decode_state_lut.cc, decode_state_prune.cc at TFLM 90b983c2).

The decoders are two small generic C functions (kernels/aot_kernels_decode.c); everything TFLM's
DecodeState::Setup derives from the tensors (tables per channel, which axis, index width, zero points) is
read here, once, from the ancillary tensor's header (the DCM) and the decoded tensor's quantization:

- LUT (DCM type 0): element i's index is bits [i*b, (i+1)*b) of the packed indices, most significant bit
  first; its value is entry `index` of table `channel(i)`, tables `stride` elements apart;
- PRUNE (DCM type 2): bit i (most significant first) says whether element i takes the next kept value or
  the zero point (per channel for int8 with several, else the first; 0 for other types).

channel(i) is i // (elements / channels) when the quantized dimension is 0 (or one table), i % channels when
it is the last dimension; any other axis TFLM refuses at Prepare, and so does the AOT generator. Other DCM
types (Huffman, custom) are refused with the way out.
"""
from __future__ import annotations

from .graph import ELEMENT_BYTES, AotGraph, Operator, Tensor, refuse
from .lower import ConstArray, Step

DCM_BYTES = 16
DCM_TYPES = {0: "LUT", 1: "Huffman", 2: "PRUNE", 127: "custom"}
LUT_TYPES = ("INT8", "INT16", "INT32", "INT64", "FLOAT32", "BOOL")
PRUNE_TYPES = LUT_TYPES        # TFLM decodes float32 PRUNE tables as int32 and bool as int8: the same bytes


def _channels(operator: Operator, graph: AotGraph, y: Tensor) -> tuple[int, int]:
    """(channels, run): the table changes every `run` elements and wraps after `channels` (DecodeState*::Setup)."""
    channels = max(len(y.scales), 1)
    last = channels > 1 and y.axis == len(y.shape) - 1
    if not last and y.scales and y.axis != 0:
        raise refuse(operator, graph, f"'{y.name}' is quantized along axis {y.axis}: TFLM decodes along the first "
                                      "or last axis only")
    if y.elements % channels:
        raise refuse(operator, graph, f"'{y.name}' has {y.elements} elements for {channels} channels")
    return channels, 1 if last else y.elements // channels


def _lut(operator: Operator, graph: AotGraph, encoded: Tensor, dcm: bytes, y: Tensor, tag: str) -> Step:
    bits, stride = dcm[5] & 0x07, dcm[6]
    channels, run = _channels(operator, graph, y)
    size = ELEMENT_BYTES[y.type]
    table = dcm[DCM_BYTES:]
    ok = dcm[4] == 1 and 1 <= bits <= 7 and stride > 0 and y.type in LUT_TYPES
    ok = ok and len(encoded.data or b"") * 8 >= y.elements * bits and len(table) >= channels * stride * size
    if not ok:
        raise refuse(operator, graph, f"a LUT encoding of '{y.name}' the AOT decoder does not read (version {dcm[4]}, "
                                      f"{bits}-bit indices, {y.type.lower()}, table stride {stride})")
    name = f"aot_op{operator.index}{tag}"
    # one zero byte after the indices: the decoder reads each index from two bytes
    arrays = (ConstArray(f"{name}_indices", "uint8_t", bytes(encoded.data or b"") + b"\0"),
              ConstArray(f"{name}_table", "uint8_t", bytes(table[:channels * stride * size])))
    fields = (("count", y.elements), ("channels", channels), ("run", run), ("elem_bytes", size), ("bits", bits),
              ("stride", stride), ("indices", f"{name}_indices"), ("table", f"{name}_table"))
    return Step(operator.index, operator.kind, "aot_decode_lut", "aot_lut_t", fields, arrays, (), y.index,
                note=f"LUT {bits}-bit, {channels} table{'s' if channels > 1 else ''}", tag=tag)


def _prune(operator: Operator, graph: AotGraph, encoded: Tensor, dcm: bytes, y: Tensor, tag: str) -> Step:
    channels, run = _channels(operator, graph, y)
    size = ELEMENT_BYTES[y.type]
    per_channel = channels > 1 and y.type == "INT8"
    zeros = [y.zero_points[0] if y.zero_points else 0]
    if per_channel:   # one zero point for all scales: TFLM's allocator copies zero_point[0] to every channel
        zeros = list(y.zero_points) if len(y.zero_points) == channels else zeros * channels
    if y.type != "INT8" and y.scales and zeros[0] != 0:
        raise refuse(operator, graph, f"'{y.name}' is {y.type.lower()} with a non-zero zero point (TFLM refuses it)")
    if y.type != "INT8":
        zeros = [0]
    mask = bytes(encoded.data or b"")
    kept = sum(bin(b).count("1") for b in mask[:y.elements // 8]) + \
        (bin(mask[y.elements // 8] >> (8 - y.elements % 8)).count("1") if y.elements % 8 else 0)
    ok = dcm[4] == 1 and y.type in PRUNE_TYPES and len(mask) * 8 >= y.elements and \
        len(zeros) == (channels if per_channel else 1) and len(dcm) - DCM_BYTES >= kept * size
    if not ok:
        raise refuse(operator, graph, f"a PRUNE encoding of '{y.name}' the AOT decoder does not read "
                                      f"(version {dcm[4]}, {y.type.lower()})")
    name = f"aot_op{operator.index}{tag}"
    arrays = (ConstArray(f"{name}_mask", "uint8_t", mask),
              ConstArray(f"{name}_values", "uint8_t", bytes(dcm[DCM_BYTES:DCM_BYTES + kept * size])),
              ConstArray(f"{name}_zero_points", "int8_t", bytes(z & 0xFF for z in zeros)))
    fields = (("count", y.elements), ("channels", channels if per_channel else 1),
              ("run", run if per_channel else y.elements), ("elem_bytes", size),
              ("mask", f"{name}_mask"), ("values", f"{name}_values"), ("zero_points", f"{name}_zero_points"))
    return Step(operator.index, operator.kind, "aot_decode_prune", "aot_prune_t", fields, arrays, (), y.index,
                note=f"PRUNE, {kept} of {y.elements} kept", tag=tag)


def lower_decode(operator: Operator, graph: AotGraph) -> list[Step]:
    """One decoding step per (encoded, ancillary) -> decoded tensor of a TFLM_DECODE operator."""
    pairs = list(zip(operator.inputs[0::2], operator.inputs[1::2]))
    if len(operator.inputs) != 2 * len(operator.outputs) or not pairs:
        raise refuse(operator, graph, "inputs are not (encoded, ancillary) pairs, one per output")
    steps = []
    for j, ((e, a), out) in enumerate(zip(pairs, operator.outputs)):
        encoded, ancillary, y = graph.tensor(e), graph.tensor(a), graph.tensor(out)
        dcm = bytes(ancillary.data or b"")
        if not (encoded.constant and ancillary.constant) or len(dcm) < DCM_BYTES:
            raise refuse(operator, graph, "the encoded data or its ancillary tensor is not constant")
        kind = DCM_TYPES.get(dcm[0], f"type {dcm[0]}")
        if dcm[1] != 1 or kind not in ("LUT", "PRUNE"):
            raise refuse(operator, graph, f"the {kind} encoding (DCM version {dcm[1]}) of '{y.name}' has no AOT "
                                          "decoder (LUT and PRUNE do)")
        tag = f"_{j}" if len(operator.outputs) > 1 else ""
        steps.append((_lut if kind == "LUT" else _prune)(operator, graph, encoded, dcm, y, tag))
    return steps
