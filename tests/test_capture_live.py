"""`scan --save` against real Wasmtime 50: a child by pid and through a gcore core, read back by `decode`,
`diff` and `hexdump` with no false anomaly, every file checked against the child's memory read directly."""

import json
import os
import platform
import sys
from importlib.metadata import version

import pytest
from conftest import run_cli as run

wasmtime = pytest.importorskip("wasmtime")
if not version("wasmtime").startswith("50."):
    pytest.skip(f"needs wasmtime 50.x, found {version('wasmtime')}", allow_module_level=True)
if sys.platform != "linux" or platform.machine() != "x86_64":
    pytest.skip("reads /proc and x86-64 cores", allow_module_level=True)

from vmctx_emu.capture import save_capture  # noqa: E402
from vmctx_emu.live import scan  # noqa: E402

from children import stores_child  # noqa: E402
from cores import gcore  # noqa: E402
from test_real_wasmtime import LOWER_LIFT, MEMORY_REALLOC_POST_RETURN, NESTED_FUSED_ADAPTER, RESOURCE_DTOR  # noqa: E402

# Each shape in a store of its own, the first three times over: three contexts share one store context. The
# structures reached: 4 store contexts, 2 memories, and func refs of 1 realloc, 3 post-returns, 1 destructor.
SHAPES = [(LOWER_LIFT, ["add"], 3), (MEMORY_REALLOC_POST_RETURN, ["len", "peek"], 1), (RESOURCE_DTOR, ["note"], 1),
          (NESTED_FUSED_ADAPTER, ["log"], 1)]
STORES = len(SHAPES)


@pytest.fixture(scope="module")
def child():
    with stores_child(SHAPES) as proc:
        yield proc


@pytest.fixture(scope="module")
def core(child, tmp_path_factory):
    path = gcore(child.pid, tmp_path_factory.mktemp("core"), "capture")
    yield path
    os.unlink(path)  # a core is large: gone as soon as this module is done with it


def read_memory(pid, address, size):
    """The child's bytes, read here without the package."""
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(address)
        return mem.read(size)


def check_capture(directory, source, pid, capsys):
    """The capture in `directory` of `source`: every context live, its bytes and every structure it reaches
    as the child holds them, each read back by decode, hexdump and diff with its origin and no anomaly."""
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["source"] == source and manifest["wasmtime"]["version"] == "50.0.0"
    contexts = manifest["contexts"]
    assert len(contexts) == sum(copies for _, _, copies in SHAPES) and {c["state"] for c in contexts} == {"live"}
    reached = (directory / "reached.bin").read_bytes()
    structures = manifest["reached"]["structures"]
    by_address = {s["address"]: s for s in structures}
    for s in structures:
        assert reached[s["offset"] : s["offset"] + s["size"]] == read_memory(pid, int(s["address"], 16), s["size"])
    stores = [r for c in contexts for r in c["reaches"] if r["field"] == "store_context"]
    assert len(stores) == len(contexts) and {r["kind"] for r in stores} == {"VMStoreContext"}
    assert sum(s["kind"] == "VMStoreContext" for s in structures) == len({r["address"] for r in stores}) == STORES
    kinds = {s["kind"] for s in structures}
    assert kinds == {"VMStoreContext", "VMMemoryDefinition", "VMFuncRef"}, kinds
    memories = [s for s in structures if s["kind"] == "VMMemoryDefinition"]
    assert all(int(m["fields"]["current_length"], 16) >= 65536 and int(m["fields"]["base"], 16) for m in memories)
    assert {r["field"].split("[")[0] for c in contexts for r in c["reaches"]} == {
        "store_context", "memories", "reallocs", "post_returns", "resource_destructors"}
    assert all(r["address"] in by_address for c in contexts for r in c["reaches"])
    for entry in contexts:
        path = directory / entry["file"]
        address = int(entry["address"], 16)
        assert path.read_bytes() == read_memory(pid, address, path.stat().st_size)
        status, out, err = run(["decode", path, "--strict"], capsys)
        lines = out.splitlines()
        assert (status, err) == (0, ""), out
        assert lines[0].startswith(f"captured from {source} at {entry['address']}: LIVE, Wasmtime 50.0.0 (version "
                                   "string in ")
        assert lines[1].startswith("  allocator: chunk ") and lines[-1] == "anomalies: none"
        status, out, _ = run(["decode", path, "--json"], capsys)
        doc = json.loads(out)
        assert doc["anomalies"] == [] and doc["origin"]["source"] == source
        assert doc["origin"]["address"] == entry["address"] and doc["origin"]["liveness"]["state"] == "live"
        status, out, _ = run(["hexdump", path], capsys)
        assert status == 0 and out.startswith(f"captured from {source} at {entry['address']}: LIVE")
        # The same bytes without their sidecar, as gdb's `dump binary memory` writes them: a release build, so
        # --release with the counts the sidecar records gives no anomaly.
        raw = directory.parent / f"raw-{entry['address']}.bin"
        raw.write_bytes(path.read_bytes())
        side = json.loads((directory / (entry["file"] + ".json")).read_text())
        options = [word for name, n in side["counts"].items() for word in (f"--{_option(name)}", str(n))]
        status, out, _ = run(["decode", raw, "--wasmtime", "50", "--ptr-size", "8", *options, "--release",
                              "--strict"], capsys)
        assert status == 0 and out.splitlines()[-1] == "anomalies: none", out
    first = directory / contexts[0]["file"]
    status, out, _ = run(["diff", first, first], capsys)
    assert status == 0 and out.splitlines()[-1] == "no differences" and out.startswith(f"--- {first}: captured")
    return manifest


def _option(name):
    from vmctx_emu.describe.options import count_option

    return count_option(name)


def test_scan_save_by_pid(child, tmp_path, capsys):
    status, out, err = run(["scan", "--pid", child.pid, "--save", tmp_path / "cap"], capsys)
    assert status == 0 and out.startswith(f"pid {child.pid}: Wasmtime 50.0.0")
    assert err.startswith(f"vmctx-emu scan: saving 6 contexts and the {STORES + 7} structures they reach to "
                          f"{tmp_path / 'cap'}: 14 files, ")
    manifest = check_capture(tmp_path / "cap", f"pid {child.pid}", child.pid, capsys)
    size = sum(p.stat().st_size for p in (tmp_path / "cap").iterdir())
    assert err.endswith(f"14 files, {size:,} bytes\n") and size < 6 * 4096
    assert manifest["live"] is True
    status, _, err = run(["scan", "--pid", child.pid, "--save", tmp_path / "cap"], capsys)  # not twice
    assert status == 2 and "it exists and is not empty (14 entries)" in err


def test_scan_save_of_a_core_matches_the_process(child, core, tmp_path, capsys):
    """The child is idle: its core's capture holds the same bytes, reached the same structures."""
    status, _, err = run(["scan", "--core", core, "--save", tmp_path / "core-cap"], capsys)
    assert status == 0 and "saving 6 contexts" in err
    from_core = check_capture(tmp_path / "core-cap", f"core {core}", child.pid, capsys)
    assert from_core["live"] is False
    result = scan(child.pid, capture=True, decode=False)
    save_capture(result, tmp_path / "pid-cap")
    from_pid = json.loads((tmp_path / "pid-cap" / "manifest.json").read_text())
    assert [c["reaches"] for c in from_core["contexts"]] == [c["reaches"] for c in from_pid["contexts"]]
    assert (tmp_path / "core-cap" / "reached.bin").read_bytes() == (tmp_path / "pid-cap" / "reached.bin").read_bytes()
    name = from_pid["contexts"][1]["file"]
    status, out, _ = run(["diff", tmp_path / "pid-cap" / name, tmp_path / "core-cap" / name], capsys)
    lines = out.splitlines()
    assert status == 0 and lines[-1] == "no differences"
    assert f": captured from pid {child.pid} at " in lines[0] and f": captured from core {core} at " in lines[1]
