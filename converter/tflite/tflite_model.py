"""TfliteModel: the kit's one reader and editor of .tflite flatbuffers.

Every module that looks inside a model (info, deployability, compression planning, the
PRUNE and int4 encoders, metadata stripping, partitioning) goes through this class, which
wraps the TFLite schema's object API (`schema_py_generated.ModelT`): plain Python objects
that are read and edited the same way and packed back with `to_bytes()`.

Reading::

    model = TfliteModel.from_bytes(model_bytes)   # structural checks first (verify.py)
    model.subgraph                  # main subgraph (SubGraphT): .tensors, .operators, .inputs, .outputs
    model.tensors, model.operators  # of the main subgraph; model.subgraphs for all
    model.buffers                   # BufferT list; buffer 0 is the empty sentinel
    model.operator_name(op)         # "CONV_2D", "TFLM_DECODE", ...
    model.tensor_type(tensor)       # "INT8", ...;  model.tensor_name(tensor) -> str
    model.constant(tensor)          # the tensor's data as a typed, shaped numpy array, or None
    model.consumers(t, subgraph=0)  # [(operator index, input position)] reading tensor t

Editing (the object API is mutable; edit a copy when the original is still needed)::

    edited = model.copy()                         # deep copy
    b = edited.add_buffer(np.int8 array or bytes)  # -> buffer index
    t = edited.add_tensor(shape, "INT8", buffer=b, name="w", quantization=None, subgraph=0)
    code = edited.opcode_index("TFLM_DECODE")      # finds or adds the operator code
    edited.subgraph.operators.insert(i, operator)  # schema.OperatorT(...)
    edited.to_bytes()                              # packed flatbuffer ("TFL3")
    edited.to_bytes(aligned=True)                  # buffers 16-byte aligned, as TFLM's own tools write

Indices stay as the schema has them (operators name tensors by index, tensors name buffers by
index): removing entries means renumbering, which `compact()` does for unreferenced ones.
"""
from __future__ import annotations

import copy
import os
import tempfile

import numpy as np

from .schema import FILE_IDENTIFIER, NUMPY_TYPES, opcode_name, schema, type_name
from .verify import reading, verified_root


class TfliteModel:
    def __init__(self, root: "schema.ModelT"):
        self.root = root

    # -- reading ----------------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, model_bytes: bytes) -> "TfliteModel":
        return _unpack(model_bytes)

    @property
    def subgraphs(self) -> list:
        return self.root.subgraphs or []

    @property
    def subgraph(self):
        return self.root.subgraphs[0]

    @property
    def tensors(self) -> list:
        return self.subgraph.tensors or []

    @property
    def operators(self) -> list:
        return self.subgraph.operators or []

    @property
    def buffers(self) -> list:
        return self.root.buffers or []

    def operator_name(self, operator) -> str:
        code = self.root.operatorCodes[operator.opcodeIndex]
        return opcode_name(code.builtinCode, code.deprecatedBuiltinCode, code.customCode)

    @staticmethod
    def tensor_type(tensor) -> str:
        return type_name(tensor.type)

    @staticmethod
    def tensor_name(tensor) -> str:
        return bytes(tensor.name or b"").decode(errors="replace")

    @staticmethod
    def shape(tensor) -> tuple:
        return tuple(int(d) for d in tensor.shape) if tensor.shape is not None else ()

    def data(self, tensor) -> bytes | None:
        """The raw bytes of a constant tensor, or None when the tensor has no data."""
        if not self.buffers:
            return None
        data = self.buffers[tensor.buffer].data
        return bytes(np.asarray(data, np.uint8)) if data is not None and len(data) else None

    def constant(self, tensor) -> np.ndarray | None:
        """A constant tensor's values, typed and shaped (None for activations and unknown types)."""
        raw = self.data(tensor)
        dtype = NUMPY_TYPES.get(self.tensor_type(tensor))
        if raw is None or dtype is None:
            return None
        return np.frombuffer(raw, dtype).reshape(self.shape(tensor)).copy()

    def consumers(self, tensor_index: int, subgraph: int = 0) -> list[tuple[int, int]]:
        """(operator index, input position) of every operator input that reads the tensor."""
        found = []
        for o, operator in enumerate(self.subgraphs[subgraph].operators or []):
            for position, t in enumerate(operator.inputs if operator.inputs is not None else []):
                if int(t) == tensor_index:
                    found.append((o, position))
        return found

    def buffer_users(self) -> dict[int, int]:
        """Buffer index -> number of tensors (all subgraphs) that hold it, for buffers with data."""
        users: dict[int, int] = {}
        for subgraph in self.subgraphs:
            for tensor in subgraph.tensors or []:
                if self.data(tensor) is not None:
                    users[tensor.buffer] = users.get(tensor.buffer, 0) + 1
        return users

    # -- editing ----------------------------------------------------------------------------
    def copy(self) -> "TfliteModel":
        return TfliteModel(copy.deepcopy(self.root))

    def add_buffer(self, data) -> int:
        """Append a buffer holding `data` (bytes or a numpy array, stored as its raw bytes; None: empty)."""
        buffer = schema.BufferT()
        if data is not None:
            # a uint8 array packs as one vector; a bytes object would pack byte by byte
            buffer.data = np.frombuffer(data.tobytes() if isinstance(data, np.ndarray) else bytes(data), np.uint8)
        self.root.buffers.append(buffer)
        return len(self.root.buffers) - 1

    def add_tensor(self, shape, type_: str, buffer: int = 0, name: str = "", quantization=None,
                   subgraph: int = 0) -> int:
        tensor = schema.TensorT()
        tensor.shape = np.array(shape, np.int32)
        tensor.type = getattr(schema.TensorType, type_)
        tensor.buffer = buffer
        tensor.name = name.encode()
        tensor.quantization = quantization
        tensors = self.subgraphs[subgraph].tensors
        tensors.append(tensor)
        return len(tensors) - 1

    def opcode_index(self, name: str, version: int = 1) -> int:
        """Index of the operator code for a builtin name or a custom code, added when missing."""
        codes = self.root.operatorCodes
        for i, code in enumerate(codes or []):
            if opcode_name(code.builtinCode, code.deprecatedBuiltinCode, code.customCode) == name:
                return i
        code = schema.OperatorCodeT()
        builtin = getattr(schema.BuiltinOperator, name, None)
        code.builtinCode = schema.BuiltinOperator.CUSTOM if builtin is None else builtin
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)  # the byte field caps at 127 (PLACEHOLDER_...)
        code.customCode = name.encode() if builtin is None else None
        code.version = version
        codes.append(code)
        return len(codes) - 1

    def compact(self) -> None:
        """Drop buffers no tensor uses (keeping the empty buffer 0) and renumber the tensors' references."""
        used = sorted({t.buffer for s in self.subgraphs for t in s.tensors or []} - {0})
        metadata = {m.buffer for m in self.root.metadata or []}
        keep = [0] + sorted(set(used) | metadata)
        renumber = {old: new for new, old in enumerate(keep)}
        self.root.buffers = [self.root.buffers[i] for i in keep]
        for subgraph in self.subgraphs:
            for tensor in subgraph.tensors or []:
                tensor.buffer = renumber[tensor.buffer]
        for entry in self.root.metadata or []:
            entry.buffer = renumber[entry.buffer]

    def to_bytes(self, aligned: bool = False) -> bytes:
        """The packed flatbuffer. aligned: 16-byte aligned buffer data (the schema's force_align,
        which Python's flatbuffers ignores), re-packed by TFLM's C++ alignment tool."""
        import flatbuffers

        builder = flatbuffers.Builder(1 << 16)
        builder.Finish(self.root.Pack(builder), file_identifier=FILE_IDENTIFIER)
        packed = bytes(builder.Output())
        return _aligned(packed) if aligned else packed


@reading
def _unpack(model_bytes: bytes) -> TfliteModel:
    verified_root(model_bytes)
    return TfliteModel(schema.ModelT.InitFromPackedBuf(model_bytes, 0))


def _aligned(model_bytes: bytes) -> bytes:
    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper

    with tempfile.TemporaryDirectory(prefix="tflm-kit-align-") as folder:
        source, target = os.path.join(folder, "in.tflite"), os.path.join(folder, "out.tflite")
        with open(source, "wb") as file:
            file.write(model_bytes)
        tflite_flatbuffer_align_wrapper.align_tflite_model(source, target)
        with open(target, "rb") as file:
            return file.read()
