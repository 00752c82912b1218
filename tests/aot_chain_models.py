"""Random chains of layers written directly as flatbuffers, for the AOT planner's in-place execution: every
intermediate tensor lives in the static buffer, so depthwise and ordinary convolutions (3x3, strided, 1x1
expanding and shrinking), residual ADDs and a RESHAPE are planned to overlap their dying inputs. Each
layer's output feeds the next; the last one is the model's output."""
from __future__ import annotations

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

from tests.aot_models import ModelBuilder, Random, _out_size, conv_op

LAYERS = ("dw", "conv", "pw", "res", "dw", "pw")


class Chain:
    def __init__(self, seed: int, shape: tuple):
        self.b, self.r = ModelBuilder(), Random(seed)
        self.scale = self.r.scale()
        self.zp = self.r.zero_point()
        self.x = self.b.activation(shape, self.scale, self.zp)
        self.input, self.shape = self.x, shape

    def _next(self, shape) -> int:
        self.scale, self.zp = self.r.scale(), self.r.zero_point()
        return self.b.activation(shape, self.scale, self.zp)

    def conv(self, out_c: int, k: int, stride: int, same: bool, depthwise: bool = False, x: int | None = None,
             shape: tuple | None = None) -> tuple[int, tuple]:
        """A CONV_2D (or DEPTHWISE_CONV_2D with out_c = multiplier * in_c) reading x (default: the chain's end)."""
        x, shape = (self.x, self.shape) if x is None else (x, shape)
        _, h, w, c = shape
        in_scale = self.b.model.tensors[x].quantization.scale[0]
        int4 = self.r.rng.random() < 0.3
        f_shape = (1, k, k, out_c) if depthwise else (out_c, k, k, c)
        f_scales = [self.r.scale() for _ in range(out_c)]
        _, data = self.r.filter(f_shape, int4)
        wt = self.b.tensor(f_shape, "INT4" if int4 else "INT8", f_scales, 0, data, axis=3 if depthwise else 0)
        bias = self.b.tensor((out_c,), "INT32", [np.float32(in_scale) * np.float32(f) for f in f_scales], 0,
                             self.r.bias(out_c), axis=0)
        out_shape = (1, _out_size(same, h, k, stride), _out_size(same, w, k, stride), out_c)
        y = self._next(out_shape)
        conv_op(self.b, (x, wt, bias, y), depthwise, out_c // c, same, stride, 1, self.r.choice((0, 1, 3)))
        return y, out_shape

    def add(self, a: int, c: int, shape: tuple) -> int:
        y = self._next(shape)
        o = s.AddOptionsT()
        o.fusedActivationFunction = self.r.choice((0, 1))
        self.b.op("ADD", (a, c), (y,), o, "AddOptions")
        return y

    def layer(self, kind: str) -> None:
        _, h, w, c = self.shape
        stride = 2 if min(h, w) >= 6 and self.r.rng.random() < 0.3 else 1
        if kind == "dw":
            self.x, self.shape = self.conv(c * self.r.choice((1, 1, 2)), self.r.choice((3, 3, 5)) if min(h, w) >= 5
                                           else 3, stride, self.r.rng.random() < 0.8 or min(h, w) < 5, True)
        elif kind == "conv":
            self.x, self.shape = self.conv(self.r.int(2, 12), 3, stride, True)
        elif kind == "pw":
            self.x, self.shape = self.conv(self.r.choice((c, 2 * c, max(1, c // 2), self.r.int(1, 16))), 1, 1, False)
        else:   # residual: 3x3 same convolution, then ADD of the block's input and its output
            t, shape = self.conv(c, 3, 1, True)
            self.x = self.add(*((self.x, t) if self.r.rng.random() < 0.5 else (t, self.x)), shape)

    def finish(self) -> bytes:
        flat = self._next((1, int(np.prod(self.shape))))
        shape = self.b.tensor((2,), "INT32", data=np.array([1, -1], "<i4").tobytes())
        self.b.model.tensors[flat].quantization = self.b.model.tensors[self.x].quantization
        self.b.op("RESHAPE", (self.x, shape), (flat,))
        self.b.io((self.input,), (flat,))
        return self.b.to_bytes()


def chain(seed: int, layers: int = 8) -> bytes:
    r = Random(seed)
    c = Chain(seed, (1, r.int(5, 14), r.int(5, 14), r.int(1, 8)))
    for i in range(layers):
        c.layer(LAYERS[(i + seed) % len(LAYERS)] if i % 3 else c.r.choice(LAYERS))
    return c.finish()
