"""Drop from a flatbuffer what TFLM never reads (compress.strip_metadata)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .schema import DECODE_OP
from .tflite_model import TfliteModel

# Metadata entries the converter writes and TFLM never reads (its runtime reads only
# "OfflineMemoryAllocation"); unknown entries are kept, since a runtime may rely on them.
CONVERTER_METADATA = ("min_runtime_version", "CONVERSION_METADATA")


def _names(model: TfliteModel) -> None:
    model.root.description = None
    model.root.signatureDefs = None
    for subgraph in model.subgraphs:
        subgraph.name = None
        ends = set(subgraph.inputs if subgraph.inputs is not None else []) | \
            set(subgraph.outputs if subgraph.outputs is not None else [])
        for t, tensor in enumerate(subgraph.tensors or []):
            if t not in ends:
                tensor.name = ""  # empty, not absent: readers (the kit's own too) expect a string


def _metadata(model: TfliteModel) -> None:
    root = model.root
    dropped = [m for m in root.metadata or [] if (m.name or b"").decode(errors="replace") in CONVERTER_METADATA]
    for entry in dropped:
        root.buffers[entry.buffer].data = None
    root.metadata = [m for m in root.metadata or [] if m not in dropped] or None


def _zero_points(model: TfliteModel) -> None:
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors or []:
            quant = tensor.quantization
            zeros = None if quant is None else quant.zeroPoint
            if zeros is not None and len(zeros) > 1 and len(set(int(z) for z in zeros)) == 1:
                quant.zeroPoint = [int(zeros[0])]


def _encoded(model: TfliteModel) -> None:
    for subgraph in model.subgraphs:
        readers: dict[int, set] = {}
        for op in subgraph.operators or []:
            for position, t in enumerate(op.inputs if op.inputs is not None else []):
                readers.setdefault(int(t), set()).add((model.operator_name(op) == DECODE_OP, position))
        for t, tensor in enumerate(subgraph.tensors or []):
            if readers.get(t) == {(True, 0)}:
                tensor.quantization = None


KINDS = {"names_and_signatures": _names, "converter_metadata": _metadata,
         "repeated_zero_points": _zero_points, "encoded_tensor_quantization": _encoded}


@dataclass(frozen=True)
class StripResult:
    """Bytes saved per kind (each measured after the ones before it), and what a re-pack alone changed."""

    bytes_saved: dict[str, int]
    repack_bytes: int

    def as_dict(self) -> dict:
        return asdict(self)


def strip(model_bytes: bytes) -> tuple[bytes, StripResult]:
    """The flatbuffer without what TFLM never reads, and bytes saved per kind.

    - tensor and subgraph names (the model's input and output tensors keep theirs: the kit's
      reports and headers name them), the description and the signature defs: TFLM runs
      subgraph 0 by index;
    - the converter's metadata entries (CONVERTER_METADATA);
    - per-channel zero-point arrays whose values are all equal, cut to one value: TFLM's
      micro_allocator expands a single zero point to every channel (its "space-saving
      optimization" for weights). LiteRT does not, so the pipeline validates LiteRT on the
      unstripped model;
    - the quantization of a compressed tensor that only TFLM_DECODE reads: DECODE takes the
      channel count and axis from its output, the decoded tensor, which keeps its own copy.

    Read and packed with the kit's TfliteModel (the schema's object API), not TFLM's
    model_editor: the editor rewrites operator codes, and on files from older converters (the
    MLPerf KWS reference) TFLM then reads the wrong operators.
    """
    model = TfliteModel.from_bytes(model_bytes)
    # savings count from a re-pack with no edit; each kind is measured after the ones before it
    # (the last two overlap on encoded tensors' zero points)
    stripped = model.to_bytes()
    baseline = len(stripped)
    saved = {}
    for kind, edit in KINDS.items():
        size = len(stripped)
        edit(model)
        stripped = model.to_bytes()
        saved[kind] = size - len(stripped)
    return stripped, StripResult(saved, baseline - len(model_bytes))
