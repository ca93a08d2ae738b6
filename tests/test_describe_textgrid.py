"""`describe.textgrid`: digits and rows built with numpy are what Python's formatting gives, value by value."""

import numpy as np
import pytest

from vmctx_emu.describe.textgrid import Row, dec_digits, dec_right, decimal_widths, hex_digits, hex_pairs

EDGES = [0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10_000, 99_999_999]
U64_EDGES = EDGES + [10**8, 2**32 - 1, 2**32, 10**12, 2**63, 2**64 - 1, 0xDEADDEADBEEFBEEF]

# (function, values, width, the Python format of one value)
CASES = [
    ("dec8", dec_digits, EDGES, 8, "{:08d}"),
    ("dec3", dec_digits, [0, 7, 42, 999], 3, "{:03d}"),
    ("dec10", dec_digits, [0, 10**9, 2**32 - 1, 1234567890], 10, "{:010d}"),
    ("dec20", dec_digits, [0, 2**64 - 1, 10**19], 20, "{:020d}"),
    ("right8", dec_right, EDGES, 8, "{:8d}"),
    ("right4", dec_right, [0, 5, 12, 9999], 4, "{:4d}"),
    ("hex16", hex_digits, U64_EDGES, 16, "{:016x}"),
    ("hex8", hex_digits, EDGES + [2**32 - 1], 8, "{:08x}"),
    ("hex12", hex_digits, [0x7F00_1234_0000, 0xFFFF_FFFF_FFFF], 12, "{:012x}"),
    ("hex3", hex_digits, [0, 0xABC, 0xFFF], 3, "{:03x}"),
    ("hex1", hex_digits, [0, 9, 15], 1, "{:x}"),
]


@pytest.mark.parametrize("name, function, values, width, fmt", CASES, ids=[c[0] for c in CASES])
def test_digits_are_pythons_formatting(name, function, values, width, fmt):
    got = function(np.array(values, dtype=np.uint64), width)
    assert got.shape == (len(values), width)
    assert [bytes(row).decode() for row in got] == [fmt.format(v) for v in values]


def test_decimal_widths_and_hex_pairs():
    values = np.array(U64_EDGES, dtype=np.uint64)
    assert decimal_widths(values).tolist() == [len(str(v)) for v in U64_EDGES]
    assert decimal_widths(np.array([], dtype=np.uint64)).tolist() == []
    assert [bytes(p).decode() for p in hex_pairs()] == [f"{b:02x}" for b in range(256)]


def test_a_row_is_its_text_with_the_holes_filled():
    values = np.array([3, 40, 500])
    row = Row(3)
    row.text("[")
    row.fill(dec_right(values, 4))
    row.text("] 0x")
    row.fill(hex_digits(values, 4))
    row.text("\n")
    assert row.width == len(f"[{3:4d}] 0x{3:04x}\n")
    assert row.matrix().tobytes().decode() == "".join(f"[{v:4d}] 0x{v:04x}\n" for v in values.tolist())
