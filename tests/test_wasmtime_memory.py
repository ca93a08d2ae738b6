"""Instances, dumps, the C compiler cross-check and the CLI for every released layout."""

import json
import random
import re

import pytest
from conftest import compile_c, run_cli as run

from vmctx_emu import HostPtr, OwnedComponentInstance, invalid_ptr, load_dump, wasmtime_layout
from vmctx_emu.cli import count_option
from vmctx_emu.layouts.cmirror import context_fields, context_struct, element_typedef, element_typedefs
from vmctx_emu.dumps.decode import decode
from vmctx_emu.layouts.releases import LAYOUTS

VERSIONS = [layout.first or "seed" for layout in LAYOUTS]

# The runtime rules per release, restated from each tag's `initialize_vmctx`:
# header pointers written, the flag word, and which words a debug build poisons
# (word indexes within each element).
HEADERS = {
    "seed": ["store"], "0.40.0": ["store", "limits"], "1.0.0": ["transcode_libcalls", "store", "limits"],
    "9.0.0": ["transcode_libcalls", "store", "limits"], "12.0.0": ["libcalls", "store", "limits"],
    "22.0.0": ["libcalls", "store", "limits"], "29.0.0": ["builtins", "store", "limits"],
    "30.0.0": ["builtins", "limits"], "49.0.0": ["builtins", "store_context"],
}
POISON_WORDS = {
    "lowering_anyfuncs": [0], "always_trap_anyfuncs": [0], "transcoder_anyfuncs": [0],
    "lowering_func_refs": [0], "always_trap_func_refs": [0], "transcoder_func_refs": [0],
    "trampoline_func_refs": [0], "intrinsic_func_refs": [0], "lowerings": [0, 1], "memories": [0],
    "reallocs": [0], "callbacks": [0], "post_returns": [0], "resource_destructors": [0],
}


def headers_of(version):
    return HEADERS.get(version, ["builtins", "vm_store_context"])


def table_poison(version):
    layout = wasmtime_layout(version)
    return [0, 1] if layout.id in ("L9", "L10", "L11") else [0]


def flag_init(version):
    return 1 if wasmtime_layout(version).id in ("L10", "L11") else 3


def header_values(version):
    return {n: ((0x1110, 0x2220) if n == "store" else 0x3330 + 16 * k) for k, n in enumerate(headers_of(version))}


def expected_image(version, offsets, byte_order, debug):
    p = offsets.pointer_size()
    img = bytearray(offsets.size_of_vmctx())

    def put(at, value, width):
        img[at : at + width] = value.to_bytes(width, byte_order)

    img[0:4] = b"comp" if byte_order == "little" else b"pmoc"
    for name, value in header_values(version).items():
        r = offsets.region(name)
        for k, word in enumerate(value if isinstance(value, tuple) else (value,)):
            put(r.offset + k * p, word, p)
    flags = next(r for r in offsets.regions() if r.count_name == "num_runtime_component_instances")
    for i in range(flags.count):
        put(flags.offset + 16 * i, flag_init(version), 4)
    if debug:
        rules = dict(POISON_WORDS, tables=table_poison(version))
        for r in offsets.regions():
            for i in range(r.count if r.count_name else 0):
                for w in rules.get(r.name, []):
                    put(r.offset + i * r.elem_size + w * p, invalid_ptr(p), p)
    return bytes(img)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("ptr, byte_order", [(8, "little"), (4, "big")])
@pytest.mark.parametrize("debug", [True, False], ids=["debug", "release"])
def test_initial_image_follows_each_releases_rules(version, ptr, byte_order, debug):
    layout = wasmtime_layout(version)
    counts = {n: 2 for n in layout.count_names}
    header = header_values(version)
    with OwnedComponentInstance(counts, ptr=ptr, byte_order=byte_order, debug_assertions=debug,
                                wasmtime=version, header=header) as inst:
        assert inst.to_bytes() == expected_image(version, inst.offsets, byte_order, debug)
        assert inst.instance_flags(1).value == flag_init(version)


@pytest.mark.parametrize("version", ["30", "42", "0.40.1"])
def test_missing_or_unknown_header_is_named(version):
    layout = wasmtime_layout(version)
    header = header_values(layout.first)
    dropped = sorted(header)[0]
    del header[dropped]
    with pytest.raises(ValueError, match=f"header value missing for {dropped}"):
        OwnedComponentInstance({}, wasmtime=version, header=header)
    with pytest.raises(ValueError, match="header bogus is not written by"):
        OwnedComponentInstance({}, wasmtime=version, header={**header_values(layout.first), "bogus": 1})


def test_store_argument_only_where_the_release_has_a_store():
    with pytest.raises(ValueError, match="has no store pointer"):
        OwnedComponentInstance({}, (1, 2), wasmtime="31", header=header_values("31.0.0"))
    inst = OwnedComponentInstance({}, (1, 2), wasmtime="21", header={"libcalls": 5, "limits": 6})
    assert inst.store() == (1, 2)


@pytest.mark.parametrize("version", VERSIONS)
def test_dump_round_trip_records_the_release(tmp_path, version):
    layout = wasmtime_layout(version)
    inst = OwnedComponentInstance({n: 1 for n in layout.count_names}, ptr=4, byte_order="big",
                                  wasmtime=version, header=header_values(version))
    path = inst.dump(tmp_path / "ctx.bin")
    meta = json.loads((tmp_path / "ctx.bin.json").read_text())
    assert (meta["wasmtime"], meta["layout"]) == (version, layout.id)
    loaded = load_dump(path)
    assert loaded.layout is layout and loaded.to_bytes() == inst.to_bytes()
    assert loaded.instance_flags(0).value == inst.instance_flags(0).value
    for r in layout.offsets(4, **{n: 1 for n in layout.count_names}).regions():
        assert loaded.view(r.name).tolist() == inst.view(r.name).tolist()
    assert decode(loaded).anomalies == []


# -- the C compiler, for every release ------------------------------------------

@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    rnd = random.Random(4848)
    cases, source, rows = [], ["#include <stddef.h>", "#include <stdint.h>"], []
    etypes = {}
    for layout in LAYOUTS:
        if int(HostPtr) not in layout.valid_ptr_sizes:
            continue
        for t in element_typedefs(layout.fields):
            etypes.setdefault(t.c_name, t)
    source += [element_typedef(t) for t in etypes.values()]
    for li, layout in enumerate(LAYOUTS):
        for k in range(25):
            counts = {n: rnd.choice([0, 1, 2, rnd.randrange(0, 300)]) for n in layout.count_names}
            o = layout.offsets(HostPtr, **counts)
            name = f"l{li}_s{k}"
            source.append(context_struct(o, name))
            fields = [f.name for f in context_fields(layout.fields)]
            cells = [f"offsetof(struct {name}, {f})" for f in fields] + [f"offsetof(struct {name}, end_marker)"]
            cases.append((layout, o, fields, len(rows)))
            rows.extend(cells)
    source.append(f"const size_t offsets_table[{len(rows)}] = {{{', '.join(rows)}}};")
    lib = compile_c("_vmctx_release_mirror", "\n".join(source),
                    [f"extern const size_t offsets_table[{len(rows)}];"], tmp_path_factory.mktemp("releases"))
    return cases, lib


@pytest.mark.parametrize("version", VERSIONS)
def test_c_compiler_agrees_with_every_release(compiled, version):
    cases, lib = compiled
    mine = [c for c in cases if c[0] is wasmtime_layout(version)]
    assert len(mine) == 25
    for _, o, fields, at in mine:
        got = [lib.offsets_table[at + i] for i in range(len(fields) + 1)]
        assert got == [o.region(f).offset for f in fields] + [o.size_of_vmctx()], (version, o)


# -- the CLI ----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["21", "0.40.1", "48", "seed"])
def test_help_lists_exactly_the_releases_counts(version, capsys):
    status, out, _ = run(["layout", "--wasmtime", version, "--help"], capsys)
    assert status == 0
    expected = {f"--{count_option(n)}" for n in wasmtime_layout(version).count_names}
    all_counts = {f"--{count_option(n)}" for layout in LAYOUTS for n in layout.count_names}
    listed = {opt for opt in all_counts if f"{opt} N" in out}
    assert listed == expected


def test_layout_table_for_a_release(capsys):
    status, out, _ = run(["layout", "--wasmtime", "42", "--ptr-size", "8", "--instances", "1",
                          "--trampolines", "1", "--json"], capsys)
    doc = json.loads(out)
    assert status == 0
    assert [(r["name"], r["offset"]) for r in doc["regions"]][:6] == [
        ("magic", 0), ("builtins", 8), ("vm_store_context", 16), ("flags", 32), ("task_may_block", 48),
        ("trampoline_func_refs", 64)]
    status, _, err = run(["layout", "--wasmtime", "42", "--always-trap", "1"], capsys)
    assert status == 2 and "unrecognized arguments: --always-trap" in err


def test_bad_version_is_one_line(capsys):
    status, out, err = run(["layout", "--wasmtime", "99"], capsys)
    assert status == 2 and out == "" and err.count("\n") == 1 and "newest known release" in err


def test_versions_table(capsys):
    status, out, _ = run(["versions"], capsys)
    # One block per layout: "ID  RELEASES", then indented (wrapped) changes and count options.
    blocks = [" ".join(block.split()) for block in re.split(r"\n(?=\S)", out.strip())][:-1]
    assert status == 0 and len(blocks) == len(LAYOUTS)
    assert blocks[0].startswith("seed commit 97894bc65e")
    l4 = next(block for block in blocks if block.startswith("L4 "))
    assert "v12.0.0 - v21.0.2" in l4 and "--trampolines --resources" in l4


def test_decode_and_diff_a_release_dump(tmp_path, capsys):
    inst = OwnedComponentInstance({"num_runtime_component_instances": 2, "num_trampolines": 1},
                                  wasmtime="48", header=header_values("48.0.0"))
    a = inst.dump(tmp_path / "a.bin")
    inst.instance_flags(1).may_leave = False
    b = inst.dump(tmp_path / "b.bin")
    status, out, _ = run(["decode", a], capsys)
    assert status == 0 and "may_leave[1]" in out and "MAY_LEAVE" in out and "anomalies: none" in out
    status, out, _ = run(["diff", a, b], capsys)
    assert status == 1 and "may_leave[1]" in out and "(MAY_LEAVE) -> 0x00000000 (0)" in out
    status, _, err = run(["decode", a, "--wasmtime", "48", "--trampolines", "2"], capsys)  # the sidecar says 1
    assert status == 2 and "--trampolines 2 contradicts its sidecar" in err and "num_trampolines 1" in err
    status, _, err = run(["decode", a, "--wasmtime", "48", "--trampolines", "2", "--force"], capsys)  # options win
    assert status == 2 and "needs size_of_vmctx()" in err


def test_infer_reports_consistent_releases(tmp_path, capsys):
    inst = OwnedComponentInstance({"num_runtime_component_instances": 1, "num_runtime_tables": 2},
                                  ptr=8, wasmtime="34", header=header_values("34.0.0"))
    path = tmp_path / "x.bin"
    path.write_bytes(inst.to_bytes())
    status, out, _ = run(["infer", path, "--ptr-size", "8"], capsys)
    assert status == 0 and "L8 (v34.0.0 - v38.0.4): " in out
    status, out, _ = run(["infer", path, "--ptr-size", "8", "--wasmtime", "34", "--tables", "2", "--instances", "1"],
                         capsys)
    assert status == 0 and out.splitlines()[1:] == [
        "L8 (v34.0.0 - v35.0.0): unambiguous",
        "  --lowerings 0 --memories 0 --tables 2 --reallocs 0 --callbacks 0 --post-returns 0 --instances 1 "
        "--trampolines 0 --resources 0"]
