"""Captures you can keep, without a real Wasmtime: the directory written as one unit and bounded, the files and
manifest of many contexts, a captured dump's origin in `decode`/`diff`/`hexdump`, `decode --release`, and
layout options checked against a sidecar. `test_capture_live.py` captures real Wasmtime processes and cores."""

import functools
import gc
import json
import os
import re

import pytest
from conftest import run_cli as run

from vmctx_emu import OwnedComponentInstance, load_dump, wasmtime_layout
from vmctx_emu.capture import save_capture
from vmctx_emu.describe import SCHEMA_VERSION
from vmctx_emu.describe.capture import MANIFEST, REACHED, capture_files, context_file
from vmctx_emu.dumps import files
from vmctx_emu.dumps.files import check_free_directory, write_directory
from vmctx_emu.dumps.sidecar import sidecar_text
from vmctx_emu.errors import ArgumentValueError, CaptureError, DumpError, SidecarConflictError
from vmctx_emu.live.capture import read_capture
from vmctx_emu.live.liveness import Liveness
from vmctx_emu.live.scanner import LiveContext, ScanResult

# The example's shape (`vmctx_emu.live.example`) and one memory and one realloc more: every kind followed.
COUNTS = {"num_lowerings": 1, "num_runtime_component_instances": 1, "num_trampolines": 1,
          "num_runtime_memories": 1, "num_runtime_reallocs": 1}
STORE, MEMORY, REALLOC = 0x5000_0000, 0x5000_1000, 0x5000_2000


@pytest.fixture(scope="module", autouse=True)
def _collect_garbage():
    """The many-context tests leave thousands of objects behind: collected here, so a later test that scans
    this very process twice (test_initialization_live) sees no garbage collection free a store in between."""
    yield
    gc.collect()


# -- the directory, as one unit ------------------------------------------------------------------------

def test_a_directory_is_written_whole_into_a_new_or_empty_one(tmp_path):
    assert write_directory(tmp_path / "new", [("a", b"12"), ("b", b"345")], 5) == 5
    assert sorted(os.listdir(tmp_path / "new")) == ["a", "b"] and (tmp_path / "new" / "b").read_bytes() == b"345"
    (tmp_path / "empty").mkdir()
    write_directory(tmp_path / "empty", [("a", b"x")], 1)
    assert os.listdir(tmp_path / "empty") == ["a"]
    assert sorted(os.listdir(tmp_path)) == ["empty", "new"]  # no staging directory left


def test_an_occupied_directory_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("mine")
    (tmp_path / "file").write_text("a file")
    for name, reason in (("full", "not empty"), ("file", "not a directory")):
        called = []
        with pytest.raises(CaptureError) as e:
            write_directory(tmp_path / name, [("a", b"x")], 10, before=lambda *a: called.append(a))
        assert (e.value.reason, e.value.directory, called) == (reason, str(tmp_path / name), [])
        with pytest.raises(CaptureError, match=reason):
            check_free_directory(tmp_path / name)
    assert (tmp_path / "full" / "keep").read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["file", "full"]


def test_the_size_is_bounded_and_said_before_writing(tmp_path):
    with pytest.raises(CaptureError) as e:
        write_directory(tmp_path / "big", [("a", b"x" * 6), ("b", b"y" * 5)], 10)
    assert (e.value.size, e.value.limit, e.value.reason) == (11, 10, "too large") and "11 bytes" in str(e.value)
    assert os.listdir(tmp_path) == []
    said = []
    write_directory(tmp_path / "ok", [("a", b"x" * 6), ("b", b"y" * 4)], 10, before=lambda *a: said.append(a))
    assert said == [(10, 2)]


def test_a_failed_write_leaves_no_directory_and_no_staging(tmp_path, monkeypatch):
    real = files._write_file
    written = []

    def fail_second(path, data):
        if written:
            raise OSError(28, "No space left on device")
        written.append(path)
        real(path, data)

    monkeypatch.setattr(files, "_write_file", fail_second)
    with pytest.raises(CaptureError, match="No space left on device; nothing was written"):
        write_directory(tmp_path / "cap", [("a", b"1"), ("b", b"2")], 10)
    assert written and os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_file_names_are_plain(tmp_path, name):
    with pytest.raises(ArgumentValueError):
        write_directory(tmp_path / "x", [(name, b"")], 10)
    assert os.listdir(tmp_path) == []


# -- a capture of many contexts ---------------------------------------------------------------------------

class _Memory:
    """A target's memory for `read_capture`: the words it holds, anything else unreadable."""

    def __init__(self, words):
        self.words = words
        self.reads = []

    def read(self, address, size):
        from vmctx_emu.errors import UnreadableMemoryError

        self.reads.append((address, size))
        if address not in self.words:
            raise UnreadableMemoryError(f"{address:#x} is not mapped", address=address, size=size)
        return self.words[address][:size].ljust(size, b"\0")


@functools.lru_cache(maxsize=None)
def _initialized():
    """A release-build v50 context of COUNTS as `initialize_vmctx` leaves it (one, for every context made)."""
    with OwnedComponentInstance(COUNTS, wasmtime="50", debug_assertions=False,
                                header={"builtins": 0x1000, "store_context": 0}) as inst:
        return inst.to_bytes()


def _context_bytes(address, store=STORE):
    o = wasmtime_layout("50").offsets(8, **COUNTS)
    data = bytearray(_initialized())
    for name, value in (("store_context", store), ("memories", MEMORY), ("reallocs", REALLOC)):
        at = o.region(name).offset
        data[at : at + 8] = value.to_bytes(8, "little")
    vmctx = o.region("trampoline_func_refs").offset + 24
    data[vmctx : vmctx + 8] = address.to_bytes(8, "little")
    return bytes(data)


def scan_result(n, stores=1):
    """A `ScanResult` as a scan of `n` contexts of COUNTS gives it, their stores shared `n // stores` each."""
    layout = wasmtime_layout("50")
    contexts = []
    for i in range(n):
        address = 0x6000_0000 + 0x200 * i
        ctx = LiveContext(address, "50.0.0", layout, counts=dict.fromkeys(layout.count_names, 0) | COUNTS,
                          shape_from="VMComponentOffsets stored at ctx-188", image="libwasmtime.so",
                          liveness=Liveness("live", ["allocator: in use", "self pointer: holds the context's address"]))
        ctx.data, ctx.release, ctx.source = _context_bytes(address, STORE + 0x100 * (i % stores)), "50.0.0", "pid 7"
        contexts.append(ctx)
    return ScanResult("pid 7", "50.0.0", "version string in libwasmtime.so", contexts, ["a note"], freed=3, live=True)


def memory(stores=1):
    words = {STORE + 0x100 * k: bytes(range(144)) for k in range(stores)}
    words[MEMORY] = (0x7000_0000).to_bytes(8, "little") + (65536).to_bytes(8, "little")
    words[REALLOC] = (0x1234).to_bytes(8, "little") + bytes(24)  # a VMFuncRef: array_call 0x1234, the rest 0
    return _Memory(words)


def test_each_structure_is_read_once_however_many_contexts_reach_it():
    src = memory(stores=2)
    capture = read_capture(scan_result(10, stores=2), src)
    kinds = sorted((r.kind, r.address) for r in capture.reached)
    assert kinds == sorted([("VMStoreContext", STORE), ("VMStoreContext", STORE + 0x100),
                            ("VMMemoryDefinition", MEMORY), ("VMFuncRef", REALLOC)])
    assert len(src.reads) == 4 and sorted(set(src.reads)) == sorted(src.reads)
    assert [label for label, _ in capture.contexts[0].reaches] == ["store_context", "memories[0]",
                                                                   "reallocs[0]"]
    memory_def = next(r for r in capture.reached if r.kind == "VMMemoryDefinition")
    assert memory_def.fields == {"base": 0x7000_0000, "current_length": 65536} and memory_def.size == 16
    func_ref = next(r for r in capture.reached if r.kind == "VMFuncRef")
    assert func_ref.fields["array_call"] == 0x1234 and func_ref.size == 32


def test_an_unreadable_structure_is_listed_with_why():
    src = memory()
    del src.words[MEMORY]
    capture = read_capture(scan_result(2), src)
    gone = next(r for r in capture.reached if r.kind == "VMMemoryDefinition")
    assert gone.data is None and "not mapped" in gone.why
    manifest = json.loads(dict(capture_files(capture))[MANIFEST])
    entry = next(s for s in manifest["reached"]["structures"] if s["kind"] == "VMMemoryDefinition")
    assert "not mapped" in entry["unreadable"] and "offset" not in entry


def test_a_capture_of_2000_contexts_takes_under_2_kib_each(tmp_path):
    """`scan --save` of the README's 2,000-instance example wrote 3.4 MB; a context's pair and its share of
    the manifest must stay under 2 KiB, so a capture of 2,000 stays within 4 MB (the issue allows 10)."""
    result = scan_result(2000, stores=20)
    capture = read_capture(result, memory(stores=20))
    said = []
    count, total = save_capture(type("R", (), {"capture": capture})(), tmp_path / "cap",
                                before=lambda *a: said.append(a))
    assert said == [(total, count)] and count == 2 * 2000 + 2
    assert total < 2000 * 2048, total
    assert sum(p.stat().st_size for p in (tmp_path / "cap").iterdir()) == total
    manifest = json.loads((tmp_path / "cap" / MANIFEST).read_text())
    assert len(manifest["contexts"]) == 2000 and len(manifest["reached"]["structures"]) == 22
    assert (tmp_path / "cap" / REACHED).stat().st_size == 20 * 144 + 16 + 32


def test_the_limit_refuses_a_capture_before_writing(tmp_path):
    capture = read_capture(scan_result(50), memory())
    with pytest.raises(CaptureError, match="more than the 1,000 bytes allowed"):
        save_capture(type("R", (), {"capture": capture})(), tmp_path / "cap", limit=1000)
    assert not (tmp_path / "cap").exists()
    with pytest.raises(ArgumentValueError, match=r"scan\(\.\.\., capture=True\)"):
        save_capture(scan_result(1), tmp_path / "cap")


def test_the_manifest_lists_everything(tmp_path):
    result = scan_result(3)
    capture = read_capture(result, memory())
    written = dict(capture_files(capture, captured_at="2026-01-01T00:00:00Z"))
    manifest = json.loads(written[MANIFEST])
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["format"] == "vmctx-emu capture"
    assert (manifest["source"], manifest["live"], manifest["notes"]) == ("pid 7", True, ["a note"])
    assert manifest["wasmtime"] == {"version": "50.0.0", "from": "version string in libwasmtime.so"}
    assert manifest["liveness"] == {"listed": 3, "freed": 3}
    first = manifest["contexts"][0]
    assert first["file"] == context_file(result.contexts[0]) == "ctx-0x60000000.bin"
    assert (first["address"], first["state"], first["wasmtime"]) == ("0x60000000", "live", "50.0.0")
    assert first["reaches"][0] == {"field": "store_context", "kind": "VMStoreContext", "address": hex(STORE)}
    reached = written[REACHED]
    for entry in manifest["reached"]["structures"]:
        assert len(reached[entry["offset"] : entry["offset"] + entry["size"]]) == entry["size"]
    store = next(s for s in manifest["reached"]["structures"] if s["kind"] == "VMStoreContext")
    assert reached[store["offset"] : store["offset"] + 144] == bytes(range(144))
    assert set(written) == {MANIFEST, REACHED} | {f"ctx-{c.address:#x}.bin{e}" for c in result.contexts
                                                  for e in ("", ".json")}


# -- a captured dump read back ------------------------------------------------------------------------

@pytest.fixture
def captured(tmp_path):
    """A capture of three contexts written to tmp_path/cap; (the result, the directory)."""
    result = scan_result(3)
    result.capture = read_capture(result, memory())
    save_capture(result, tmp_path / "cap")
    return result, tmp_path / "cap"


def test_a_captured_dump_loads_with_its_origin(captured):
    result, directory = captured
    ctx = load_dump(directory / context_file(result.contexts[1]))
    assert ctx.vmctx == result.contexts[1].address and ctx.wasmtime == "50.0.0" and not ctx.debug_assertions
    assert ctx.offsets.component.counts() == result.contexts[1].counts
    assert ctx.origin["source"] == "pid 7" and ctx.origin["liveness"]["state"] == "live"
    assert ctx.origin["wasmtime_from"] == "version string in libwasmtime.so" and ctx.origin["capture"] == MANIFEST
    assert ctx.to_bytes() == result.contexts[1].data


def test_decode_hexdump_and_diff_say_where_a_capture_came_from(captured, capsys):
    result, directory = captured
    a, b = (directory / context_file(c) for c in result.contexts[:2])
    status, out, err = run(["decode", a, "--strict"], capsys)
    lines = out.splitlines()
    assert (status, err) == (0, "") and lines[-1] == "anomalies: none"
    assert lines[0] == ("captured from pid 7 at 0x60000000: LIVE, Wasmtime 50.0.0 (version string in "
                        "libwasmtime.so)")
    assert lines[1:4] == ["  allocator: in use", "  self pointer: holds the context's address",
                          "  shape: VMComponentOffsets stored at ctx-188"]
    assert lines[4].startswith("VMComponentContext at 0x60000000: ptr_size=8, little-endian")
    status, out, _ = run(["decode", a, "--json"], capsys)
    doc = json.loads(out)
    assert status == 0 and doc["anomalies"] == [] and doc["layout"]["wasmtime"] == "50.0.0"
    assert doc["origin"]["address"] == "0x60000000" and doc["origin"]["source"] == "pid 7"
    assert doc["origin"]["liveness"] == {"state": "live", "evidence": ["allocator: in use",
                                                                       "self pointer: holds the context's address"]}
    status, out, _ = run(["hexdump", a], capsys)
    lines = out.splitlines()
    assert status == 0 and lines[0].startswith("captured from pid 7 at 0x60000000: LIVE")
    assert lines[1].startswith("00000000  63 6f 6d 70")
    status, out, _ = run(["diff", a, b], capsys)
    lines = out.splitlines()
    assert status == 1 and lines[0].startswith(f"--- {a}: captured from pid 7 at 0x60000000: LIVE")
    assert lines[1].startswith(f"+++ {b}: captured from pid 7 at 0x60000200: LIVE")
    assert "trampoline_func_refs[0].vmctx" in lines[2]
    status, out, _ = run(["diff", a, b, "--json"], capsys)
    doc = json.loads(out)
    assert status == 1 and doc["origins"]["old"]["address"] == "0x60000000"
    assert doc["origins"]["new"]["address"] == "0x60000200" and doc["origins"]["new"]["source"] == "pid 7"


def test_a_dump_without_origin_prints_as_before(dumps, capsys):
    _, a, b = dumps
    for argv in (["decode", a], ["hexdump", a], ["diff", a, b]):
        status, out, _ = run(argv, capsys)
        assert "captured from" not in out and not out.startswith("---"), argv
    status, out, _ = run(["decode", a, "--json"], capsys)
    assert "origin" not in json.loads(out)
    status, out, _ = run(["diff", a, b, "--json"], capsys)
    assert "origins" not in json.loads(out)


def test_a_guessed_shape_stays_an_anomaly_in_the_capture(tmp_path, capsys):
    result = scan_result(1)
    result.contexts[0].guessed = "2 shapes fit; the first is decoded"
    result.capture = read_capture(result, memory())
    save_capture(result, tmp_path / "cap")
    status, out, _ = run(["decode", tmp_path / "cap" / context_file(result.contexts[0]), "--strict"], capsys)
    assert status == 1 and "@0: 2 shapes fit; the first is decoded" in out


@pytest.mark.parametrize("origin, needle", [
    ({"source": 7}, "origin: source 7 is not the target"),
    ({"liveness": {"state": "live", "evidence": "x"}}, "origin: liveness"),
    ({"where": "x"}, "origin: unknown key(s) 'where'"),
    ("pid 7", "origin \"pid 7\" is not an object"),
])
def test_a_bad_origin_is_refused(tmp_path, origin, needle):
    path = OwnedComponentInstance({"num_runtime_component_instances": 1}, (1, 2)).dump(tmp_path / "c.bin")
    meta = json.loads((tmp_path / "c.bin.json").read_text())
    meta["origin"] = origin
    (tmp_path / "c.bin.json").write_text(json.dumps(meta))
    with pytest.raises(DumpError, match=re.escape(needle)):
        load_dump(path)


# -- options and the sidecar ----------------------------------------------------------------------------

@pytest.fixture
def v50(tmp_path):
    """A release-build v50 dump with a sidecar (one trampoline, one instance), and the same bytes without one."""
    inst = OwnedComponentInstance({"num_runtime_component_instances": 1, "num_trampolines": 1}, wasmtime="50",
                                  debug_assertions=False, header={"builtins": 0x1000, "store_context": 0x2000})
    path = inst.dump(tmp_path / "v50.bin")
    raw = tmp_path / "raw.bin"
    raw.write_bytes(inst.to_bytes())
    return path, raw


def test_count_options_are_the_sidecar_release_s_without_wasmtime(v50, capsys):
    path, _ = v50
    status, out, err = run(["decode", path, "--trampolines", "1", "--instances", "1"], capsys)
    assert (status, err) == (0, "") and "trampoline_func_refs[0].array_call" in out
    status, out, err = run(["hexdump", path, "--trampolines", "1"], capsys)
    assert (status, err) == (0, "")
    status, _, err = run(["diff", path, path, "--ptr-size", "8", "--trampolines", "1"], capsys)
    assert (status, err) == (0, "")


@pytest.mark.parametrize("options, needle", [
    (["--trampolines", "2"], "--trampolines 2 contradicts its sidecar {side}, which records num_trampolines 1"),
    (["--lowerings", "1"], "--lowerings 1 contradicts its sidecar {side}, which records num_lowerings 0"),
    (["--ptr-size", "4"], "--ptr-size 4 contradicts its sidecar {side}, which records ptr_size 8"),
    (["--byte-order", "big"], "--byte-order big contradicts its sidecar {side}, which records byte_order little"),
    (["--wasmtime", "49"], "--wasmtime 49 contradicts its sidecar {side}, which records wasmtime 50.0.4"),
], ids=lambda x: " ".join(x) if isinstance(x, list) else None)
def test_an_option_that_contradicts_the_sidecar_names_both(v50, options, needle, capsys):
    path, _ = v50
    for command in ("decode", "hexdump", "diff"):
        argv = [command, path, *([path] if command == "diff" else []), *options]
        status, out, err = run(argv, capsys)
        assert (status, out) == (2, ""), argv
        assert err == (f"vmctx-emu {command}: error: {path}: {needle.format(side=f'{path}.json')}: leave the option "
                       "out (the sidecar answers it), or --force to read the dump as the options say\n")


@pytest.mark.parametrize("wasmtime", ["50", "v50.0", "50.0.4"])
def test_a_release_that_names_the_sidecar_s_agrees(v50, wasmtime, capsys):
    path, _ = v50
    status, out, err = run(["decode", path, "--wasmtime", wasmtime, "--ptr-size", "8", "--instances", "1",
                            "--byte-order", "little", "--release"], capsys)
    assert (status, err) == (0, "") and out.splitlines()[-1] == "anomalies: none"


def test_force_lets_the_options_win(v50, capsys):
    path, _ = v50
    status, out, _ = run(["decode", path, "--byte-order", "big", "--force"], capsys)
    assert status == 0 and "bad_magic" not in out and "magic" in out  # read as big-endian, as asked
    status, _, err = run(["decode", path, "--trampolines", "2", "--force"], capsys)
    assert status == 2 and "needs size_of_vmctx()" in err


def test_strict_sidecar_in_python(v50):
    path, _ = v50
    with pytest.raises(SidecarConflictError) as e:
        load_dump(path, counts={"num_trampolines": 2}, strict_sidecar=True)
    assert (e.value.argument, e.value.given, e.value.recorded, e.value.sidecar) == (
        "num_trampolines", 2, 1, f"{path}.json")
    with pytest.raises(SidecarConflictError) as e:
        load_dump(path, debug_assertions=True, strict_sidecar=True)
    assert (e.value.argument, e.value.given, e.value.recorded) == ("debug_assertions", True, False)
    assert load_dump(path, ptr=8, wasmtime="50", strict_sidecar=True).wasmtime == "50.0.4"
    with pytest.raises(DumpError, match="needs size_of_vmctx"):  # without: the arguments win, as before
        load_dump(path, counts={"num_trampolines": 2})


def test_decode_release_expects_no_poison(v50, capsys):
    """A release build leaves unset slots null, not INVALID_PTR: read as a debug dump (the default without a
    sidecar) they are `null_slot` anomalies and --strict fails; with --release there are none."""
    _, raw = v50
    shape = ["--wasmtime", "50", "--ptr-size", "8", "--instances", "1", "--trampolines", "1"]
    status, out, _ = run(["decode", raw, *shape, "--strict"], capsys)
    assert status == 1 and "array_call is null in a debug dump" in out
    status, out, _ = run(["decode", raw, *shape, "--strict", "--release"], capsys)
    assert status == 0 and out.splitlines()[-1] == "anomalies: none"
    assert out.splitlines()[0].endswith(", release")


def test_release_contradicts_a_debug_sidecar(tmp_path, capsys):
    path = OwnedComponentInstance({"num_runtime_component_instances": 1}, (1, 2)).dump(tmp_path / "d.bin")
    status, _, err = run(["decode", path, "--release"], capsys)
    assert status == 2 and err.endswith(f"--release contradicts its sidecar {path}.json, which records a debug "
                                        "build (debug_assertions true): leave the option out (the sidecar answers "
                                        "it), or --force to read the dump as the options say\n")


def test_sidecar_text_keeps_its_shape_without_origin(v50):
    path, _ = v50
    ctx = load_dump(path)
    assert "origin" not in json.loads(sidecar_text(ctx, None)) and ctx.origin is None
