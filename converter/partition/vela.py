"""An Ethos-U NPU as a partition device: compile a part with Arm's Vela (ethos-u-vela, pinned
in pyproject.toml) and read its estimates.

NPU outputs are NOT executed here: there is no Ethos-U and no Arm Corstone FVP on these
machines. What is checked: Vela compiles the part; its output parses as a TFLite flatbuffer
(the kit's reader); as many operators are left for the CPU as Vela reports (Vela prints its own
internal names, so the count is compared), everything else is inside `ethos-u` custom operators. What is not: that the NPU
computes the part's golden vectors (the part's golden outputs are TFLM's, from the original part).
"""
from __future__ import annotations

import csv
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import KitError, foreign_text
from ..tflite.model import read_model

ETHOS_U_OP = "ethos-u"
NOT_EXECUTED = ("NPU outputs are not executed here (no Ethos-U hardware or Arm FVP): checked that Vela compiles "
                "the part, its .tflite parses, and as many operators are left for the CPU as Vela reports; the NPU's outputs "
                "are not compared with the golden vectors")


@dataclass(frozen=True)
class VelaEstimate:
    accelerator: str
    model: bytes               # Vela's optimised .tflite
    cycles_total: int          # Vela's estimate incl. memory access
    cycles_npu: int
    sram_bytes: int            # feature maps (Vela's 'Total SRAM used')
    flash_bytes: int           # weights and command stream in flash (Vela's off-chip flash total)
    npu_operators: int         # ethos-u custom operators in the optimised model
    cpu_operators: tuple       # operators left for the CPU, 'NAME (count)' (TFLM's kernels run them)
    vela_version: str

    def ms(self, mhz: float) -> float:
        return self.cycles_total / (mhz * 1e3)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "model"} | {"model_bytes": len(self.model)}


def _version() -> str:
    from importlib import metadata

    return metadata.version("ethos-u-vela")


def compile_part(model_bytes: bytes, accelerator: str) -> VelaEstimate:
    """Run Vela on one part; KitError with Vela's last words when it cannot compile it."""
    from ..system.extras import require

    require("npu", "an Ethos-U device (Arm's Vela compiler)")
    with tempfile.TemporaryDirectory(prefix="tflm-kit-vela-") as folder:
        source = Path(folder) / "part.tflite"
        source.write_bytes(model_bytes)
        done = subprocess.run([sys.executable, "-c", "import sys; from ethosu.vela.vela import main; sys.exit(main())",
                               str(source), "--accelerator-config", accelerator, "--output-dir", str(Path(folder) / "out"),
                               "--show-cpu-operations"], capture_output=True, text=True, timeout=600)
        out = Path(folder) / "out"
        optimised = out / "part_vela.tflite"
        summaries = list(out.glob("part_summary_*.csv")) if out.is_dir() else []
        if done.returncode != 0 or not optimised.is_file() or not summaries:
            raise KitError(f"Vela could not compile the part for {accelerator}: "
                           f"{foreign_text(done.stderr or done.stdout, tail=True)}",
                           "choose another cut or an MCU for this part")
        with summaries[0].open() as handle:
            row = next(csv.DictReader(handle))
        model = optimised.read_bytes()
    info = read_model(model)  # raises if Vela's output is not a flatbuffer the kit can read
    cpu_ops = tuple(op for op in info.operators if op != ETHOS_U_OP)
    reported = re.search(r"^CPU operators = (\d+)", done.stdout, re.M)
    left = sum(info.operator_counts[op] for op in cpu_ops)
    if reported is None or int(reported.group(1)) != left:
        raise KitError(f"Vela reported {reported.group(1) if reported else 'no'} CPU operators but its model "
                       f"leaves {left} for the CPU", "report this with the model and the Vela version")
    return VelaEstimate(accelerator, model, int(float(row["cycles_total"])), int(float(row["cycles_npu"])),
                        int(float(row["sram_memory_used"]) * 1024),
                        int(float(row["off_chip_flash_memory_used"]) * 1024),
                        info.operator_counts.get(ETHOS_U_OP, 0),
                        tuple(f"{op} ({info.operator_counts[op]})" for op in cpu_ops), _version())
