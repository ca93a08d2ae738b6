"""`decode --json` streamed: the same bytes as `json.dumps(decoded_doc(...), indent=1)`, in bounded pieces."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu import OwnedComponentInstance
from vmctx_emu.cli import main
from vmctx_emu.describe import decoded_doc, decoded_json, decoded_json_chunks
from vmctx_emu.dumps.decode import decode
from vmctx_emu.layouts.releases import wasmtime_layout

# Texts a scan may attach to a pointer: plain, non-ASCII, quotes and control characters.
texts = st.one_of(st.none(), st.text(max_size=8), st.sampled_from(['a "quoted" \\ name', "caf\u00e9 \u2603", "\x00\n"]))


def context(release, ptr, order, debug):
    layout = wasmtime_layout(release)
    counts = dict.fromkeys(layout.count_names, 2)
    header = {name: (0x1000, 0x2000) if name == "store" else 0x1000 + 0x10 * k
              for k, name in enumerate(layout.header_names())}
    return OwnedComponentInstance(counts, ptr=ptr, byte_order=order, wasmtime=release, debug_assertions=debug,
                                  header=header)


@settings(max_examples=60, deadline=None)
@given(release=st.sampled_from(["seed", "0.40.0", "21.0.0", "41.0.0", "50.0.1"]), ptr=st.sampled_from([4, 8]),
       order=st.sampled_from(["little", "big"]), debug=st.booleans(), rows=st.integers(1, 5),
       words=st.lists(st.tuples(st.integers(0, 60), st.sampled_from([0, 1, 5, 7, 0x706D6F63, 0xFFFFFFFF])),
                      max_size=6),
       points=st.one_of(st.none(), st.dictionaries(st.integers(0, 256), texts, max_size=6)))
def test_streamed_json_is_json_dumps_of_the_document(release, ptr, order, debug, rows, words, points):
    with context(release, ptr, order, debug) as inst:
        raw = inst._live()
        for at, word in words:  # anomalies, flag words, other contexts' addresses, a bad magic
            at = at * 4 % (len(raw) - 3)
            raw[at:at + 4] = word.to_bytes(4, order)
        decoded = decode(inst)
        pieces = list(decoded_json_chunks(decoded, points, rows=rows))
        assert "".join(pieces) == json.dumps(decoded_doc(decoded, points), indent=1) + "\n"
        # At most `rows` records a piece, but an element's records stay together (5 sub-fields at most).
        assert all(piece.count('\n   "region": ') <= max(rows, 5) for piece in pieces)


def test_decoded_json_is_the_document():
    with context("50.0.1", 8, "little", True) as inst:
        decoded = decode(inst)
        assert json.loads(decoded_json(decoded)) == decoded_doc(decoded)


def test_cli_decode_json_streams_the_same_text(tmp_path, capsys):
    with context("41.0.0", 8, "little", True) as inst:
        path = inst.dump(str(tmp_path / "ctx.bin"))
        expected = decoded_json(decode(inst))
    assert main(["decode", "--json", path]) in (0, None)
    assert capsys.readouterr().out == expected + "\n"


@pytest.mark.parametrize("rows", [1, 7, 1 << 13])
def test_pieces_hold_at_most_rows_records(rows):
    with context("seed", 8, "little", False) as inst:
        decoded = decode(inst)
        pieces = list(decoded_json_chunks(decoded, rows=rows))
    assert all(piece.count('\n   "region": ') <= max(rows, 5) for piece in pieces)
