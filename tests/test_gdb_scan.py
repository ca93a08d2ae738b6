"""`vmctx scan` in gdb: the scan engine on the inferior, attached live and loaded from a core."""

import json
import platform
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("wasmtime")
if sys.platform != "linux" or platform.machine() != "x86_64":
    pytest.skip("reads /proc and x86-64 cores", allow_module_level=True)

from cores import gcore  # noqa: E402


@pytest.fixture(scope="module")
def gdb():
    exe = shutil.which("gdb")
    if exe is None:
        pytest.skip("gdb is not installed and could not be (make test installs the Debian package gdb)")
    return exe


@pytest.fixture(scope="module")
def script():
    return subprocess.run([sys.executable, "-m", "vmctx_emu.gdb"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def example():
    """A real Wasmtime process with one component instance (the scan example)."""
    proc = subprocess.Popen([sys.executable, "-m", "vmctx_emu.live.example", "--seconds", "300"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"pid {proc.pid} ready"), line
        yield proc
    finally:
        proc.kill()
        proc.wait()


def run_gdb(gdb, script, *commands, attach=None):
    argv = [gdb, "-batch", "-nx", "-ex", f"source {script}"]
    if attach is not None:
        argv[2:2] = ["-p", str(attach)]
    for command in commands:
        argv += ["-ex", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def contexts_of(stdout):
    """The JSON document `vmctx scan --json` wrote, among gdb's own lines."""
    return json.loads(stdout[stdout.index("{\n") : stdout.rindex("}") + 1])


def test_scan_an_attached_process_and_its_core(gdb, script, example, tmp_path):
    from vmctx_emu.live import scan

    expected = [(c.address, c.counts) for c in scan(example.pid).contexts]
    assert len(expected) == 1
    live = run_gdb(gdb, script, "vmctx scan --json", attach=example.pid)
    if "ptrace: Operation not permitted" in live.stderr:
        pytest.skip("gdb may not attach here (ptrace not permitted)")
    doc = contexts_of(live.stdout)
    assert doc["source"] == f"pid {example.pid}" and doc["wasmtime"]["version"] == "50.0.0"
    assert [(int(c["layout"]["address"], 16), c["layout"]["counts"]) for c in doc["contexts"]] == expected

    core = gcore(example.pid, str(tmp_path))
    text = run_gdb(gdb, script, f"core {core}", "vmctx scan --records")
    assert f"core {core}: Wasmtime 50.0.0 (version string in " in text.stdout, text.stderr
    assert "shape: VMComponentOffsets stored at ctx-188" in text.stdout and "this context" in text.stdout
    summary = run_gdb(gdb, script, f"core {core}", "vmctx scan").stdout
    assert ": LIVE, Wasmtime 50.0.0, layout L11" in summary and "  instance 0: MAY_LEAVE (0x1): at rest" in summary
    assert "  VMStoreContext 0x" in summary and ": not in wasm: " in summary


@pytest.mark.parametrize("command, message", [
    ("vmctx scan", "vmctx scan: no process and no core file: run or attach to a Wasmtime process, "
                   "or load its core with `core FILE`"),
    ("vmctx scan --bogus", "vmctx scan: unexpected '--bogus'; usage: vmctx scan [--wasmtime VERSION] [--all] "
                           "[--exe FILE] [--sysroot DIR] [--records | --json]"),
    ("vmctx scan --exe", "vmctx scan: a value is needed after '--exe'; usage: vmctx scan [--wasmtime VERSION] "
                         "[--all] [--exe FILE] [--sysroot DIR] [--records | --json]"),
])
def test_scan_without_an_inferior_or_with_bad_options(gdb, script, command, message):
    proc = run_gdb(gdb, script, command)
    assert proc.stderr.strip().splitlines()[-1] == message


def test_an_unsupported_release_is_one_line_from_gdb(gdb, script, example):
    proc = run_gdb(gdb, script, "vmctx scan --wasmtime 0.39.0", attach=example.pid)
    if "ptrace: Operation not permitted" in proc.stderr:
        pytest.skip("gdb may not attach here (ptrace not permitted)")
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("vmctx-emu: error: argument --wasmtime: Wasmtime 0.39.0 is not a supported release "
                           "(newest known release: "), last
    assert last.endswith("; `vmctx-emu versions` lists every release"), last
    assert "Traceback" not in proc.stderr and "vmctx scan" not in proc.stdout
