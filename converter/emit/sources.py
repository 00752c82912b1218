"""Render the C/C++ artifacts from the model bytes, its tensors and the golden vectors."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from .. import __version__
from ..errors import KitError
from ..tflite.model import TFLITE_TYPE_ENUM, ModelInfo, TensorInfo
from ..tflm.target_arena import ArenaFigure
from .c_arrays import c_bytes, raw_bytes

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent / "templates")),
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False,
)


def _render(template: str, **context) -> str:
    context.setdefault("kit_version", __version__)
    context.setdefault("guard", context["name"].upper())
    return _ENV.get_template(template).render(**context)


def resolver_ops(info: ModelInfo) -> list[dict]:
    """The MicroMutableOpResolver call for each operator the model uses, in first-use order."""
    from ..tflm.ops import CUSTOM_METHODS, RESOLVER_METHODS

    missing = [op for op in info.operators if op not in RESOLVER_METHODS and op not in CUSTOM_METHODS]
    if missing:
        raise KitError(f"TFLM has no kernel for operator(s) {', '.join(missing)}",
                       "replace those layers with ones TFLM supports (see converter/tflm_ops.py)")
    return [{"name": op, "count": info.operator_counts[op],
             "method": RESOLVER_METHODS.get(op) or CUSTOM_METHODS[op]} for op in info.operators]


def render_model_ops(name: str, source: str, model_bytes: bytes, info: ModelInfo, port: str = "tflite-micro") -> str:
    """model_ops.h for one TFLM copy: type-specialised registrations where the model's types allow and the
    port declares them (converter/tflm/kernels.py). `firmware` re-renders it for its board's port."""
    from ..tflm.kernels import choose_kernels
    from ..tflm.ports import load_port

    resolver_ops(info)  # KitError naming operators TFLM has no kernel for
    ops = choose_kernels(model_bytes, info.operators, info.operator_counts, load_port(port).registrations)
    return _render("model_ops.h.j2", name=name, source=source, ops=ops,
                   port=None if port == "tflite-micro" else port)


def c_float(value: float | None) -> str:
    """A C/C++ float literal that round-trips a float32: 1.0 -> `1.0f`, never `1f` (not a literal in C++).

    None (no quantization) is 0.0f; inf and nan have no literal and mean a broken quantization.
    """
    if value is None:
        return "0.0f"
    if not math.isfinite(value):
        raise KitError(f"a quantization scale of the model is {value}, which firmware cannot represent",
                       "re-quantize with calibration data that has only finite values")
    text = f"{value:.9g}"
    if not any(mark in text for mark in ".e"):  # '1' or '256': make it a floating literal
        text += ".0"
    return text + "f"


@dataclass(frozen=True)
class _TensorView:
    """A tensor as the settings template prints it."""
    tensor: TensorInfo

    def __getattr__(self, attr):
        return getattr(self.tensor, attr)

    @property
    def type_enum(self) -> int:
        return TFLITE_TYPE_ENUM[self.tensor.type]

    @property
    def scale_c(self) -> str:
        return c_float(self.tensor.scale)

    @property
    def name_c(self) -> str:
        """The tensor name, escaped: it comes from the model file and lands in a C++ comment."""
        return c_string_body((self.tensor.name or "").replace("\0", "\\0"), "tensor name")

    @property
    def zero_point_c(self) -> int:
        return self.tensor.zero_point or 0


# Escapes a C/C++ string literal needs; `?` so that no `??x` trigraph forms under -std=c++11/14.
_ESCAPES = {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord('"'): '\\"', ord("'"): "\\'",
            ord("\\"): "\\\\", ord("?"): "\\?"}


def c_string_body(text: str, what: str = "label") -> str:
    """`text` as the inside of a C string literal holding its UTF-8 bytes: printable ASCII as is, every
    other byte as a three-digit octal escape, which (unlike \\x) cannot run into a following digit.
    Safe inside a // comment too when something follows it on the line: it holds no line break."""
    if "\0" in text:
        raise KitError(f"{what} {text!r} contains a NUL character, which would end the C string early",
                       f"remove it from the {what}")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise KitError(f"{what} {text!r} is not valid Unicode text", f"fix the {what}") from None
    return "".join(_ESCAPES.get(byte) or (chr(byte) if 0x20 <= byte < 0x7F else f"\\{byte:03o}")
                   for byte in encoded)


def arena_comment(measured: int, margin: float, host: str, figure: ArenaFigure | None,
                  host_figure: ArenaFigure | None) -> str:
    """model_settings.h's note on kTensorArenaSize: which figure, from where; the host's only as a named extra."""
    percent = round(margin * 100)
    if figure is not None and figure.kind == "derived":
        lines = [f"Tensor arena: {measured} bytes {figure.source}: TFLM's AllocateTensors replayed",
                 "with 32-bit structs, CMSIS-NN's scratch and its greedy plan (the device check, which measures it",
                 f"under QEMU, did not run when this was converted), plus a {percent}% margin."]
        if host_figure is not None:
            lines += [f"Not the host's figure: TFLM's Python runtime on {host_figure.core} used {host_figure.bytes} bytes",
                      "(64-bit pointers, reference kernels). `tflm-kit firmware --board B` writes B's core's figure."]
    elif figure is not None and figure.on_device:
        lines = [f"Tensor arena: {measured} bytes {figure.source}",
                 f"(the smallest arena that allocates and invokes it there), plus a {percent}% margin."]
        if host_figure is not None:
            lines += [f"Not the host's figure: TFLM's Python runtime on {host_figure.core} used {host_figure.bytes} bytes",
                      "(64-bit pointers, reference kernels). `tflm-kit firmware --board B` writes B's core's figure."]
    else:
        lines = [f"Tensor arena: {measured} bytes measured by allocating and invoking the model in TFLM's Python",
                 f"runtime on {host} (64-bit pointers, reference kernels), plus a {percent}% margin: NOT a device",
                 "figure (no TFLM_ROOT, arm-none-eabi-gcc and qemu-system-arm to measure the target's when this was",
                 "converted). `tflm-kit firmware --board B` writes B's core's figure when it can measure it; else",
                 "check interpreter.arena_used_bytes() on the device."]
    return "\n".join(f"// {line}" for line in lines)


_ARENA_BLOCK = re.compile(r"^// Tensor arena: .*?^constexpr int kTensorArenaSize = \d+;$", re.S | re.M)


def with_arena(settings_text: str, measured: int, size: int, comment: str) -> str:
    """model_settings.h with another arena figure (`firmware --board B` writes B's core's): the comment,
    kArenaMeasuredBytes and kTensorArenaSize replaced; KitError when the text is not one the kit rendered."""
    block = (f"{comment}\nconstexpr int kArenaMeasuredBytes = {measured};\n"
             f"constexpr int kTensorArenaSize = {size};")
    updated, count = _ARENA_BLOCK.subn(lambda _: block, settings_text, count=1)
    if count != 1:
        raise KitError("model_settings.h has no kTensorArenaSize block tflm-kit wrote",
                       "re-run `tflm-kit convert` to regenerate the model directory")
    return updated


def render_all(name: str, source: str, model_bytes: bytes, model_sha256: str, info: ModelInfo,
               arena_measured: int, arena_size: int, arena_margin: float, labels: list[str] | None,
               golden_inputs: list[np.ndarray], golden_outputs: list[np.ndarray], host: str,
               arena_figure: ArenaFigure | None = None, arena_host: ArenaFigure | None = None) -> dict[str, str]:
    """File name -> text for every C/C++ artifact. arena_figure: where arena_measured comes from (the target's,
    measured under QEMU; None: the host's, as before); arena_host: the host's figure, named as an extra."""
    common = {"name": name, "source": source}
    inputs = [_TensorView(t) for t in info.inputs]
    outputs = [_TensorView(t) for t in info.outputs]
    count = len(golden_inputs[0])
    arrays = [{"symbol": f"kGoldenInput{i}", "nbytes": t.nbytes, "data": c_bytes(raw_bytes(golden_inputs[i]))}
              for i, t in enumerate(info.inputs)]
    arrays += [{"symbol": f"kGoldenOutput{j}", "nbytes": t.nbytes, "data": c_bytes(raw_bytes(golden_outputs[j]))}
               for j, t in enumerate(info.outputs)]
    return {
        "model_data.h": _render("model_data.h.j2", **common, model_bytes=len(model_bytes), model_sha256=model_sha256),
        "model_data.cc": _render("model_data.cc.j2", **common, model_bytes=len(model_bytes), data=c_bytes(model_bytes)),
        "model_ops.h": render_model_ops(name, source, model_bytes, info),
        "model_settings.h": _render(
            "model_settings.h.j2", **common, inputs=inputs, outputs=outputs,
            labels=[c_string_body(str(x)) for x in (labels or [])], arena_measured=arena_measured, arena_size=arena_size,
            arena_margin_percent=round(arena_margin * 100),
            arena_comment=arena_comment(arena_measured, arena_margin, host, arena_figure, arena_host)),
        "golden_vectors.h": _render("golden_vectors.h.j2", **common, count=count, inputs=inputs, outputs=outputs),
        "golden_vectors.cc": _render("golden_vectors.cc.j2", **common, count=count, arrays=arrays),
    }


def golden_vectors_c(name: str, golden_inputs: list[np.ndarray], golden_outputs: list[np.ndarray]) -> dict[str, str]:
    """golden_vectors_c.h/.c: the golden vectors in C99 that C++ includes as well (extern "C"), for firmware
    written in C (the interpreter-free runtime's self-test). Same bytes as golden_vectors.cc."""
    count = len(golden_inputs[0])
    sizes = [[int(np.asarray(x[0]).nbytes) for x in arrays] for arrays in (golden_inputs, golden_outputs)]
    arrays = [{"symbol": f"golden_{kind}_{k}", "nbytes": nbytes, "data": c_bytes(raw_bytes(x))}
              for kind, group, group_sizes in (("input", golden_inputs, sizes[0]), ("output", golden_outputs, sizes[1]))
              for k, (x, nbytes) in enumerate(zip(group, group_sizes))]
    common = {"name": name, "count": count}
    return {"golden_vectors_c.h": _render("golden_vectors_c.h.j2", **common, inputs=sizes[0], outputs=sizes[1]),
            "golden_vectors_c.c": _render("golden_vectors_c.c.j2", **common, arrays=arrays)}
