"""The one spelling of the arena margin (tflm/arena.py) and of reading a linked image's size (system/elf_size.py)."""
import stat
from types import SimpleNamespace

import numpy as np

from converter.system.elf_size import ImageSize, image_size, section_sizes
from converter.tflm.arena import ARENA_MARGIN, arena_with_margin, first_sample


def test_arena_margin_rounds_up_to_16_bytes():
    assert ARENA_MARGIN == 0.10
    assert arena_with_margin(1000) == 1104          # 1100 -> next multiple of 16
    assert arena_with_margin(1000, 0.0) == 1008
    assert arena_with_margin(1600, 0.0) == 1600


def test_first_sample_is_one_vector_per_input_shaped_as_the_tensor():
    info = SimpleNamespace(inputs=[SimpleNamespace(shape=(1, 4)), SimpleNamespace(shape=(1, 2, 2))])
    inputs = [np.arange(12).reshape(3, 4), np.arange(12).reshape(3, 4)]
    sample = first_sample(inputs, info)
    assert [x.shape for x in sample] == [(1, 4), (1, 2, 2)]
    assert sample[1].ravel().tolist() == [0, 1, 2, 3]


def _fake_size(tmp_path, berkeley: str, sysv: str):
    tool = tmp_path / "size"
    tool.write_text(f"#!/bin/sh\nif [ \"$1\" = -A ]; then printf '{sysv}'; else printf '{berkeley}'; fi\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return str(tool)


def test_image_size_and_sections_parse_binutils_output(tmp_path):
    tool = _fake_size(tmp_path, "   text\\t   data\\t    bss\\t    dec\\t    hex\\tfilename\\n"
                                "  81234\\t   1024\\t  70000\\t 152258\\t  252c2\\tfw.elf\\n",
                      "fw.elf  :\\nsection   size   addr\\n.text   81000   0\\n.data   1024   536870912\\n"
                      "Total   82024\\n")
    size = image_size(tmp_path / "fw.elf", tool)
    assert size == ImageSize(81234, 1024, 70000) and size.flash == 82258 and size.static_ram == 71024
    assert section_sizes(tmp_path / "fw.elf", tool) == {".text": 81000, ".data": 1024}


def test_a_missing_or_failing_size_tool_gives_nothing(tmp_path):
    assert image_size(tmp_path / "fw.elf", str(tmp_path / "no-such-tool")) is None
    assert section_sizes(tmp_path / "fw.elf", "false") == {}
