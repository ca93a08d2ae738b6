"""`hexdump_lines` against a plain reference: every line, label and fold the same, for every release and shape."""

import gzip
import pathlib
import shutil
import subprocess

from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

import vmctx_emu.describe.hexdump as hexdump
from vmctx_emu import OwnedComponentInstance
from vmctx_emu.describe import hexdump_chunks, hexdump_lines
from vmctx_emu.layouts.releases import LAYOUTS

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"


def reference_lines(ctx, squeeze=True):
    """hexdump -C, one line per 16 bytes, labels by scanning every region; repeated lines of the
    same regions folded into `*` (none with `squeeze` False, as hexdump -C -v)."""
    raw, regions = bytes(ctx.memory), ctx.offsets.regions()
    previous, folded = None, False
    for start in range(0, len(raw), 16):
        chunk, stop = raw[start:start + 16], min(start + 16, len(raw))
        labels = []
        for r in regions:
            if r.padding_before and r.offset - r.padding_before < stop and start < r.offset:
                labels.append("(hole)")
            if not r.size or r.end <= start or stop <= r.offset:
                continue
            if r.count_name is None:
                labels.append(r.name)
                continue
            first = max(0, (start - r.offset) // r.elem_size)
            last = min(r.count - 1, (stop - 1 - r.offset) // r.elem_size)
            labels.append(f"{r.name}[{first}]" if first == last else f"{r.name}[{first}..{last}]")
        key = (chunk, tuple(label.split("[")[0] for label in labels))
        if squeeze and key == previous and len(chunk) == 16:
            if not folded:
                yield "*"
                folded = True
            continue
        previous, folded = key, False
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        yield f"{start:08x}  {left:<23}  {right:<23}  |{text}|".ljust(78) + f"  {', '.join(labels)}"
    yield f"{len(raw):08x}"


@pytest.mark.parametrize("min_lines", [0, hexdump.MIN_LINES], ids=["matrices", "default"])
@settings(max_examples=80, deadline=None)
@given(layout=st.sampled_from(LAYOUTS), ptr=st.sampled_from([4, 8]), debug=st.booleans(),
       counts=st.lists(st.one_of(st.integers(0, 5), st.integers(60, 1100)), min_size=12, max_size=12),
       edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8))
def test_hexdump_is_the_reference(min_lines, layout, ptr, debug, counts, edits):
    """Every line, label and fold as the plain reference gives them; with `min_lines` 0 every run of
    array lines goes through the matrix path, short or long."""
    hexdump.MIN_LINES, saved = min_lines, hexdump.MIN_LINES
    try:
        _check(layout, ptr, debug, counts, edits)
    finally:
        hexdump.MIN_LINES = saved


def _check(layout, ptr, debug, counts, edits):
    shape = dict(zip(layout.count_names, counts))
    header = {name: (0x1000, 0x2000) if name == "store" else 0x1000 + 0x10 * k
              for k, name in enumerate(layout.header_names())}
    with OwnedComponentInstance(shape, ptr=ptr, byte_order="little", wasmtime=layout.first or "seed",
                                debug_assertions=debug, header=header) as inst:
        raw = inst._live()
        for at, value in edits:  # printable and unprintable bytes, runs broken at random
            raw[at % len(raw)] = value
        for squeeze in (True, False):
            expected = list(reference_lines(inst, squeeze))
            assert list(hexdump_lines(inst, squeeze=squeeze)) == expected
            pieces = [bytes(p) for p in hexdump_chunks(inst, lines=7, binary=True, squeeze=squeeze)]
            assert b"".join(pieces) == "".join(line + "\n" for line in expected).encode()


@pytest.mark.skipif(shutil.which("hexdump") is None, reason="needs hexdump(1) (bsdextrautils)")
@pytest.mark.parametrize("flag", ["-v", "--no-squeezing"])
@pytest.mark.parametrize("dump", ["ctx.bin", "big-le32.bin.gz"])
def test_hexdump_v_is_hexdump_c_v_with_a_margin(flag, dump, tmp_path, capsys):
    """`vmctx-emu hexdump -v` is `hexdump -C -v` line for line (no `*`), the field names after column 78;
    without it, runs of identical lines fold (so the flag changes something on these dumps)."""
    raw = (gzip.decompress if dump.endswith(".gz") else bytes)((GOLDEN / dump).read_bytes())
    name = dump.removesuffix(".gz")
    (tmp_path / name).write_bytes(raw)
    shutil.copy(GOLDEN / (name + ".json"), tmp_path)
    theirs = subprocess.run(["hexdump", "-C", "-v", str(tmp_path / name)], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    status, out, err = run_cli(["hexdump", flag, tmp_path / name], capsys)
    assert (status, err) == (0, "")
    ours = out.splitlines()
    assert len(ours) == len(theirs) == len(raw) // 16 + 1 + (len(raw) % 16 > 0) and "*" not in ours
    assert [line[:78].rstrip() for line in ours] == [line.rstrip() for line in theirs]
    status, folded, _ = run_cli(["hexdump", tmp_path / name], capsys)
    assert status == 0 and "*" in folded.splitlines() and len(folded.splitlines()) < len(ours)
