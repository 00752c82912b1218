"""Tiny models (tests/aot_models.py) whose weights are LUT- and PRUNE-compressed as the kit's `compress` stage
writes them (TFLM's LUT compressor, the kit's PRUNE encoder, TFLM_DECODE operators in front of the consumers),
for the AOT decoder's tests. The weights are drawn from small palettes with many zeros, so every index width
(1 to 7 bits), per-tensor and per-channel tables on the first and the last axis, and sparse tensors occur; each
compressible tensor gets LUT or PRUNE by a coin flip, whatever the size (the `compress` stage would keep only
the encodings that shrink the model)."""
from __future__ import annotations

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

from converter.stages.compress import encode
from converter.tflite.compression.candidates import find_candidates
from converter.tflite.compression.lut import LutChoice, index_bits, layout
from converter.tflite.compression.plan import Plan
from converter.tflite.compression.prune import PruneChoice, kept_mask
from converter.tflite.tflite_model import TfliteModel
from tests.aot_models import ADDERS, ModelBuilder, Random

PALETTES = (2, 3, 4, 5, 8, 16, 33, 100)


class Clustered(Random):
    """Filters and biases drawn from a few values (per tensor), often mostly zeros."""

    def _palette(self, low: int, high: int) -> np.ndarray:
        size = self.choice(PALETTES)
        return np.unique(np.append(self.rng.integers(low, high + 1, size), 0))

    def _draw(self, palette: np.ndarray, shape) -> np.ndarray:
        values = self.rng.choice(palette, shape)
        if self.rng.random() < 0.5:   # sparse: PRUNE's bitmask has long runs of zero points
            values[self.rng.random(values.shape) < 0.7] = 0
        return values

    def filter(self, shape, int4: bool):
        if int4:
            return super().filter(shape, int4)
        values = self._draw(self._palette(-127, 127), shape).astype(np.int8)
        return values, values.tobytes()

    def bias(self, count: int) -> bytes:
        span = self.choice((1 << 8, 1 << 14, 1 << 20))
        return self._draw(self._palette(-span, span), (count,)).astype("<i4").tobytes()


def add_constant_add(b: ModelBuilder, r: Random) -> tuple[int, int]:
    """ADD of an activation and a constant int8 operand (a DECODE output read as an activation)."""
    shape = (1, r.int(1, 4), r.int(1, 5), r.int(1, 6))
    a = b.activation(shape, r.scale(), r.zero_point())
    zp = r.zero_point()
    values = r.rng.choice(np.unique(np.append(r.rng.integers(-128, 128, r.choice(PALETTES)), zp)), shape)
    c = b.tensor(shape, "INT8", r.scale(), zp, values.astype(np.int8).tobytes())
    y = b.activation(shape, r.scale(), r.zero_point())
    o = s.AddOptionsT()
    o.fusedActivationFunction = r.choice((0, 1))
    b.op("ADD", (a, c), (y,), o, "AddOptions")
    return a, y


KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "CONSTANT_ADD")


def clustered_model(count: int, seed: int) -> bytes:
    """`count` independent CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / constant ADD operators."""
    b, r = ModelBuilder(), Clustered(seed)
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        x, y = add_constant_add(b, r) if kind == "CONSTANT_ADD" else ADDERS[kind](b, r)
        b.io((x,), (y,))
    return b.to_bytes()


def _lut_choice(candidate) -> LutChoice | None:
    found = layout(candidate.array, candidate.channels, candidate.axis)
    if found is None or index_bits(found[2]) > 7:
        return None
    axis, _, table_len = found
    return LutChoice(candidate.subgraph, candidate.tensor, candidate.name, candidate.array.shape, (), 0, table_len,
                     axis, index_bits(table_len), candidate.nbytes, 0)


def compress_all(model: bytes, seed: int, lut: float = 0.5) -> tuple[bytes, dict]:
    """Every int8 constant LUT-encoded (probability `lut`, when 7-bit indices reach) or PRUNE-encoded, as
    `compress` writes them; also, with TFLM's compressor, LUT on some int32 biases. (model, counts)."""
    rng = np.random.default_rng(seed)
    parsed = TfliteModel.from_bytes(model)
    candidates, _ = find_candidates(parsed)
    chosen = Plan()
    for c in candidates:
        quant = parsed.subgraph.tensors[c.tensor].quantization
        if c.channels == 1 and quant is not None and quant.quantizedDimension:
            continue   # one scale on axis 3 (a depthwise filter): TFLM's DECODE refuses any axis but 0 there
        choice = _lut_choice(c) if rng.random() < lut else None
        if choice is not None:
            chosen.lut.append(choice)
        else:
            chosen.prune.append(PruneChoice(c.subgraph, c.tensor, c.name, c.array.shape, (), int(kept_mask(c).sum()),
                                            c.nbytes, 0))
        chosen.candidates[(c.subgraph, c.tensor)] = c
    chosen.lut += _int32_luts(model, rng)
    return encode(model, chosen), {"lut": len(chosen.lut), "prune": len(chosen.prune)}


def _int32_luts(model: bytes, rng) -> list[LutChoice]:
    """Some int32 bias tensors with few distinct values (TFLM's LUT compressor takes them; the kit's does not)."""
    m = TfliteModel.from_bytes(model)
    found = []
    for t, tensor in enumerate(m.subgraph.tensors):
        data = m.data(tensor)
        if m.tensor_type(tensor) != "INT32" or data is None or not m.consumers(t, 0) or rng.random() < 0.5:
            continue
        if m.operator_name(m.subgraph.operators[m.consumers(t, 0)[0][0]]) not in ("CONV_2D", "FULLY_CONNECTED",
                                                                                  "DEPTHWISE_CONV_2D"):
            continue
        array = np.frombuffer(data, "<i4")
        scales = tensor.quantization.scale if tensor.quantization is not None else None
        channels = len(scales) if scales is not None else 1
        found_layout = layout(array, channels, 0 if channels > 1 else None)
        if found_layout is None or index_bits(found_layout[2]) > 7:
            continue
        found.append(LutChoice(0, t, "", array.shape, (), 0, found_layout[2], found_layout[0],
                               index_bits(found_layout[2]), array.nbytes, 0))
    return found


def decoder_model(seed: int, count: int = 8) -> tuple[bytes, dict]:
    """`count` random int8 tensors, each LUT- (forced index width 1..7; per tensor, per channel on the first or
    the last axis) or PRUNE-encoded (per-tensor or per-channel zero points) and reshaped into a model output,
    so the outputs are the decoded bytes themselves. (compressed model, counts)."""
    b, r = ModelBuilder(), Random(seed)
    x, y = b.activation((1, 2), 0.5, 0), b.activation((1, 2), 0.5, 0)
    b.op("RELU", (x,), (y,))
    b.io((x,), (y,))
    widths = {}
    for _ in range(count):
        shape = tuple(r.int(1, 7) for _ in range(r.int(1, 4)))
        axis = r.choice((None, 0, len(shape) - 1))
        if axis is not None and shape[axis] == 1:
            axis = None   # one scale on another axis than 0: TFLM's DECODE refuses it (and so does the AOT)
        channels = 1 if axis is None else shape[axis]
        bits = r.int(1, 7)
        zeros = [r.zero_point() for _ in range(channels)]
        tables = [np.unique(np.append(r.rng.integers(-128, 128, r.int(1, 1 << bits)), z)) for z in zeros]
        moved = (channels, *(d for i, d in enumerate(shape) if i != (axis or 0)))
        values = np.stack([r.rng.choice(t, moved[1:]) for t in tables]) if axis is not None else \
            r.rng.choice(tables[0], shape)
        if axis is not None:
            values = np.moveaxis(values, 0, axis)
        if r.rng.random() < 0.5:   # sparse: most elements at their channel's zero point
            zp = np.moveaxis(np.broadcast_to(np.asarray(zeros).reshape(-1, *[1] * (len(shape) - 1)), moved), 0,
                             axis or 0) if axis is not None else zeros[0]
            values = np.where(r.rng.random(shape) < 0.7, zp, values)
        scales = [r.scale() for _ in range(channels)]
        t = b.tensor(shape, "INT8", scales, zeros, values.astype(np.int8).tobytes(), axis=axis or 0)
        new_shape = b.tensor((2,), "INT32", data=np.array([1, values.size], "<i4").tobytes())
        out = b.activation((1, values.size), 1.0, 0)
        b.op("RESHAPE", (t, new_shape), (out,))
        b.io((), (out,))
        widths[t] = bits
    return _encode_forced(b.to_bytes(), widths, r.rng)


def _encode_forced(model: bytes, widths: dict, rng) -> tuple[bytes, dict]:
    candidates, _ = find_candidates(TfliteModel.from_bytes(model))
    chosen = Plan()
    for c in candidates:
        found = layout(c.array, c.channels, c.axis)
        if found is not None and rng.random() < 0.6:
            bits = max(widths[c.tensor], index_bits(found[2]))
            chosen.lut.append(LutChoice(0, c.tensor, c.name, c.array.shape, (), 0, found[2], found[0], bits,
                                        c.nbytes, 0))
        else:
            chosen.prune.append(PruneChoice(0, c.tensor, c.name, c.array.shape, (), int(kept_mask(c).sum()),
                                            c.nbytes, 0))
        chosen.candidates[(0, c.tensor)] = c
    return encode(model, chosen), {"lut": len(chosen.lut), "prune": len(chosen.prune),
                                   "bits": sorted({c.bits for c in chosen.lut})}


def sparse_clustered_model(seed: int = 0) -> bytes:
    """An uncompressed int8 model the kit's own `compress` stage (lut: true, prune: true) encodes both ways:
    CONV_2D 3x3x3 -> 16 with per-channel filters of at most 4 values (LUT, 2-bit indices, 16 tables) and a
    FULLY_CONNECTED 576 -> 10 whose filter is 90% zeros over ~200 distinct values (PRUNE)."""
    b, r = ModelBuilder(), Random(seed)
    x = b.activation((1, 8, 8, 3), 1 / 128, 0)
    palettes = [r.rng.choice(np.arange(-127, 128), 4, replace=False) for _ in range(16)]
    conv_w = np.stack([r.rng.choice(p, (3, 3, 3)) for p in palettes]).astype(np.int8)
    conv_scales = [float(np.float32(10 ** r.rng.uniform(-3, -2))) for _ in range(16)]
    w1 = b.tensor((16, 3, 3, 3), "INT8", conv_scales, 0, conv_w.tobytes(), axis=0)
    b1 = b.tensor((16,), "INT32", [float(np.float32(1 / 128) * np.float32(s)) for s in conv_scales], 0,
                  r.rng.integers(-2000, 2000, 16).astype("<i4").tobytes())
    c1 = b.activation((1, 6, 6, 16), 0.02, -128)
    conv = s.Conv2DOptionsT()
    conv.padding, conv.strideH, conv.strideW, conv.fusedActivationFunction = s.Padding.VALID, 1, 1, 1
    conv.dilationHFactor = conv.dilationWFactor = 1
    b.op("CONV_2D", (x, w1, b1), (c1,), conv, "Conv2DOptions")
    flat = b.activation((1, 576), 0.02, -128)
    b.op("RESHAPE", (c1, b.tensor((2,), "INT32", data=np.array([1, 576], "<i4").tobytes())), (flat,))
    fc_w = r.rng.integers(-127, 128, (10, 576))
    fc_w[r.rng.random(fc_w.shape) < 0.9] = 0
    w2 = b.tensor((10, 576), "INT8", 0.004, 0, fc_w.astype(np.int8).tobytes())
    b2 = b.tensor((10,), "INT32", float(np.float32(0.02) * np.float32(0.004)),
                  0, r.rng.integers(-500, 500, 10).astype("<i4").tobytes())
    y = b.activation((1, 10), 0.05, 3)
    fc = s.FullyConnectedOptionsT()
    b.op("FULLY_CONNECTED", (flat, w2, b2), (y,), fc, "FullyConnectedOptions")
    b.io((x,), (y,))
    return b.to_bytes()


def float_io_model(seed: int, count: int = 4) -> bytes:
    """Float interfaces (int8_io: false): float32 -> QUANTIZE -> int8 -> DEQUANTIZE -> float32, an int8 input
    dequantized, and an int16 input dequantized; random scales (powers of two too) and zero points."""
    b, r = ModelBuilder(), Random(seed)
    for i in range(count):
        shape = (1, r.int(1, 5), r.int(1, 7))
        scale, zp = r.scale(r.rng.random() < 0.4), r.zero_point()
        kind = i % 3
        x = b.tensor(shape, "FLOAT32") if kind == 0 else \
            b.tensor(shape, "INT16" if kind == 2 else "INT8", scale, 0 if kind == 2 else zp)
        middle = x
        if kind == 0:
            middle = b.activation(shape, scale, zp)
            b.op("QUANTIZE", (x,), (middle,))
        y = b.tensor(shape, "FLOAT32")
        b.op("DEQUANTIZE", (middle,), (y,))
        b.io((x,), (y,))
    return b.to_bytes()


def typed_inputs(model: bytes, vectors: int, seed: int) -> list[np.ndarray]:
    """Inputs of each input's type: integers over their whole range (the extremes first); floats around the
    quantized range, with exact rounding ties (x = (n + 1/2) * scale) and values far outside it."""
    from converter.tflite.model import read_model

    rng = np.random.default_rng(seed)
    parsed = TfliteModel.from_bytes(model)
    inputs = []
    for t, index in zip(read_model(model).inputs, parsed.subgraph.inputs):
        shape = (vectors, *t.shape)
        if np.issubdtype(t.dtype, np.integer):
            info = np.iinfo(t.dtype)
            x = rng.integers(info.min, info.max + 1, shape).astype(t.dtype)
            x[0], x[1 % vectors] = info.min, info.max
        else:
            consumer = parsed.subgraph.operators[parsed.consumers(int(index), 0)[0][0]]
            scale = float(parsed.subgraph.tensors[consumer.outputs[0]].quantization.scale[0])
            ties = (rng.integers(-140, 140, shape) + 0.5) * np.float32(scale)
            x = np.where(rng.random(shape) < 0.5, ties, rng.uniform(-300, 300, shape) * scale).astype(np.float32)
            x[0] = 0.0
        inputs.append(x)
    return inputs
