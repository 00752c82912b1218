"""bench/boards.py's table: linked images beside each other with the AOT/TFLM ratio, compiled objects apart and
labelled, a board that was not built says why (no measurement, no toolchain)."""
import json
from dataclasses import asdict

from bench.boards import FLATBUFFER, KEPT, LINKED, Row, load, render


def _rows():
    return [Row("demo", "pico", "tflm", "rp2040js 1.4.1: PASS 10/10", LINKED, 129_064, 10_240, 21_480,
                arena="16,880 (15,332 used)", per_inference=5_811_287, unit="cycles"),
            Row("demo", "pico", "aot", "rp2040js 1.4.1: PASS 10/10", LINKED, 68_200, 4_040, 18_672,
                per_inference=6_947_430, unit="cycles"),
            Row("demo", "stm32", "aot", "not built: no STM32CubeF7 at /x"),
            Row("demo", "zephyr", "tflm", "compiled (model data only)", FLATBUFFER, 14_604, 0, 0,
                note="+ zephyr-tflite-micro's TFLM library: not built here"),
            Row("demo", "zephyr", "aot", "compiled (cmsis-nn kernels)", KEPT, 29_554, 0, 13_824)]


def test_linked_images_get_the_aot_to_tflm_ratio_of_their_flash():
    text = render(_rows(), "Measured by `python -m bench.boards`.", ["kws: skipped, no kws_ref_model.tflite"])
    linked, compiled = text.split("## Boards with no SDK here")
    pico_aot = next(line for line in linked.splitlines() if line.startswith("| demo | pico | aot |"))
    assert "| 72,240 | 0.52x |" in pico_aot and "6,947,430 cycles" in pico_aot   # (68,200 + 4,040) / 139,304
    pico_tflm = next(line for line in linked.splitlines() if line.startswith("| demo | pico | tflm |"))
    assert "| 139,304 |  |" in pico_tflm
    # not built: its reason, no numbers
    assert "| demo | stm32 | aot | not built: no STM32CubeF7 at /x | - | - | - | - |" in linked
    # compiled objects only in the second table, each saying what its sizes are, never set against a linked image
    assert "zephyr" not in linked
    assert f"| {KEPT} | 29,554 | 0 | 13,824 | 29,554 |" in compiled
    assert f"| {FLATBUFFER} | 14,604 |" in compiled and "not built here" in compiled
    assert "x |" not in compiled
    assert text.rstrip().endswith("- kws: skipped, no kws_ref_model.tflite")


def test_render_only_reads_back_what_was_written(tmp_path):
    rows = _rows()
    path = tmp_path / "boards.json"
    path.write_text(json.dumps({"header": "h", "notes": [], "rows": [asdict(r) | {"flash": r.flash} for r in rows]}))
    assert load(path) == {"rows": rows, "header": "h", "notes": []}
