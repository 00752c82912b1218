"""Each compress option on one int8 model: flatbuffer bytes, TFLM arena, outputs vs the reference.

    PYTHONPATH=. python bench/compression_options.py RECIPE MODEL.tflite [--samples 200]

RECIPE gives the data (real inputs for the TFLM checks); MODEL is the int8 flatbuffer before
compression (e.g. model.tflite of a `convert` run without a compress section). Prints a markdown
table: one row per option, with the compressed model's bytes, the arena measured on the host TFLM
(converter.tflm.arena.measure_arena: the smallest arena that allocates and invokes), whether TFLM's
outputs equal the reference byte for byte (the uncompressed model; for int4 the int8 model with
the same 16 levels), and for int4 the top-1 agreement of that int8 twin with the original model.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

OPTIONS = {
    "none (int8)": None,
    "lut": {"lut": True},
    "prune": {"lut": False, "prune": True},
    "lut + prune": {"lut": True, "prune": True},
    "int4": {"lut": False, "int4": True},
    "int4 + lut + prune": {"lut": True, "prune": True, "int4": True},
    "lut + prune + strip": {"lut": True, "prune": True, "strip_metadata": True},
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("model")
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args(argv)

    from converter import (CompressSettings, KitError, compress_model, load_data, load_recipe, measure_arena,
                           quantize, read_model)

    recipe = load_recipe(args.recipe)
    model_bytes = Path(args.model).read_bytes()
    info = read_model(model_bytes)
    data = load_data(recipe.data_spec(), tuple(info.inputs[0].shape[1:]))
    sample = [quantize(data.spread_inputs(1)[0], info.inputs[0])]
    print(f"model: {args.model} ({len(model_bytes):,} B); checks on {args.samples} inputs of {recipe.name}\n")
    print("| option | flatbuffer B | vs int8 | arena B | TFLM outputs vs reference | tensors (method) "
          "| int4 top-1 agreement vs int8 |")
    print("|---|---:|---:|---:|---|---|---:|")
    for label, options in OPTIONS.items():
        try:
            if options is None:
                compressed, record = model_bytes, {}
            else:
                settings = CompressSettings(verify_samples=args.samples, **options)
                compressed, typed, _ = compress_model(model_bytes, settings, data)
                record = typed.as_dict()  # as manifest.json holds it
        except KitError as error:
            print(f"| {label} | — | — | — | fails: {error.problem} | | |")
            continue
        check = record.get("verification")
        identical = "—" if check is None else f"{check['equal']}/{check['total']} identical"
        methods = {}
        for row in record.get("tensors", []):
            method = row.get("method", "lut")
            methods[method] = methods.get(method, 0) + 1
        int4_rows = record.get("int4", {}).get("tensors", [])
        if int4_rows:
            methods["int4"] = len(int4_rows)
        agreement = record.get("int4", {}).get("top1_agreement_vs_int8")
        print(f"| {label} | {len(compressed):,} | {len(compressed) / len(model_bytes):.2f}x "
              f"| {measure_arena(compressed, sample):,} | {identical} "
              f"| {', '.join(f'{n} {m}' for m, n in methods.items()) or '—'} "
              f"| {'—' if agreement is None else f'{agreement:.1%}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
