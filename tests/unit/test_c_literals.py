"""C array literals: the emitted text holds exactly the bytes, and the reader finds them again."""
import numpy as np
import pytest

from converter.emit.c_arrays import c_bytes, parse_c_array, raw_bytes


@pytest.mark.parametrize("data", [b"", b"\x00", bytes(range(256)), b"\xff" * 17])
def test_c_bytes_round_trip(data):
    source = f"const unsigned char g_m[] = {{\n{c_bytes(data)}\n}};\n"
    assert parse_c_array(source, "g_m") == data
    lines = c_bytes(data).splitlines()
    assert all(line.count("0x") <= 16 for line in lines)


def test_raw_bytes_are_little_endian_c_order():
    array = np.array([[1, -2], [3, 256]], dtype=np.int16)
    assert raw_bytes(array) == b"\x01\x00\xfe\xff\x03\x00\x00\x01"
    assert raw_bytes(array.T) == b"\x01\x00\x03\x00\xfe\xff\x00\x01"


def test_missing_symbol_is_an_error():
    with pytest.raises(ValueError, match="no array named g_x"):
        parse_c_array("int y[] = {1};", "g_x")
