"""bench/partition.md: the MLPerf Tiny IC ResNet-8 split across two devices, best cut vs whole.

    TFLM_ROOT=../shared/tflm python -m bench.partition [--out build/bench-partition]

Runs `tflm-kit partition` on the MLPerf reference int8 .tflite with 8 real CIFAR-10 test images
(--data), for each configuration below with --pair (the chosen cut's two parts built and run on
two QEMU instances), and writes the table from the partition.json files. Needs TFLM_KIT_SHARED_DATA.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TFLM_KIT_SHARED_DATA", REPO.parent / "shared" / "data"))
MODEL = SHARED / "mlperf_tiny/image_classification/pretrainedResnet_quant.tflite"
CONFIGS = [  # (devices, link)
    ("nano33:cortex-m4@64MHz,h7:cortex-m7@280MHz", "uart:921600"),
    ("nano33:cortex-m4@64MHz,h7:cortex-m7@280MHz", "spi:8000000"),
    ("nano33:cortex-m4@64MHz,npu:ethos-u55-128@400MHz/2M/1M", "spi:8000000"),
]


def run(out: Path) -> list[dict]:
    with np.load(SHARED / "cifar10/cifar10_jpeg.npz") as cifar:
        data = out / "cifar8.npz"
        out.mkdir(parents=True, exist_ok=True)
        np.savez(data, x=cifar["x_test"][::1250].astype(np.float32), y=cifar["y_test"][::1250])
    records = []
    for k, (devices, link) in enumerate(CONFIGS):
        target = out / f"config{k}"
        command = [sys.executable, "-P", "-m", "converter", "partition", str(MODEL), "--data", str(data), "--devices", devices,
                   "--link", link, "--out", str(target), "--force"] + ([] if "ethos" in devices else ["--pair"])
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        records.append(json.loads((target / "partition.json").read_text()) | {"command": " ".join(command[1:])})
    return records


def table(records: list[dict]) -> str:
    lines = ["| devices | link | best cut (tensors) | link B | latency ms (part 0 + link + part 1) | "
             "whole on device 0 ms | whole on device 1 ms (input sent) | pair on QEMU |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        c = r["chosen"]
        whole = {w["label"]: w for w in r["costs"] if not w["tensors"]}
        d0, d1 = (f"whole on {d['name']}" for d in r["devices"])
        split = " + ".join(f"{p['ms']:.2f}" for p in c["parts"])
        pair = r.get("pair")
        pair_cell = "—" if not pair else f"{'PASS' if pair['pass'] else 'FAIL'} {pair['passed']}/{pair['total']}"
        lines.append(
            f"| {', '.join(d['name'] + ' ' + d['core'] + '@' + format(d['mhz'], 'g') for d in r['devices'])} | "
            f"{r['link']['kind']} {r['link']['bytes_per_s']:,.0f} B/s | {c['label']} ({', '.join(c['tensor_names'])}) | "
            f"{c['link_bytes']:,} | **{c['latency_ms']:.2f}** ({split} + {c['link_ms']:.2f}) | "
            f"{whole[d0]['latency_ms']:.2f} | {whole[d1]['latency_ms']:.2f} (+{whole[d1]['link_bytes']:,} B) | "
            f"{pair_cell} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench-partition")
    records = run(parser.parse_args().out)
    pairs = [r["pair"] for r in records if r.get("pair")]
    text = "\n".join([
        "# Partitioning the MLPerf Tiny IC ResNet-8 across two devices",
        "",
        "Measured with `TFLM_ROOT=../shared/tflm python -m bench.partition` (commands per row in "
        "build/bench-partition/config*/partition.json); model: the MLPerf reference "
        "`pretrainedResnet_quant.tflite`, golden vectors: 8 CIFAR-10 test images (JPEG re-encoded set).",
        "",
        table(records),
        "",
        "How the numbers are made: " + records[0]["method"] + ". Ethos-U rows: Vela 5.2.0's cycle estimate "
        "at the device clock; " + next((r["npu"]["note"] for r in records if "npu" in r), "") + ".",
        "",
        "Check of the per-operator sums against the real parts (pair runs, instructions per inference): " +
        "; ".join(f"measured {p['instructions_measured']} vs summed {p['instructions_summed']}" for p in pairs) + ".",
        "",
        "Every cut of every row was also checked bit-exact on TFLM (part 0 then part 1 == whole model on all 8 "
        "vectors); the full cost tables are in each configuration's report.md.",
        "",
    ])
    (REPO / "bench" / "partition.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
