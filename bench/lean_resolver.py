"""Flash saved by the type-specialised kernel registrations of the generated resolver, measured by linking.

    TFLM_ROOT=../shared/tflm TFLM_KIT_SHARED_DATA=../shared/data python -m bench.lean_resolver

For each model (make demo's digits CNN, the MLPerf Tiny IC, KWS, VWW and AD models, converted from
models/recipes/) and each emulated core (cortex-m-qemu: Cortex-M4, cortex-m7-qemu: Cortex-M7+FPU),
the board project `tflm-kit firmware` renders is built and run under QEMU twice: with the model_ops.h
convert writes (e.g. `AddConv2D(tflite::Register_CONV_2D_INT8())`) and with every registration
replaced by the generic one (`AddConv2D()`, what the kit generated before). Flash is text + data of the
linked fw.elf (`arm-none-eabi-size`); both images must pass the golden self-test bit for bit.
Writes bench/lean_resolver.md and bench/lean_resolver.json.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from converter import convert, flash, load_recipe, render_firmware

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODELS = {"demo": "demo.yaml", "ic": "mlperf_ic.yaml", "kws": "mlperf_kws.yaml", "vww": "mlperf_vww.yaml",
          "ad": "mlperf_ad.yaml"}
BOARDS = {"cortex-m4": "cortex-m-qemu", "cortex-m7": "cortex-m7-qemu"}
_REGISTRATION = re.compile(r"\(tflite::Register_\w+\(\)\)")


def converted(name: str, work: Path) -> Path:
    out = work / name
    if not (out / "manifest.json").is_file():
        convert(load_recipe(REPO / "models/recipes" / MODELS[name]), out, force=True, device_check="off")
    return out


def build(project: Path) -> dict:
    summary = flash(project)
    device = summary["device"]
    return {"flash": device.flash_bytes, "text": device.image["text"], "pass": summary["pass"],
            "arena_used": summary["arena_used_bytes"]}


def measure(name: str, core: str, model_dir: Path, work: Path) -> dict:
    project = work / f"{name}-{core}"
    render_firmware(BOARDS[core], model_dir, project, force=True)
    ops = project / "model" / "model_ops.h"
    lean = build(project)
    specialised = re.findall(r"Register_\w+(?=\(\)\))", ops.read_text())
    ops.write_text(_REGISTRATION.sub("()", ops.read_text()))
    generic = build(project)
    return {"model": name, "core": core, "registrations": specialised, "generic": generic, "specialised": lean,
            "saving": generic["flash"] - lean["flash"]}


def table(rows: list[dict]) -> str:
    lines = ["| model | core | flash, generic kernels (B) | flash, specialised (B) | saved (B) | saved | "
             "self-test (both) | arena used on the core (B) | specialised registrations |",
             "|---|---|---:|---:|---:|---:|---|---:|---|"]
    for r in rows:
        g, s = r["generic"], r["specialised"]
        ok = "PASS" if g["pass"] and s["pass"] else "FAIL"
        arena = f"{s['arena_used']:,}" if s["arena_used"] == g["arena_used"] else f"{g['arena_used']:,} -> {s['arena_used']:,}"
        lines.append(f"| {r['model']} | {r['core']} | {g['flash']:,} | {s['flash']:,} | {r['saving']:,} | "
                     f"{r['saving'] / g['flash']:.1%} | {ok} | {arena} | "
                     f"{', '.join(x.removeprefix('Register_') for x in r['registrations'])} |")
    return "\n".join(lines)


def render(rows: list[dict], seconds: float) -> str:
    return ("# Flash saved by type-specialised kernel registrations\n\n"
            "`TFLM_ROOT=../shared/tflm TFLM_KIT_SHARED_DATA=../shared/data python -m bench.lean_resolver` "
            f"({seconds:.0f} s on 2 shared cores). The board project of `tflm-kit firmware` (cortex-m-qemu, "
            "cortex-m7-qemu: TFLM 90b983c2 + CMSIS-NN, arm-none-eabi-gcc 12.2 -Os, --gc-sections) linked with the "
            "generated model_ops.h and with the same file's registrations made generic; flash = text + data of fw.elf "
            "(model, golden vectors, startup and newlib included). Both images run the golden self-test under QEMU "
            "(PASS: every output bit-identical to golden.npz); the arena is `arena_used_bytes()` there.\n\n"
            + table(rows) + "\n")


def main() -> None:
    if sys.argv[1:] == ["--render"]:  # the table again from the recorded rows
        rows = json.loads((HERE / "lean_resolver.json").read_text())
        seconds = float(re.search(r"\((\d+) s", (HERE / "lean_resolver.md").read_text()).group(1))
        (HERE / "lean_resolver.md").write_text(render(rows, seconds))
        return
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "build/bench_lean_resolver"
    work.mkdir(parents=True, exist_ok=True)
    rows, started = [], time.perf_counter()
    for name in MODELS:
        model_dir = converted(name, work)
        for core in BOARDS:
            rows.append(measure(name, core, model_dir, work))
            print(f"{name} {core}: {rows[-1]['generic']['flash']:,} -> {rows[-1]['specialised']['flash']:,} B", flush=True)
    (HERE / "lean_resolver.json").write_text(json.dumps(rows, indent=1) + "\n")
    text = render(rows, time.perf_counter() - started)
    (HERE / "lean_resolver.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
