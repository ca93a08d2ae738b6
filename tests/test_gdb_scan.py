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

from conftest import cli_text  # noqa: E402
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


def test_vmctx_address_reads_release_and_shape_like_scan(gdb, script, example, example_context, tmp_path):
    """Regression: `vmctx ADDR` on a live v50 process needed every count typed and decoded as the seed."""
    address = example_context
    records = cli_text("scan", "--pid", example.pid, "--context", hex(address), "--records")
    live = run_gdb(gdb, script, f"vmctx {address:#x}", attach=example.pid)
    if "ptrace: Operation not permitted" in live.stderr:
        pytest.skip("gdb may not attach here (ptrace not permitted)")
    assert records in live.stdout, live.stderr
    assert f"VMComponentContext at {address:#x}: ptr_size=8, little-endian, 96 bytes, release" in records
    assert "trampoline_func_refs[0].vmctx      0x" in records and "this context" in records

    summary = run_gdb(gdb, script, f"vmctx (char *){address:#x} --summary", attach=example.pid).stdout
    assert f"VMComponentContext at {address:#x}: LIVE, Wasmtime 50.0.0, layout L11" in summary
    assert "  shape: --wasmtime 50.0.0 --lowerings 1 --instances 1 --trampolines 1\n" in summary

    core = gcore(example.pid, str(tmp_path))
    text = run_gdb(gdb, script, f"core {core}", f"vmctx {address:#x}")
    assert cli_text("scan", "--core", core, "--context", hex(address), "--records") in text.stdout, text.stderr


def test_vmctx_address_counts_given_win_with_a_note(gdb, script, example, example_context):
    address = example_context
    proc = run_gdb(gdb, script, f"vmctx {address:#x} --lowerings 1 --instances 1 --trampolines 2",
                   f"vmctx {address:#x} --lowerings 1 --instances 1 --trampolines 1",
                   f"vmctx {address:#x} --wasmtime 21 --lowerings 1", attach=example.pid)
    if "ptrace: Operation not permitted" in proc.stderr:
        pytest.skip("gdb may not attach here (ptrace not permitted)")
    # The release is the target's (no --wasmtime typed): 50.0.0's count options are accepted.
    assert f"VMComponentContext at {address:#x}: ptr_size=8, little-endian, 128 bytes" in proc.stdout, proc.stderr
    assert f"VMComponentContext at {address:#x}: ptr_size=8, little-endian, 96 bytes" in proc.stdout
    notes = [line for line in proc.stderr.splitlines() if line.startswith("vmctx: ")]
    assert notes == [
        f"vmctx: the counts given differ from the VMComponentOffsets copy stored before {address:#x}: "
        "num_trampolines 2 (stored 1); decoding with the counts given (the stored shape: --wasmtime 50.0.0 "
        "--lowerings 1 --instances 1 --trampolines 1)",
        f"vmctx: the release given is layout L4 (v12.0.0 - v21.0.2); the target's context at {address:#x} is "
        "Wasmtime 50.0.0 (layout L11): decoding as given",
    ]
    assert "libcalls" in proc.stdout  # L4's header, as asked


def test_vmctx_address_not_at_a_context(gdb, script, example, example_context):
    address = example_context
    proc = run_gdb(gdb, script, "vmctx $pc", f"vmctx {address:#x} --bogus", f"vmctx {address:#x} --ptr-size 8",
                   attach=example.pid)
    if "ptrace: Operation not permitted" in proc.stderr:
        pytest.skip("gdb may not attach here (ptrace not permitted)")
    assert "vmctx: no VMComponentContext at 0x" in proc.stderr and "expected the magic b'comp'" in proc.stderr
    assert "vmctx: a value is needed after '--bogus'; usage: vmctx ADDRESS [--wasmtime VERSION]" in proc.stderr
    assert ("vmctx: --ptr-size is for decoding with counts typed; without them the scan reads the pointer size, "
            "byte order, release and shape from the target") in proc.stderr
    assert "Python Exception" not in proc.stderr
