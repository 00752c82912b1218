"""The generated C: `aot_model.h` (the contract other code builds against), `aot_model.c` (weights,
per-operator parameters, one static buffer, the invoke function) and the kernel sources shipped as
package data (kernels/). One folder; every `.c` in it compiles with `-I<folder>`."""
from __future__ import annotations

from importlib import resources

import numpy as np

from ..emit.c_arrays import c_bytes
from .graph import AotGraph, Tensor
from .lower import ConstArray, Step
from .plan import VARIANTS, Location, MemoryPlan

KERNEL_FILES = ("aot_kernels.h", "aot_fixedpoint.h", "aot_reference.h", "aot_kernels_common.c", "aot_kernels_portable.c",
                "aot_kernels_cmsis.c", "aot_kernels_decode.c")
# The preprocessor test selecting each variant, in the order the #if chain checks them.
VARIANT_TESTS = {"cmsis-mve": "defined(AOT_CMSIS_NN) && defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)",
                 "cmsis-dsp": "defined(AOT_CMSIS_NN) && defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1)",
                 "cmsis-c": "defined(AOT_CMSIS_NN)",
                 "portable": None}
CTYPES = {"INT8": "int8_t", "INT32": "int32_t", "INT64": "int64_t"}
DTYPES = {"INT8": "<i1", "INT32": "<i4", "INT64": "<i8"}


def kernel_sources() -> dict[str, str]:
    folder = resources.files(__package__) / "kernels"
    return {name: (folder / name).read_text() for name in KERNEL_FILES}


def _decimal(values, per_line: int = 16) -> str:
    items = [str(int(v)) for v in values]
    return "\n".join("    " + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line))


def _constant(tensor: Tensor) -> str:
    """One weight tensor as a 16-byte aligned static const array (int4 stays packed)."""
    name = f"aot_w{tensor.index}"
    if tensor.type == "INT4":
        body = c_bytes(tensor.data)
        return f"/* {tensor.name or name}: int4 {list(tensor.shape)}, packed */\n" \
               f"static const uint8_t {name}[{len(tensor.data)}] AOT_ALIGN16 = {{\n{body}\n}};"
    ctype = CTYPES[tensor.type]
    values = np.frombuffer(tensor.data, DTYPES[tensor.type])
    return f"/* {tensor.name or name}: {tensor.type.lower()} {list(tensor.shape)} */\n" \
           f"static const {ctype} {name}[{len(values)}] AOT_ALIGN16 = {{\n{_decimal(values)}\n}};"


ARRAY_DTYPES = {"int32_t": "<i4", "uint8_t": "u1", "int8_t": "i1", "int16_t": "<i2"}


def _array(array: ConstArray) -> str:
    values = np.frombuffer(array.values, ARRAY_DTYPES[array.ctype])
    return f"static const {array.ctype} {array.name}[{len(values)}] = {{\n{_decimal(values)}\n}};"


def _field(value, weights: dict[str, str]) -> str:
    if isinstance(value, str) and value in weights:
        return f"(const {weights[value]}*){value}"
    return str(value)


def _params(step: Step, weights: dict[str, str], suffix: str = "") -> str:
    body = ",\n".join(f"    .{name} = {_field(value, weights)}" for name, value in step.fields)
    return f"/* operator {step.op}: {step.kind} {step.note} */\n" \
           f"static const {step.struct} aot_op{step.op}{step.tag}{suffix} = {{\n{body}\n}};"


def _row_params(step: Step, weights: dict[str, str], rows: int) -> str:
    """The parameters of one slice of `rows` output rows of a row-sliced 1x1 convolution (inplace.row_sliced),
    and of the last, shorter one."""
    out_h = dict(step.fields)["out_h"]
    parts = [("_row", rows)] + ([("_tail", out_h % rows)] if out_h % rows else [])
    return "\n\n".join(_params(Step(step.op, step.kind, step.function, step.struct,
                                     tuple((n, h if n in ("in_h", "out_h") else v) for n, v in step.fields),
                                     note=f"{step.note}, {h} output rows"), weights, suffix)
                        for suffix, h in parts)


def _sliced(plans: dict[str, MemoryPlan]) -> dict[int, int]:
    """Step -> output rows per call, for the 1x1 convolutions some plan overlaps (every plan slices alike)."""
    return {o.step: o.rows for plan in plans.values() for o in plan.overlaps if o.rows}


def _pointer(location: Location, const: bool) -> str:
    if location.where == "input":
        return f"((const int8_t*)inputs[{location.index}])" if const else f"((int8_t*)inputs[{location.index}])"
    if location.where == "output":
        return f"((int8_t*)outputs[{location.index}])"
    return f"(aot_buffer + {location.index})"


def _location_macros(graph: AotGraph, steps: list[Step], plans: dict[str, MemoryPlan]) -> str:
    """Per variant: AOT_T<n> (each activation's address) and AOT_S<k> (step k's scratch)."""
    blocks = []
    first = True
    for variant, test in VARIANT_TESTS.items():
        plan = plans[variant]
        head = ("#if " if first else "#elif ") + test if test else "#else"
        first = False
        lines = [f"{head}  /* {variant}: {plan.buffer_bytes} B */"]
        used = sorted({t for s in steps for t in (*s.reads, s.writes)})
        for t in used:
            if graph.tensor(t).constant:
                continue
            const = any(t in s.reads for s in steps) and not any(s.writes == t for s in steps)
            lines.append(f"#define AOT_T{t} {_pointer(plan.locations[t], const)}")
        for k in range(len(steps)):
            lines.append(f"#define AOT_S{k} " + (f"((void*)(aot_buffer + {plan.scratch[k]}))" if k in plan.scratch
                                                   else "((void*)0)"))
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + "\n#endif"


def _row_loop(step: Step, k: int, graph: AotGraph, rows: int) -> str:
    """A 1x1 convolution called on slices of rows, so that its output can be written behind its reads
    (CMSIS-NN's 1x1 kernel reads every input pixel again for each pair of output channels)."""
    p = dict(step.fields)
    x, y = step.reads[0], step.writes
    whole = p["out_h"] // rows * rows

    def call(suffix: str, row: str) -> str:
        return f"{step.function}(&aot_op{step.op}{suffix}, (const int8_t*)AOT_T{x} + {row} * {p['in_w'] * p['in_c']}, " \
               f"AOT_T{y} + {row} * {p['out_w'] * p['out_c']}, AOT_S{k});"

    tail = f"\n    {call('_tail', str(whole))}" if whole < p["out_h"] else ""
    return f"    {{\n        int32_t row;\n        for (row = 0; row < {whole}; row += {rows})\n" \
           f"            {call('_row', 'row')}\n    }}{tail}\n" \
           f"    AOT_TRACE_OP({step.op}, AOT_T{y}, {graph.tensor(y).nbytes});"


def _call(step: Step, k: int, graph: AotGraph, sliced: dict[int, int]) -> str:
    if k in sliced:
        return _row_loop(step, k, graph, sliced[k])
    if step.function is None:
        if step.writes in graph.outputs:
            return f"    aot_copy(AOT_T{step.reads[0]}, AOT_T{step.writes}, {graph.tensor(step.writes).nbytes});"
        return f"    /* operator {step.op}: RESHAPE, an alias (no code) */"
    args = ", ".join(f"(const int8_t*)AOT_T{t}" if not graph.tensor(t).constant else f"(const int8_t*)aot_w{t}"
                     for t in step.reads)
    if step.note == "array":   # CONCATENATION: the inputs as one array of pointers
        return f"    {{\n        const int8_t* const ins[] = {{{args}}};\n" \
               f"        {step.function}(&aot_op{step.op}, ins, AOT_T{step.writes}, AOT_S{k});\n    }}\n" \
               f"    AOT_TRACE_OP({step.op}, AOT_T{step.writes}, {graph.tensor(step.writes).nbytes});"
    call = ", ".join([f"&aot_op{step.op}{step.tag}", *([args] if args else []), f"AOT_T{step.writes}", f"AOT_S{k}"])
    if step.kind == "TFLM_DECODE":   # a decoded weight, not an operator output TFLM's trace compares
        return f"    {step.function}({call});"
    return f"    {step.function}({call});\n" \
           f"    AOT_TRACE_OP({step.op}, AOT_T{step.writes}, {graph.tensor(step.writes).nbytes});"


def header(graph: AotGraph, plans: dict[str, MemoryPlan]) -> str:
    ins = [graph.tensor(t) for t in graph.inputs]
    outs = [graph.tensor(t) for t in graph.outputs]
    chain = []
    for i, (variant, test) in enumerate(VARIANT_TESTS.items()):
        chain.append(("#if " if i == 0 else "#elif ") + test if test else "#else")
        chain.append(f"#define AOT_MODEL_BUFFER_BYTES {plans[variant].buffer_bytes}  /* {variant} */")
    chain.append("#endif")

    def quant(kind: str, tensors: list[Tensor]) -> str:
        rows = []
        for i, t in enumerate(tensors):
            shape = ", ".join(str(d) for d in t.shape)
            if not t.scales:   # float32 (QUANTIZE in / DEQUANTIZE out): no quantization to state
                rows.append(f"/* {kind} {i}: '{t.name}' {t.type.lower()} [{shape}] */")
                continue
            rows.append(f"/* {kind} {i}: '{t.name}' {t.type.lower()} [{shape}], scale {t.scale!r}, "
                        f"zero point {t.zero_point} */")
            rows.append(f"#define AOT_MODEL_{kind.upper()}{i}_SCALE {float(np.float32(t.scale))!r}f")
            rows.append(f"#define AOT_MODEL_{kind.upper()}{i}_ZERO_POINT {t.zero_point}")
        return "\n".join(rows)

    return f"""/* Generated by tflm-kit (AOT runtime): the model as plain C, no interpreter.
 * Compile every .c in this folder with -I<this folder>; add -DAOT_CMSIS_NN -I$CMSIS_NN_ROOT/Include and
 * CMSIS-NN's sources for the CMSIS-NN back-end. Outputs are bit-identical to TFLM's. */
#ifndef AOT_MODEL_H_
#define AOT_MODEL_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define AOT_MODEL_INPUT_COUNT {len(ins)}
#define AOT_MODEL_OUTPUT_COUNT {len(outs)}
/* The one static RAM buffer (activations and kernel scratch; inputs and outputs are the caller's). */
{chr(10).join(chain)}
{quant("input", ins)}
{quant("output", outs)}

extern const size_t aot_model_input_bytes[AOT_MODEL_INPUT_COUNT];
extern const size_t aot_model_output_bytes[AOT_MODEL_OUTPUT_COUNT];
/* Runs the model once: inputs[i] and outputs[j] point to arrays of the types and byte sizes above. 0 = ok. */
int aot_model_invoke(const void* const inputs[], void* const outputs[]);

#ifdef __cplusplus
}}
#endif
#endif /* AOT_MODEL_H_ */
"""


def source(graph: AotGraph, steps: list[Step], plans: dict[str, MemoryPlan]) -> str:
    constants = sorted({t for s in steps for name, value in s.fields
                        if isinstance(value, str) and value.startswith("aot_w") for t in [int(value[5:])]} |
                       {t for s in steps for t in s.reads if graph.tensor(t).constant})
    weights = {f"aot_w{t}": "int8_t" if graph.tensor(t).type in ("INT8", "INT4") else "int32_t" for t in constants}
    ins = ", ".join(str(graph.tensor(t).nbytes) for t in graph.inputs)
    outs = ", ".join(str(graph.tensor(t).nbytes) for t in graph.outputs)
    sliced = _sliced(plans)
    early = [f"    aot_copy(inputs[{graph.inputs.index(t)}], outputs[{j}], {graph.tensor(t).nbytes});"
             for j, t in enumerate(graph.outputs) if t in graph.inputs]
    parts = [
        "/* Generated by tflm-kit (AOT runtime). Weights, parameters (as TFLM's Prepare computes them), plan. */",
        '#include "aot_model.h"\n#include "aot_kernels.h"',
        "#ifdef AOT_TRACE  /* a validation build defines it and aot_trace() to see every operator's output */\n"
        "void aot_trace(int op, const void* data, size_t bytes);\n"
        "#define AOT_TRACE_OP(op, data, bytes) aot_trace(op, data, bytes)\n#else\n"
        "#define AOT_TRACE_OP(op, data, bytes)\n#endif",
        f"const size_t aot_model_input_bytes[AOT_MODEL_INPUT_COUNT] = {{{ins}}};",
        f"const size_t aot_model_output_bytes[AOT_MODEL_OUTPUT_COUNT] = {{{outs}}};",
        "static int8_t aot_buffer[AOT_MODEL_BUFFER_BYTES > 0 ? AOT_MODEL_BUFFER_BYTES : 1] AOT_ALIGN16;",
        *[_constant(graph.tensor(t)) for t in constants],
        *[_array(a) for a in {a.name: a for s in steps for a in s.arrays}.values()],  # shared tables: once
        _location_macros(graph, steps, plans),   # before the parameters: decoded weights' addresses (AOT_T<n>)
        *[_params(s, weights) for k, s in enumerate(steps) if s.struct and k not in sliced],  # sliced: per row
        *[_row_params(steps[k], weights, rows) for k, rows in sorted(sliced.items())],
        "int aot_model_invoke(const void* const inputs[], void* const outputs[]) {\n" +
        "\n".join(early + [_call(s, k, graph, sliced) for k, s in enumerate(steps)]) +
        "\n    (void)inputs;\n    (void)outputs;\n    return 0;\n}",
    ]
    return "\n\n".join(parts) + "\n"


def variants() -> tuple:
    return VARIANTS
