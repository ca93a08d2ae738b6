"""Fuzzing the dump reader: mutated dumps and sidecars, odd `load_dump` arguments; only package errors escape.

Every stage a dump goes through is driven: `load_dump`, `decode`, the table,
JSON, hexdump and diff renderings, flag reprs, and `infer` over the bytes.
"""

import json
import os
import tempfile

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import fuzz_examples
from vmctx_emu import OwnedComponentInstance
from vmctx_emu.describe import (decoded_doc, decoded_json_chunks, decoded_table, diff_json, diff_table,
                                hexdump_lines)
from vmctx_emu.dumps.decode import decode, padding_differences
from vmctx_emu.dumps.dump import load_dump
from vmctx_emu.dumps.sidecar import SIDECAR_SCHEMA
from vmctx_emu.dumps.infer import infer_releases
from vmctx_emu.errors import VMContextError, VMCtxEmuError
from vmctx_emu.layouts.releases import LAYOUTS

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
                         st.sampled_from(["0x10", "0x", "seed", "v21", "99", "little", "big", "false", "yes",
                                          "0xdeaddeadbeefbeef", "0x10000000000000000", "-5"]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=8)

# One sidecar edit: set a key (schema or not), set one count, delete a key, or replace the whole text.
edits = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(sorted(SIDECAR_SCHEMA) + ["extra"]), json_values),
    st.tuples(st.just("count"), st.sampled_from(["num_lowerings", "num_runtime_memories", "num_bogus"]),
              json_values),
    st.tuples(st.just("del"), st.sampled_from(sorted(SIDECAR_SCHEMA)), st.none()),
    st.tuples(st.just("text"), st.none(), st.one_of(st.text(max_size=40), st.sampled_from(
        ["[" * 5000, '{"format_version": 1', "null", "1e999", '"\\ud800"']))),
)
byte_edits = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6)
words = st.sampled_from([0, 1, 3, 5, 6, 7, 0xFFFFFFFF, 0xDEADDEADBEEFBEEF, 0x706D6F63])
arguments = st.fixed_dictionaries({}, optional={
    "address": st.one_of(st.none(), st.integers(-2, 1 << 65), st.sampled_from(["0x10", 1.5, True])),
    "counts": st.one_of(st.none(), st.just(5), st.dictionaries(st.sampled_from(["num_lowerings", "nope"]),
                                                               st.one_of(st.integers(-1, 3), st.just("1")),
                                                               max_size=2)),
    "check_magic": st.sampled_from([True, False, 0]),
    "ptr": st.sampled_from([None, 4, 8, 3]),
    "byte_order": st.sampled_from([None, "little", "big", "middle"]),
    "debug_assertions": st.sampled_from([None, True, False, "false"]),
})


def exercise(ctx):
    """Everything a loaded dump can be asked for; returns nothing, raises only what the package raises."""
    decoded = decode(ctx)
    assert decoded_table(decoded).startswith("VMComponentContext")
    # The streamed JSON is json.dumps of the document, byte for byte, across chunk boundaries.
    assert "".join(decoded_json_chunks(decoded, rows=2)) == json.dumps(decoded_doc(decoded), indent=1) + "\n"
    assert list(hexdump_lines(ctx))
    padding = padding_differences(decoded, decoded)
    assert diff_table(decoded, decoded, padding) == "no differences"
    json.loads(diff_json(decoded, decoded, padding))
    flags = ctx.layout.flags_field()
    for i in range(ctx.offsets.region(flags.name).count):
        flag = ctx.instance_flags(i)
        repr(flag)
        try:
            assert flag.as_raw() == ctx.vmctx + flag.offset
        except VMContextError:
            assert ctx.vmctx is None


@settings(max_examples=fuzz_examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=st.sampled_from(LAYOUTS), ptr=st.sampled_from([4, 8]), order=st.sampled_from(["little", "big"]),
       debug=st.booleans(), n=st.integers(0, 2), bytes_=byte_edits, flag_word=st.one_of(st.none(), words),
       # Half the dumps keep their sidecar, size and arguments, so the decoder sees mutated bytes too.
       sidecar_edits=st.one_of(st.just([]), st.lists(edits, max_size=3)),
       resize=st.one_of(st.just(0), st.integers(-9, 9)), kwargs=st.one_of(st.just({}), arguments))
def test_fuzz_dump_reader_raises_only_package_errors(layout, ptr, order, debug, n, sidecar_edits, bytes_,
                                                     flag_word, resize, kwargs):
    counts = dict.fromkeys(layout.count_names, n)
    try:
        inst = OwnedComponentInstance(counts, ptr=ptr, byte_order=order, wasmtime=layout.first or "seed",
                                      debug_assertions=debug,
                                      header={name: (0x1000, 0x2000) if name == "store" else 0x1000 + 0x10 * k
                                              for k, name in enumerate(layout.header_names())})
    except VMCtxEmuError:
        event("not emulated at this pointer size")
        return
    if flag_word is not None and n:
        word = flag_word & 0xFFFFFFFF
        inst.subview(inst.layout.flags_field().name, "flags")[0] = word - (1 << 32) if word >> 31 else word
    with tempfile.TemporaryDirectory() as tmp:
        path = inst.dump(os.path.join(tmp, "ctx.bin"))
        data = bytearray(inst.to_bytes())
        for at, value in bytes_:
            data[at % len(data)] = value
        data = data[:len(data) + resize] if resize < 0 else data + bytes(resize)
        with open(path, "wb") as f:
            f.write(data)
        meta = json.loads(open(f"{path}.json").read())
        text = None
        for kind, key, value in sidecar_edits:
            if kind == "set":
                meta[key] = value
            elif kind == "count" and isinstance(meta.get("counts"), dict):
                meta["counts"][key] = value
            elif kind == "del":
                meta.pop(key, None)
            elif kind == "text":
                text = value
        with open(f"{path}.json", "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(json.dumps(meta) if text is None else text)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        try:
            ctx = load_dump(path, **kwargs)
        except VMCtxEmuError as e:
            event(f"refused: {type(e).__name__}")
            return
        event("loaded and decoded")
        exercise(ctx)
        try:
            infer_releases(ctx.to_bytes(), ctx.ptr, ctx.byte_order, address=ctx.vmctx, limit=2)
        except VMCtxEmuError:
            pass


@settings(max_examples=fuzz_examples(60), deadline=None)
@given(data=st.binary(max_size=600), ptr=st.sampled_from([4, 8]), order=st.sampled_from(["little", "big"]),
       magic=st.booleans(), debug=st.booleans(), address=st.one_of(st.none(), st.integers(0, 1 << 64)))
def test_fuzz_infer_on_arbitrary_bytes_raises_only_package_errors(data, ptr, order, magic, debug, address):
    if magic:
        data = (0x706D6F63).to_bytes(4, order) + data
    try:
        results = infer_releases(data, ptr, order, address=address, debug_assertions=debug, limit=3)
    except VMCtxEmuError:
        return
    assert all(r.count >= len(r.candidates) for r in results)
