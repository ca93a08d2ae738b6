"""The lldb command file (`python -m vmctx_emu.lldb`): `vmctx ADDRESS`, `vmctx scan` and `vmctx where` with Debian's
lldb, attached to a real Wasmtime process and on its core, giving what the CLI (and gdb's `vmctx`) give."""

import json
import os
import platform
import shutil
import subprocess
import sys

import pytest


def test_module_prints_a_command_file_lldb_can_import():
    """lldb imports the file as a module named after it: no '-' in its name; it names this interpreter."""
    path = subprocess.run([sys.executable, "-m", "vmctx_emu.lldb"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert os.path.basename(path)[:-3].isidentifier() and path.endswith(".py")
    with open(path) as f:
        text = f.read()
    assert repr(sys.executable) in text and "def __lldb_init_module(debugger, internal_dict):" in text
    assert "def context_command(inferior, arg, usage_text):" in text  # the part gdb's file shares


def _working_lldb():
    """(lldb executable, None) for the first lldb whose Python works, else (None, why none does)."""
    why = "lldb is not installed and could not be (make test installs Debian's lldb-16 and python3-lldb-16)"
    for name in ("lldb-16", "lldb"):
        exe = shutil.which(name)
        if exe is None:
            continue
        probe = subprocess.run([exe, "--batch", "-o", "script print(6 * 7)"], capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
        if "42" in probe.stdout:
            return exe, None
        why = f"{name}'s Python does not work here: {(probe.stderr or probe.stdout).strip()[-300:]}"
    return None, why


@pytest.fixture(scope="module")
def lldb():
    exe, why = _working_lldb()
    if exe is None:
        pytest.skip(why)
    return exe


@pytest.fixture(scope="module")
def script():
    return subprocess.run([sys.executable, "-m", "vmctx_emu.lldb"], capture_output=True, text=True,
                          check=True).stdout.strip()


def run_lldb(lldb, script, *commands, attach=None, core=None):
    argv = [lldb, "--batch", "--no-lldbinit"]
    if attach is not None:
        argv += ["-p", str(attach)]
    if core is not None:
        argv += ["-c", core]
    argv += ["-o", f"command script import {script}"]
    for command in commands:
        argv += ["-o", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_without_a_process_scan_says_what_to_do(lldb, script):
    proc = run_lldb(lldb, script, "vmctx scan")
    assert ("error: vmctx scan: no process and no core file: run or attach to a Wasmtime process, or load its "
            "core with `target create --core FILE`") in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_help_gives_the_usage(lldb, script):
    proc = run_lldb(lldb, script, "help vmctx")
    assert "Usage: vmctx ADDRESS [--wasmtime VERSION] [count options]" in proc.stdout
    assert "vmctx where EXPRESSION..." in proc.stdout


wasmtime = pytest.importorskip("wasmtime")
if sys.platform != "linux" or platform.machine() != "x86_64":
    pytest.skip("reads /proc and x86-64 cores", allow_module_level=True)

from conftest import cli_text  # noqa: E402

from cores import gcore  # noqa: E402


def attached(lldb, script, example, *commands):
    proc = run_lldb(lldb, script, *commands, attach=example.pid)
    if "Operation not permitted" in proc.stderr or "attach failed" in proc.stderr:
        pytest.skip(f"lldb may not attach here (ptrace not permitted): {proc.stderr.strip()[-200:]}")
    return proc


def _output_of(stdout, command):
    """What lldb printed for `command`: the lines after its echo `(lldb) COMMAND`, up to the next prompt."""
    after = stdout.split(f"(lldb) {command}\n", 1)[1]
    return after.split("\n(lldb) ", 1)[0].rstrip("\n") + "\n"


def test_live_process_the_same_as_the_cli(lldb, script, example, example_context):
    commands = [f"vmctx {example_context:#x}", f"vmctx {example_context:#x} --summary", "vmctx scan --json",
                f"vmctx where {example_context:#x}+16 {example_context:#x}"]
    proc = attached(lldb, script, example, *commands)
    assert "Traceback" not in proc.stderr, proc.stderr
    records = _output_of(proc.stdout, commands[0])
    assert records == cli_text("scan", "--pid", example.pid, "--context", hex(example_context), "--records"), proc.stderr
    assert f"VMComponentContext at {example_context:#x}: LIVE\n" in records
    assert "shape: VMComponentOffsets stored at ctx-188 (10 counts, 11 offsets, all reproduced)" in records
    summary = _output_of(proc.stdout, commands[1])
    assert f"VMComponentContext at {example_context:#x}: LIVE, Wasmtime 50.0.0, layout L11" in summary
    assert "  shape: --wasmtime 50.0.0 --lowerings 1 --instances 1 --trampolines 1\n" in summary
    doc = json.loads(_output_of(proc.stdout, commands[2]))
    assert doc["source"] == f"pid {example.pid}" and doc["wasmtime"]["version"] == "50.0.0"
    assert [c["layout"]["address"] for c in doc["contexts"]] == [hex(example_context)]
    where = _output_of(proc.stdout, commands[3])
    assert f"{example_context + 16:#x}: " in where and f"  inside the context at {example_context:#x}: store_context" in where
    assert where == cli_text("where", hex(example_context + 16), hex(example_context), "--pid", example.pid)


def test_live_process_counts_given_win_and_a_difference_is_noted(lldb, script, example, example_context):
    proc = attached(lldb, script, example, f"vmctx {example_context:#x} --lowerings 2 --instances 1 --trampolines 1")
    # Decoded as the release the scan read (50.0.0's count options, no --wasmtime typed) with the counts given.
    assert f"VMComponentContext at {example_context:#x}: ptr_size=8, little-endian, 112 bytes" in proc.stdout, proc.stderr
    assert "lowerings[1].callee" in proc.stdout
    assert (f"vmctx: the counts given differ from the VMComponentOffsets copy stored before {example_context:#x}: "
            "num_lowerings 2 (stored 1); decoding with the counts given (the stored shape: --wasmtime 50.0.0 "
            "--lowerings 1 --instances 1 --trampolines 1)") in proc.stderr


def test_live_process_bad_address_and_expression(lldb, script, example, example_context):
    proc = attached(lldb, script, example, f"vmctx {example_context:#x}+8")
    assert f"error: vmctx: no VMComponentContext at {example_context + 8:#x}: found bytes" in proc.stderr
    proc = attached(lldb, script, example, "vmctx no_such_symbol_here")
    assert "error: vmctx: cannot evaluate 'no_such_symbol_here': " in proc.stderr
    assert "Traceback" not in proc.stderr


def test_core_the_same_as_the_cli(lldb, script, example, example_context, tmp_path):
    core = gcore(example.pid, str(tmp_path))
    commands = ["vmctx scan", f"vmctx {example_context:#x}", "vmctx where $pc " + hex(example_context + 16)]
    proc = run_lldb(lldb, script, *commands, core=core)
    assert "Traceback" not in proc.stderr, proc.stderr
    summary = _output_of(proc.stdout, commands[0])
    assert summary.startswith(f"core {core}: Wasmtime 50.0.0 (version string in "), proc.stderr
    assert summary == cli_text("scan", "--core", core)
    records = _output_of(proc.stdout, commands[1])
    assert records == cli_text("scan", "--core", core, "--context", hex(example_context), "--records")
    assert f"VMComponentContext at {example_context:#x}: LIVE\n" in records and "this context" in records
    where = _output_of(proc.stdout, commands[2])
    assert f"  inside the context at {example_context:#x}: store_context" in where
    os.unlink(core)
