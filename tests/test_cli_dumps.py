"""`decode`, `hexdump`, `diff` and `infer` on the command line; errors are one line with status 2."""

import json
import os
import pathlib
import sys

import pytest
from conftest import SAMPLE, run_cli as run

from vmctx_emu import Component, DumpError, OwnedComponentInstance, load_dump
from vmctx_emu.describe import SCHEMA_VERSION
from vmctx_emu.errors import BadMagicError
from vmctx_emu.layouts.ptr import HostPtr
from vmctx_emu.memory.reader import VMLowering

LAYOUT = ["--ptr-size", "8", "--lowerings", "3", "--memories", "1", "--reallocs", "1",
          "--post-returns", "1", "--instances", "2", "--always-trap", "1"]


def test_decode_table(dumps, capsys):
    inst, a, _ = dumps
    status, out, err = run(["decode", a], capsys)
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"VMComponentContext at {inst.vmctx:#x}: ptr_size=8, little-endian, 232 bytes, debug"
    assert any(line.split()[:2] == ["32", "flags[0]"] and line.endswith("MAY_LEAVE|MAY_ENTER") for line in lines)
    assert lines[-1] == "anomalies: none"


def test_decode_json_uses_hex_strings(dumps, capsys):
    _, a, _ = dumps
    status, out, _ = run(["decode", a, "--json"], capsys)
    doc = json.loads(out)
    assert status == 0 and doc["schema_version"] == SCHEMA_VERSION and doc["anomalies"] == []
    rec = {r["field"]: r for r in doc["records"]}
    assert rec["memories[0]"]["value"] == "0xdeaddeadbeefbeef"
    assert rec["memories[0]"]["interpretation"] == "unset_poison"
    assert rec["flags[1]"]["offset"] == 48 and rec["flags[1]"]["text"] == "MAY_LEAVE|MAY_ENTER"


def test_decode_without_sidecar_takes_layout_options(dumps, capsys):
    _, a, _ = dumps
    os.unlink(f"{a}.json")
    status, _, err = run(["decode", a], capsys)
    assert status == 2 and "no component counts or pointer size given" in err
    status, out, _ = run(["decode", a, *LAYOUT], capsys)
    assert status == 0 and "memories[0]" in out


def test_hexdump_margin_names_fields(dumps, capsys):
    _, a, _ = dumps
    status, out, _ = run(["hexdump", a], capsys)
    lines = out.splitlines()
    assert status == 0
    assert lines[0].startswith("00000000  63 6f 6d 70 00 00 00 00  00 10 00 00 00 00 00 00  |comp............|")
    assert lines[0].endswith("magic, (hole), store")
    assert lines[2].endswith("flags[0]") and lines[-1] == "000000e8"
    assert "*" in lines  # repeated poison lines fold like hexdump -C


def test_diff_lists_only_changed_fields(dumps, capsys):
    _, a, b = dumps
    status, out, _ = run(["diff", a, b], capsys)
    lines = out.splitlines()
    assert status == 1 and len(lines) == 2  # 1: they differ, as diff(1)
    assert lines[0].split()[:2] == ["32", "flags[0]"] and "-> 0x00000001 (MAY_LEAVE)" in lines[0]
    assert "memories[0]" in lines[1] and "(unset (debug poison)) -> 0x000000000000bee0" in lines[1]
    status, out, _ = run(["diff", a, b, "--json"], capsys)
    changes = json.loads(out)["changes"]
    assert [c["field"] for c in changes] == ["flags[0]", "memories[0]"]
    assert changes[1]["old"]["value"] == "0xdeaddeadbeefbeef" and changes[1]["new"]["value"] == "0x000000000000bee0"
    status, out, _ = run(["diff", a, a], capsys)
    assert status == 0 and out == "no differences\n"


def test_diff_reports_padding_and_rejects_different_layouts(dumps, tmp_path, capsys):
    inst, a, _ = dumps
    inst.memory[5] = 1
    c = inst.dump(tmp_path / "c.bin")
    _, out, _ = run(["diff", a, c], capsys)
    assert "padding bytes 5..5 differ" in out
    other = OwnedComponentInstance(Component(num_lowerings=1), (1, 2)).dump(tmp_path / "o.bin")
    status, _, err = run(["diff", a, other], capsys)
    assert status == 2 and "different layouts" in err and err.count("\n") == 1


@pytest.mark.parametrize("prepare, argv_extra, needle", [
    (lambda p: p.write_bytes(p.read_bytes()[:-3]), [], "229 bytes, but the layout"),
    (lambda p: p.write_bytes(p.read_bytes() + b"\0" * 8), [], "too long (padded?)"),
    (lambda p: p.write_bytes(b"core" + p.read_bytes()[4:]), [], "a core module's VMContext magic"),
    (lambda p: p.write_bytes(os.urandom(232)), [], "bad magic"),
    (lambda p: None, ["--ptr-size", "5"], "pointer size 5 is not supported"),
    (lambda p: None, ["--lowerings", "x"], "expected an int, got 'x'"),
])
@pytest.mark.parametrize("command", ["decode", "hexdump"])
def test_bad_dumps_one_line_exit_2(dumps, capsys, prepare, argv_extra, needle, command):
    _, a, _ = dumps
    prepare(pathlib.Path(a))
    status, out, err = run([command, a, *argv_extra], capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_force_decodes_a_bad_magic_with_an_anomaly(dumps, capsys):
    _, a, _ = dumps
    with open(a, "r+b") as f:
        f.write(b"core")
    status, out, _ = run(["decode", a, "--force"], capsys)
    assert status == 0 and "BAD MAGIC" in out and "anomalies: 1" in out


def test_infer_finds_the_shape(tmp_path, capsys):
    inst = OwnedComponentInstance(Component(num_runtime_component_instances=3, num_always_trap=2), (1, 2),
                                  ptr=4, byte_order="big")
    path = tmp_path / "x.bin"
    path.write_bytes(inst.to_bytes())  # no sidecar: infer needs none
    status, out, _ = run(["infer", path, "--ptr-size", "4", "--byte-order", "big", "--wasmtime", "seed"], capsys)
    assert status == 0
    assert out.splitlines() == [
        f"{inst.offsets.size_of_vmctx()} bytes, ptr_size=4, big-endian, debug-initialized: 1 release layout fits",
        "seed (commit 97894bc65e): unambiguous",
        "  --lowerings 0 --memories 0 --reallocs 0 --post-returns 0 --instances 3 --always-trap 2",
    ]


def test_infer_says_when_ambiguous_and_known_counts_narrow(dumps, capsys):
    _, a, _ = dumps
    status, out, _ = run(["infer", a, "--ptr-size", "8", "--limit", "2"], capsys)
    assert status == 0
    assert "seed (commit 97894bc65e): ambiguous: 125 candidate shapes, most plausible first" in out
    assert "  ... 123 more (raise --limit or give known counts to narrow them)" in out
    status, out, _ = run(["infer", a, "--ptr-size", "8", "--json", "--limit", "500"], capsys)
    doc = json.loads(out)
    seed = next(r for r in doc["releases"] if r["layout"] == "seed")
    assert doc["schema_version"] == SCHEMA_VERSION and seed["candidates"] == 125 == len(seed["shapes"]) == seed["listed"]
    assert SAMPLE.counts() in [s["counts"] for s in seed["shapes"]]
    costs = [s["cost"] for s in seed["shapes"]]
    assert costs == sorted(costs)
    known = ["--lowerings", "3", "--always-trap", "1", "--memories", "1", "--reallocs", "1"]
    status, out, _ = run(["infer", a, "--no-sidecar", "--ptr-size", "8", "--wasmtime", "seed", *known], capsys)
    assert status == 0 and out.splitlines()[1:] == [
        "seed (commit 97894bc65e): unambiguous",
        "  --lowerings 3 --memories 1 --reallocs 1 --post-returns 1 --instances 2 --always-trap 1"]


def test_infer_takes_counts_of_any_release_and_exits_1_when_nothing_fits(dumps, capsys):
    _, a, _ = dumps
    status, out, _ = run(["infer", a, "--no-sidecar", "--ptr-size", "8", "--trampolines", "7"], capsys)
    assert status == 1 and out.endswith("no release layout has a shape that fits\n")
    status, out, err = run(["infer", a, "--ptr-size", "8", "--wasmtime", "seed", "--trampolines", "7"], capsys)
    assert status == 2 and "unrecognized arguments: --trampolines" in err


def test_infer_rejects_garbage(tmp_path, capsys):
    path = tmp_path / "g.bin"
    path.write_bytes(b"\x01\x02\x03\x04" * 10)
    status, _, err = run(["infer", path, "--ptr-size", "8"], capsys)
    assert status == 2 and "bad magic" in err and err.count("\n") == 1


# -- the CLI words the library's errors with its options (cli._phrase); the library names arguments ----------


def test_a_dump_without_sidecar_or_layout_options_names_the_options(dumps, capsys):
    _, a, _ = dumps
    os.unlink(f"{a}.json")
    with pytest.raises(DumpError) as e:
        load_dump(a)
    assert e.value.missing == ("counts", "ptr_size") and e.value.path == str(a) and "--" not in str(e.value)
    status, _, err = run(["decode", a], capsys)
    assert err == (f"vmctx-emu decode: error: {a}: no sidecar {a}.json and no component counts or pointer size "
                   "given: pass them (CLI: --ptr-size and the count options)\n")


def test_a_bad_magic_says_force_reads_it_anyway(dumps, capsys):
    _, a, _ = dumps
    with open(a, "r+b") as f:
        f.write(b"core")
    with pytest.raises(BadMagicError) as e:
        load_dump(a)
    assert e.value.found == b"core" and e.value.path == str(a)
    assert str(e.value).endswith("(check_magic=False reads it anyway)")
    status, _, err = run(["decode", a], capsys)
    assert status == 2 and err.startswith(f"vmctx-emu decode: error: {a}: bad magic")
    assert err.endswith("(--force reads it anyway)\n")


def test_infer_asks_for_the_shared_count_by_its_option(tmp_path, capsys):
    inst = OwnedComponentInstance(Component(num_always_trap=20_000), (1, 2), ptr=8)
    for i in range(20_000):
        inst.set_always_trap(i, 0x9000 + i, i)
    path = tmp_path / "many.bin"
    path.write_bytes(inst.to_bytes())
    status, _, err = run(["infer", str(path), "--ptr-size", "8"], capsys)
    assert status == 2 and err.startswith("vmctx-emu infer: error: too many candidates: seed")
    assert err.endswith("give it (--lowerings N)\n") and "counts=" not in err


# infer and the dump's sidecar (issue 19) ----------------------------------------------------------------

def _pair(tmp_path, name="x.bin", sidecar=True, **kwargs):
    """An emulated 32-bit big-endian context at a known address, one lowering set: dumped with its sidecar
    (and optionally without it); `kwargs` go to OwnedComponentInstance."""
    kwargs = dict(dict(ptr=4, byte_order="big", address=0x7F12_3450), **kwargs)
    with OwnedComponentInstance(Component(num_lowerings=2, num_runtime_component_instances=1), (1, 2),
                                **kwargs) as inst:
        inst.set_lowering(0, VMLowering(callee=0x1000, data=0x2000), 0x3000, 5)
        if sidecar:
            return inst.dump(tmp_path / name)
        (tmp_path / name).write_bytes(inst.to_bytes())
        return tmp_path / name


SIDE = "/x.bin.json (seed): "  # after the sidecar's path


@pytest.mark.parametrize("extra, status, needles, absent", [
    # the sidecar's pointer size, byte order, address and release: no option needed
    ([], 0, ["72 bytes, ptr_size=4, big-endian, debug-initialized: 1 release layout fits",
             SIDE + "took ptr_size 4, byte_order big, address 0x7f123450, wasmtime seed; its shape (--lowerings 2 "
                    "--memories 0 --reallocs 0 --post-returns 0 --instances 1 --always-trap 0) fits, past the listed "
                    "candidates", "seed (commit 97894bc65e): ambiguous: 22 candidate shapes"], ["L11"]),
    (["--limit", "100"], 0, [SIDE + "took ptr_size 4, byte_order big, address 0x7f123450, wasmtime seed; its shape "
                             "is candidate "], ["past the listed"]),
    # options win, one by one; an address is taken only for the sidecar's pointer size
    (["--ptr-size", "8"], 1, ["ptr_size=8", SIDE + "took byte_order big, wasmtime seed; its shape (--lowerings 2 "
                              "--memories 0 --reallocs 0 --post-returns 0 --instances 1 --always-trap 0) does not fit"],
     ["address"]),
    (["--address", "0x10"], 1, [SIDE + "took ptr_size 4, byte_order big, wasmtime seed; its shape (--lowerings 2 "
                                "--memories 0 --reallocs 0 --post-returns 0 --instances 1 --always-trap 0) does not "
                                "fit"], ["0x7f123450"]),
    # --wasmtime searches another release: the sidecar's shape is not judged
    (["--wasmtime", "50"], 1, [SIDE + "took ptr_size 4, byte_order big, address 0x7f123450; its shape (seed: "
                               "--lowerings 2 --memories 0 --reallocs 0 --post-returns 0 --instances 1 "
                               "--always-trap 0) was not checked"], ["seed (commit"]),
    # counts are a claim: every shape is still searched, and a count option that contradicts it is a constraint
    (["--lowerings", "2", "--instances", "1"], 0, ["its shape is candidate 1 of 1", "unambiguous"], []),
    (["--lowerings", "1"], 0, ["does not fit (the dump, or the count options given)"], []),
    (["--no-sidecar", "--ptr-size", "4", "--byte-order", "big"], 0, ["ptr_size=4, big-endian"], ["sidecar"]),
])
def test_infer_reads_the_sidecar(tmp_path, capsys, extra, status, needles, absent):
    path = _pair(tmp_path)
    got, out, err = run(["infer", path, *extra], capsys)
    assert (got, err) == (status, ""), (out, err)
    for needle in needles:
        assert needle in out, out
    for needle in absent:
        assert needle not in out, out


def test_infer_takes_a_release_build_from_the_sidecar_and_says_so_in_json(tmp_path, capsys):
    path = _pair(tmp_path, debug_assertions=False)
    status, out, _ = run(["infer", path, "--json", "--limit", "100"], capsys)
    doc = json.loads(out)
    assert status == 0 and doc["debug_assertions"] is False and doc["ptr_size"] == 4
    assert doc["sidecar"]["taken"] == {"ptr_size": 4, "byte_order": "big", "address": "0x7f123450",
                                       "debug_assertions": False, "wasmtime": "seed"}
    assert doc["sidecar"]["fits"] is True and doc["sidecar"]["rank"] >= 1 and doc["sidecar"]["checked"] is True
    assert [r["layout"] for r in doc["releases"]] == ["seed"]
    listed = [s["counts"] for s in doc["releases"][0]["shapes"]]
    assert listed[doc["sidecar"]["rank"] - 1] == json.loads((tmp_path / "x.bin.json").read_text())["counts"]
    status, out, _ = run(["infer", path, "--json", "--limit", "1"], capsys)  # past the listed: fits, no rank
    assert (json.loads(out)["sidecar"]["fits"], json.loads(out)["sidecar"]["rank"]) == (True, None)
    status, out, _ = run(["infer", path, "--no-sidecar", "--ptr-size", "4", "--byte-order", "big", "--json"], capsys)
    assert "sidecar" not in json.loads(out) and json.loads(out)["debug_assertions"] is True


def test_infer_without_sidecar_defaults_to_the_host_like_layout(tmp_path, capsys):
    with OwnedComponentInstance(SAMPLE, (1, 2)) as inst:
        path = tmp_path / "raw.bin"
        path.write_bytes(inst.to_bytes())
    default = run(["infer", path, "--lowerings", "3"], capsys)
    host = run(["infer", path, "--lowerings", "3", "--ptr-size", "host"], capsys)
    assert default == host and default[0] == 0 and "sidecar" not in default[1]
    assert f"ptr_size={int(HostPtr)}, {sys.byteorder}-endian" in default[1]
