"""LUT compression of the int8 flatbuffer with TFLM's own compressor (post-quantize stage).

TF-MOT clustering leaves at most k distinct values per channel in a float kernel, and per-channel
int8 quantization keeps them distinct and at most k. The flatbuffer still stores one byte per
weight. TFLM's LUT compression (`tflite_micro.compression`) stores such a tensor as b-bit indices
into value tables and inserts a `TFLM_DECODE` operator that expands it into the arena just before
its consumer runs. This stage:

- picks every constant INT8 tensor whose distinct values fit an index width below 8 bits, at the
  smallest width its values allow, with one value table per quantization channel (per-channel
  weights) or one for the tensor (per-tensor weights) -- the layout TFLM's decoder reads -- and
  only when that saves bytes;
- compresses them with `tflite_micro.compression.compress`;
- with `strip_metadata: true`, drops what TFLM never reads (see `strip`);
- runs the compressed and the uncompressed model on TFLM over real inputs and fails unless every
  output byte is identical (the pipeline checks the golden vectors again).

It is a FlatbufferStage (stages/base.py): the model in and out is the .tflite flatbuffer (bytes).
"""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from ..errors import KitError
from ..tflm.runners import quantize, run_tflm
from ..tflite.model import read_model
from ..compare.outputs import bit_exact, compare_outputs
from .base import FlatbufferStage, StageContext, StageRecord, StageSettings, register


class CompressSettings(StageSettings):
    """TFLM LUT compression of the quantized flatbuffer (after quantize; decoded by TFLM_DECODE)."""

    lut: bool = True
    max_index_bits: int = Field(7, ge=1, le=7, description="leave tensors that need wider indices as they are")
    verify_samples: int = Field(200, ge=1, le=100_000,
                                description="real inputs on which TFLM must give identical bytes before and after")
    strip_metadata: bool = Field(False, description="drop what TFLM never reads: names, signatures, converter "
                                 "metadata, repeated weight zero points, encoded tensors' quantization")

DCM_BYTES = 16       # TFLM's DecodeCommonMetadata header in front of every value table
MAX_LUT_BITS = 7     # the LUT ancillary data holds index widths 1..7


@dataclass(frozen=True)
class LutChoice:
    """How one tensor is stored after compression."""

    subgraph: int
    tensor: int
    name: str
    shape: tuple
    consumers: tuple
    unique_values: int            # distinct values in the whole tensor
    max_unique_per_table: int     # distinct values in the largest value table of the chosen layout
    axis: int | None              # None: one table for the tensor; else one table per slice along axis
    bits: int
    bytes_before: int
    bytes_after: int              # packed indices + DCM + value tables

    def as_dict(self) -> dict:
        return {"subgraph": self.subgraph, "tensor": self.tensor, "name": self.name, "shape": list(self.shape),
                "consumers": list(self.consumers), "unique_values": self.unique_values,
                "max_unique_per_table": self.max_unique_per_table,
                "layout": "per_tensor" if self.axis is None else f"per_channel(axis={self.axis})",
                "index_bits": self.bits, "bytes_before": self.bytes_before, "bytes_after": self.bytes_after}


def index_bits(distinct: int) -> int:
    """The smallest index width that addresses `distinct` table entries (at least 1 bit)."""
    return max(1, (distinct - 1).bit_length())


def lut_bytes(elements: int, bits: int, tables: int, table_len: int, itemsize: int) -> int:
    """Bytes TFLM's LUT compressor writes: packed indices, plus the DCM header and padded value tables."""
    return (elements * bits + 7) // 8 + DCM_BYTES + tables * table_len * itemsize


def quantization_channels(tensor) -> tuple[int, int | None]:
    """(number of scales, quantized axis) of a model_editor tensor; (1, None) when per tensor."""
    quant = tensor.quantization
    scales = getattr(quant, "scales", None)
    count = len(scales) if isinstance(scales, (list, tuple, np.ndarray)) else 1
    return count, (getattr(quant, "axis", None) or 0) if count > 1 else None


def layout(array: np.ndarray, channels: int, axis: int | None) -> tuple[int | None, int, int] | None:
    """(axis, tables, largest table) that TFLM's DECODE kernel reads for this tensor, or None.

    The LUT decoder (decode_state_lut.cc, checked at TFLM 90b983c) ignores the axis written in the
    ancillary data: it keeps one value table per quantization scale, along the quantized dimension,
    which must be 0 or the last axis. A per-tensor table on a per-channel-quantized tensor is
    accepted by the compressor but decoded wrongly, so the layout follows the quantization.
    """
    if axis is None or channels <= 1:
        return None, 1, len(np.unique(array))
    if axis not in (0, array.ndim - 1) or array.shape[axis] != channels:
        return None
    slices = np.moveaxis(array, axis, 0).reshape(channels, -1)
    return axis, channels, max(len(np.unique(s)) for s in slices)


def plan(model_bytes: bytes, max_bits: int = MAX_LUT_BITS) -> tuple[list[LutChoice], list[dict]]:
    """The tensors to compress and how; plus the INT8 constant tensors left alone, with the reason."""
    from tflite_micro.tensorflow.lite.micro.compression import constant_inputs, model_editor
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = model_editor.read(model_bytes)
    aliases: dict[int, int] = {}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            if tensor.buffer is not None and tensor.buffer.data:
                aliases[id(tensor.buffer)] = aliases.get(id(tensor.buffer), 0) + 1

    chosen, skipped = [], []
    for s, subgraph in enumerate(model.subgraphs):
        for t, tensor in enumerate(subgraph.tensors):
            if tensor.buffer is None or not tensor.buffer.data or tensor.dtype != schema.TensorType.INT8:
                continue
            array = tensor.array
            name = tensor.name or f"tensor {t}"
            before = len(tensor.buffer.data)
            consumers = tuple(op.opcode_name for op in subgraph.consumers_of(tensor))
            reason = None
            if constant_inputs.find_uses(subgraph, tensor):
                reason = "an operator needs it constant at Prepare"
            elif aliases[id(tensor.buffer)] > 1:
                reason = "its buffer is shared with another tensor"
            elif not consumers:
                reason = "no operator reads it"
            best = None
            if reason is None and (chosen_layout := layout(array, *quantization_channels(tensor))) is None:
                reason = "its quantization axis is neither the first nor the last (TFLM's decoder needs one of them)"
            elif reason is None:
                axis, tables, table_len = chosen_layout
                bits = index_bits(table_len)
                size = lut_bytes(array.size, bits, tables, table_len, array.itemsize)
                best = LutChoice(s, t, name, tuple(int(d) for d in array.shape), consumers,
                                 int(len(np.unique(array))), table_len, axis, bits, before, size)
                if bits > max_bits:
                    reason = f"{table_len} distinct values need a {bits}-bit index (max_index_bits: {max_bits})"
                elif size >= before:
                    reason = f"LUT would not shrink it ({before} -> {size} B)"
            if reason is None:
                chosen.append(best)
            else:
                skipped.append({"subgraph": s, "tensor": t, "name": name, "bytes": before,
                                "unique_values": int(len(np.unique(array))), "reason": reason})
    return chosen, skipped


def compress_bytes(model_bytes: bytes, choices: list[LutChoice]) -> bytes:
    """The flatbuffer with the chosen tensors LUT-compressed and TFLM_DECODE operators inserted."""
    from tflite_micro.tensorflow.lite.micro import compression
    from tflite_micro.tensorflow.lite.micro.compression import spec

    specs = [spec.Tensor(c.subgraph, c.tensor, [spec.LookUpTableCompression(
        index_bitwidth=c.bits, mode=spec.PerTensor() if c.axis is None else spec.PerChannel(axis=c.axis))])
        for c in choices]
    printed = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(printed):
            warnings.simplefilter("ignore")
            return bytes(compression.compress(model_bytes, specs))
    except Exception as exc:
        raise KitError(f"TFLM's LUT compressor failed: {' '.join(str(exc).split())[:300]}",
                       "remove the compress step from the recipe and report this with the model") from None


# Metadata entries the converter writes and TFLM never reads (its runtime reads only
# "OfflineMemoryAllocation"); unknown entries are kept, since a runtime may rely on them.
CONVERTER_METADATA = ("min_runtime_version", "CONVERSION_METADATA")


def strip(model_bytes: bytes) -> tuple[bytes, dict]:
    """The flatbuffer without what TFLM never reads, and bytes saved per kind.

    - tensor and subgraph names (the model's input and output tensors keep theirs: the kit's
      reports and headers name them), the description and the signature defs: TFLM runs
      subgraph 0 by index;
    - the converter's metadata entries (CONVERTER_METADATA);
    - per-channel zero-point arrays whose values are all equal, cut to one value: TFLM's
      micro_allocator expands a single zero point to every channel (its "space-saving
      optimization" for weights). LiteRT does not, so the pipeline validates LiteRT on the
      unstripped model;
    - the quantization of a LUT-encoded tensor that only TFLM_DECODE reads: DECODE takes the
      channel count and axis from its output, the decoded tensor, which keeps its own copy.
    """
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    # The schema's object API, not TFLM's model_editor: the editor rewrites operator codes, and on
    # files from older converters (the MLPerf KWS reference) TFLM then reads the wrong operators.
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)

    def pack() -> bytes:
        builder = flatbuffers.Builder(2 * len(model_bytes))
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    def names():
        model.description = None
        model.signatureDefs = None
        for subgraph in model.subgraphs:
            subgraph.name = None
            ends = set(subgraph.inputs if subgraph.inputs is not None else []) | \
                set(subgraph.outputs if subgraph.outputs is not None else [])
            for t, tensor in enumerate(subgraph.tensors or []):
                if t not in ends:
                    tensor.name = ""  # empty, not absent: readers (the kit's own too) expect a string

    def metadata():
        dropped = [m for m in model.metadata or [] if (m.name or b"").decode(errors="replace") in CONVERTER_METADATA]
        for entry in dropped:
            model.buffers[entry.buffer].data = None
        model.metadata = [m for m in model.metadata or [] if m not in dropped] or None

    def zero_points():
        for subgraph in model.subgraphs:
            for tensor in subgraph.tensors or []:
                quant = tensor.quantization
                zeros = None if quant is None else quant.zeroPoint
                if zeros is not None and len(zeros) > 1 and len(set(int(z) for z in zeros)) == 1:
                    quant.zeroPoint = [int(zeros[0])]

    def encoded():
        decode = {i for i, code in enumerate(model.operatorCodes or [])
                  if code.customCode is not None and bytes(code.customCode) == b"TFLM_DECODE"}
        for subgraph in model.subgraphs:
            readers: dict[int, set] = {}
            for op in subgraph.operators or []:
                for position, t in enumerate(op.inputs if op.inputs is not None else []):
                    readers.setdefault(int(t), set()).add((op.opcodeIndex in decode, position))
            for t, tensor in enumerate(subgraph.tensors or []):
                if readers.get(t) == {(True, 0)}:
                    tensor.quantization = None

    kinds = {"names_and_signatures": names, "converter_metadata": metadata,
             "repeated_zero_points": zero_points, "encoded_tensor_quantization": encoded}
    # savings count from a re-pack with no edit; each kind is measured after the ones before it
    # (the last two overlap on encoded tensors' zero points)
    stripped = pack()
    baseline = len(stripped)
    saved = {}
    for kind, edit in kinds.items():
        size = len(stripped)
        edit()
        stripped = pack()
        saved[kind] = size - len(stripped)
    return stripped, {"bytes_saved": saved, "repack_bytes": baseline - len(model_bytes)}


@register
class Compress(FlatbufferStage):
    name = "compress"
    Settings = CompressSettings

    def transform(self, model_bytes: bytes, settings: CompressSettings, context: StageContext):
        return _compress(model_bytes, settings, context.data)

    def report_note(self, record: StageRecord) -> str:
        tensors = record.details.get("tensors") or []
        if not tensors:
            return record.details.get("note", "")
        bits = sorted({t.get("index_bits") for t in tensors if t.get("index_bits")})
        return (f"{len(tensors)} tensors LUT-compressed ({'/'.join(map(str, bits))}-bit indices), "
                f"model {record.details['bytes_before']:,} → {record.details['bytes_after']:,} B")


def run(model_bytes: bytes, settings: CompressSettings, data, seed: int = 0, **context):
    return Compress().run(model_bytes, settings, StageContext(data, seed, **context))


def _compress(model_bytes: bytes, settings: CompressSettings, data) -> tuple[bytes, dict]:
    """The compressed (and/or stripped) model and the details of its record."""
    record = {"bytes_before": len(model_bytes)}
    choices, skipped = plan(model_bytes, settings.max_index_bits) if settings.lut else ([], [])
    compressed, lut_note = model_bytes, None
    if not choices:
        lut_note = "no tensor qualified for LUT compression"
    else:
        compressed = compress_bytes(model_bytes, choices)
        if len(compressed) >= len(model_bytes):
            # DECODE operators, the new tensors and buffer alignment cost bytes of their own; seen on
            # the MLPerf KWS DS-CNN at 16 clusters: tensors 19,712 -> 15,264 B, model 48,480 -> 49,328 B.
            lut_note = (f"LUT compression would grow the model ({len(model_bytes)} -> {len(compressed)} B: "
                        "DECODE operators and tensor metadata outweigh the index savings)")
            record["rejected"] = [c.as_dict() for c in choices]
            compressed, choices = model_bytes, []
    if settings.strip_metadata:
        compressed, record["strip"] = strip_checked(compressed)
    if compressed == model_bytes:
        record.update({"bytes_after": len(model_bytes), "tensors": [], "skipped": skipped, "verification": None,
                       "note": f"{lut_note}; the model is unchanged"})
        return model_bytes, record
    info, compressed_info = read_model(model_bytes), read_model(compressed)
    x, source = data.spread_inputs(settings.verify_samples)
    inputs = [quantize(x, info.inputs[0])]
    expected = run_tflm(model_bytes, info, inputs)
    actual = run_tflm(compressed, compressed_info, inputs)
    verification = compare_outputs(expected, actual) | {"inputs": source, "runtime": "tflm"}
    if not bit_exact(verification):
        what = " and ".join(w for w, on in (("LUT-compressed", choices), ("stripped", settings.strip_metadata)) if on)
        raise KitError(f"the {what} model differs from the uncompressed one on TFLM "
                       f"({verification['equal']}/{verification['total']} vectors equal, "
                       f"max {verification['max_lsb']} LSB)",
                       "remove the compress step from the recipe and report this with the model")
    record.update({
        "bytes_after": len(compressed),
        "tensor_bytes_before": sum(c.bytes_before for c in choices),
        "tensor_bytes_after": sum(c.bytes_after for c in choices),
        "decode_operators": compressed_info.operator_counts.get("TFLM_DECODE", 0),
        "largest_decoded_tensor_bytes": max((c.bytes_before for c in choices), default=0),
        "tensors": [c.as_dict() for c in choices],
        "skipped": skipped,
        "verification": verification,
    })
    if lut_note:
        record["note"] = f"{lut_note}; only stripped"
    return compressed, record


def strip_checked(model_bytes: bytes) -> tuple[bytes, dict]:
    try:
        return strip(model_bytes)
    except Exception as exc:
        raise KitError(f"stripping the model's metadata failed: {' '.join(str(exc).split())[:300]}",
                       "set compress.strip_metadata: false and report this with the model") from None
