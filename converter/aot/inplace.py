"""Which operator outputs may share bytes with an input that dies at the operator, and how far apart.

An output `target` placed `delta` bytes before its input `source` (delta 0: the same bytes) is safe when
every byte the kernel writes lies below every input byte it will still read. Each rule here rests on the
access order of the kernels the back-end calls (read in CMSIS-NN at the commit TFLM pins, and the portable
kernels in kernels/); docs/aot.md states the proof per kernel:

- same-shape ADD (`aot_add_reference_s8`, `arm_elementwise_add_s8`): element i (or a block of 4, 16 on MVE)
  of both inputs is read before element i of the output is written, at the same index: delta 0.
- DEPTHWISE_CONV_2D (`arm_depthwise_conv_3x3_s8`, `_s8_opt` on DSP, `arm_depthwise_conv_s8` generic,
  `_s4_opt`, `_s4`, the portable reference): one output pixel after the other in row-major order, each
  written from its own window only. CMSIS-NN's MVE path loops over channel blocks outermost: no overlap there.
- CONV_2D with one group (`arm_convolve_s8`/`_s4`: two pixels im2col'ed, then written; the portable
  loop: pixel by pixel). A 1x1 convolution runs `arm_nn_mat_mult_nt_t_s8`, whose outer loop is over output
  channels (every input pixel is read again for each pair), so the generated code calls it on slices of rows
  (`row_sliced`), which is exact: a 1x1 stride-1 output pixel depends on its own input pixel only. Such an
  overlap is kept only where it lowers the buffer (each call costs instructions).

int16 layers (2 bytes per element, `element_bytes`): same-shape ADD in place (`arm_elementwise_add_s16` reads
two elements of each input, then writes those two; the portable reference element by element); DEPTHWISE_CONV_2D
(`arm_depthwise_conv_s16`: output pixel after output pixel, each channel from its own window; the portable
reference alike); CONV_2D (`arm_convolve_s16`: two pixels im2col'ed, then both written, for every filter size,
1x1 included; the portable reference pixel by pixel); MAX_POOL_2D and AVERAGE_POOL_2D (`arm_max_pool_s16`
builds each output pixel in place from its window, then clamps the whole output, which reads only itself;
`arm_avgpool_s16` sums a pixel's window into scratch, then writes that pixel; the portable loop pixel by pixel).
MVE's `arm_convolve_s16` works four pixels at a time: no overlap there, as for int8.

For a streaming kernel that may hold `in_flight` output pixels at once, writing pixel P may clobber only
input bytes below the lowest window start of the pixels from P - in_flight + 1 on (`window_delta`)."""
from __future__ import annotations

import re

from dataclasses import dataclass

import numpy as np

from ..tflite.memory_placement import ALIGNMENT
from .graph import AotGraph
from .lower import Step

IN_FLIGHT = 2         # output pixels a streaming conv kernel may write per batch (arm_convolve_s8: 2; others 1)
PIXELS_PER_CALL = 8   # output pixels per call of a row-sliced 1x1 convolution (rows_per_call)
STREAMING_VARIANTS = ("portable", "cmsis-c", "cmsis-dsp")   # MVE kernels loop over channel blocks outermost


@dataclass(frozen=True)
class PlanOptions:
    """The in-place execution changes the planner may use (proven above). On by default: the ones that cost no
    instruction; slicing 1x1 layers is off by default (it re-sums the filter per slice: KWS 1.094x TFLM's
    instructions for 12,608 instead of 13,120+ B; issue 20 asks for instructions <= TFLM's), one flag away."""
    inplace_add: bool = True           # same-shape ADD writes over an input that dies there
    overlap_depthwise: bool = True     # DEPTHWISE_CONV_2D output starts `delta` bytes before its dying input
    overlap_conv: bool = True          # CONV_2D the same
    slice_pointwise: bool = False      # and 1x1 stride-1 CONV_2D, called in slices of rows (costs instructions)
    pixels_per_call: int = PIXELS_PER_CALL   # the least output pixels per slice (rows_per_call)
    overlap_pool: bool = True          # int16 MAX_POOL_2D / AVERAGE_POOL_2D the same

    @property
    def any(self) -> bool:
        return self.inplace_add or self.overlap_depthwise or self.overlap_conv or self.overlap_pool


DEFAULT_PLAN = PlanOptions()
NO_INPLACE = PlanOptions(False, False, False, False, overlap_pool=False)


@dataclass(frozen=True)
class Overlap:
    """Operator `step` writes `target` starting `delta` bytes before `source`, which dies there."""
    step: int
    source: int           # storage root of the input
    target: int
    delta: int
    rows: int = 0         # a 1x1 convolution called on slices of this many output rows (0: one call)


def _fields(step: Step) -> dict:
    return dict(step.fields)


def rows_per_call(step: Step, pixels: int = PIXELS_PER_CALL) -> int:
    """Output rows per call of a row-sliced 1x1 convolution: at least `pixels` pixels, since each call of
    CMSIS-NN's matrix product recomputes the filter sums (measured: one 5-pixel row per call cost KWS 22%
    more instructions, one pixel SWW 92%)."""
    return -(-pixels // _fields(step)["out_w"])


def element_bytes(step: Step) -> int:
    """Bytes per activation element of the step's kernel: 2 for the int16 ones (`aot_conv_s16`, ...)."""
    return 2 if step.function is not None and re.search(r"_s16(_|$)", step.function) else 1


def row_sliced(step: Step, pixels: int = PIXELS_PER_CALL) -> bool:
    """A 1x1 stride-1 convolution the generated code may call `rows_per_call` output rows at a time (int8: the
    int16 convolution streams pixel by pixel for every filter size, see in_flight)."""
    if step.function is None or not step.function.startswith("aot_conv_") or element_bytes(step) != 1:
        return False
    p = _fields(step)
    return (p["k_h"] == p["k_w"] == 1 and p["stride_h"] == p["stride_w"] == 1 and p["pad_h"] == p["pad_w"] == 0
            and p["dil_h"] == p["dil_w"] == 1 and p["in_c"] == p["filter_in_c"] and p["batches"] == 1
            and p["out_h"] > rows_per_call(step, pixels))


def kernel_family(function: str) -> str:
    """`aot_conv` of `aot_conv_s8` and of the entry point choice.py picks for a layer (`aot_conv_s8_1x1_fast`):
    the rules follow the kernel family; its width and the chosen kernel are read from the step's fields."""
    return re.sub(r"_(s4|s8|s16|f32)(_.*)?$", "", function)


def in_flight(step: Step, variant: str, options: PlanOptions) -> int | None:
    """Output pixels the kernel may write before it has read all their windows; None: it does not stream."""
    if variant not in STREAMING_VARIANTS or step.function is None:
        return None
    family = kernel_family(step.function)
    if family not in ("aot_conv", "aot_dwconv", "aot_maxpool", "aot_avgpool") or _fields(step)["batches"] != 1:
        return None
    if family in ("aot_maxpool", "aot_avgpool"):   # int16 only: the int8 pools' access order is not read here
        return IN_FLIGHT if options.overlap_pool and element_bytes(step) == 2 else None
    p = _fields(step)
    if family == "aot_dwconv":
        return IN_FLIGHT if options.overlap_depthwise else None
    if not options.overlap_conv or p["in_c"] != p["filter_in_c"]:
        return None       # grouped: arm_convolve_s8 loops over groups outermost
    if element_bytes(step) == 2:
        return IN_FLIGHT  # arm_convolve_s16 (1x1 included: no 1x1 kernel for int16) and the portable loop
    if p["k_h"] == p["k_w"] == 1 and p["pad_h"] == p["pad_w"] == 0 and p["dil_h"] == p["dil_w"] == 1:
        # 1x1: arm_convolve_1x1_s8 runs one output row per call; stride 1 is called in slices of rows (row_sliced)
        if p["stride_h"] != 1 or p["stride_w"] != 1:
            return p["out_w"]
        pixels = options.pixels_per_call
        return rows_per_call(step, pixels) * p["out_w"] if options.slice_pointwise and row_sliced(step, pixels) \
            else None
    return IN_FLIGHT


def step_delta(step: Step, in_flight: int) -> int:
    """window_delta for the step's element width (a pool's `ch` is its input and output depth)."""
    p = _fields(step)
    if "ch" in p:
        p = dict(p, in_c=p["ch"], out_c=p["ch"])
    return window_delta(p, in_flight, element_bytes(step))


def window_delta(p: dict, in_flight: int, element: int = 1) -> int:
    """Bytes the output must start before the input so that no write reaches an input byte still to be read
    (negative when it may start after the input's first byte: a strided layer's output is smaller).

    Output pixel P (row-major) is bytes [P*C_out, (P+1)*C_out). While it is written the kernel may still
    read the windows of pixels P - in_flight + 1 onwards; a window's lowest byte is at its first valid row
    and column (clamped into the image: a lower bound of what it reads)."""
    oy, ox = np.divmod(np.arange(p["out_h"] * p["out_w"], dtype=np.int64), p["out_w"])
    row = np.clip(oy * p["stride_h"] - p["pad_h"], 0, p["in_h"] - 1)
    col = np.clip(ox * p["stride_w"] - p["pad_w"], 0, p["in_w"] - 1)
    lowest = (row * p["in_w"] + col) * p["in_c"] * element
    still_read = np.minimum.accumulate(lowest[::-1])[::-1]            # min over pixels Q >= P
    still_read = still_read[np.maximum(np.arange(len(lowest)) - in_flight + 1, 0)]
    written_end = (np.arange(len(lowest)) + 1) * p["out_c"] * element
    need = int((written_end - still_read).max())
    return -(-need // ALIGNMENT) * ALIGNMENT     # rounded up to the alignment; negative: it may start after


def _dies_here(graph: AotGraph, t: int, k: int, root: dict[int, int], spans: dict[int, list[int]]) -> int | None:
    """The storage root of activation `t` if its bytes are in the buffer and last used at step k."""
    r = root.get(t, t)
    if graph.tensor(t).constant or r not in spans or spans[r][1] != k:
        return None
    return r


def candidates(graph: AotGraph, steps: list[Step], variant: str, options: PlanOptions, root: dict[int, int],
               spans: dict[int, list[int]]) -> list[Overlap]:
    """Every overlap the rules allow on this back-end variant, in step order."""
    found = []
    for k, step in enumerate(steps):
        y = step.writes
        if step.function is None or y not in spans:
            continue
        if kernel_family(step.function) == "aot_add" and step.note == "elementwise" and options.inplace_add:
            for x in dict.fromkeys(step.reads):
                r = _dies_here(graph, x, k, root, spans)
                if r is not None and graph.tensor(r).nbytes == graph.tensor(y).nbytes:
                    found.append(Overlap(k, r, y, 0))
            continue
        flight = in_flight(step, variant, options)
        r = _dies_here(graph, step.reads[0], k, root, spans) if flight else None
        if flight and r is not None:
            rows = rows_per_call(step, options.pixels_per_call) if row_sliced(step, options.pixels_per_call) else 0
            found.append(Overlap(k, r, y, step_delta(step, flight), rows))
    return found
