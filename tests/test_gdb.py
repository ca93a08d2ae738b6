"""The gdb command against a live C process that built a context with the C initializer."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from vmctx_emu import Component, HostPtr, VMComponentOffsets
from vmctx_emu.memory.native import c_initializer_argv

NATIVE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "native")
SHAPE = Component(num_lowerings=3, num_runtime_memories=1, num_runtime_reallocs=1,
                  num_runtime_post_returns=1, num_runtime_component_instances=2, num_always_trap=1)
LAYOUT = ["--lowerings", "3", "--memories", "1", "--reallocs", "1", "--post-returns", "1",
          "--instances", "2", "--always-trap", "1"]


def test_module_prints_a_script_naming_this_interpreter():
    proc = subprocess.run([sys.executable, "-m", "vmctx_emu.gdb"], capture_output=True, text=True, check=True)
    path = proc.stdout.strip()
    with open(path) as f:
        text = f.read()
    assert repr(sys.executable) in text and "class VmctxCommand(gdb.Command)" in text


@pytest.fixture(scope="module")
def gdb():
    exe = shutil.which("gdb")
    if exe is None:
        pytest.skip("gdb is not installed and could not be (make test installs the Debian package gdb)")
    probe = subprocess.run([exe, "-batch", "-nx", "-ex", "run", "--args", "/bin/true"],
                           capture_output=True, text=True, timeout=60)
    if "exited normally" not in probe.stdout:
        pytest.skip(f"gdb cannot run a process here: {(probe.stderr or probe.stdout).strip()[:300]}")
    return exe


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("gdb") / "gdb_target")
    cc = os.environ.get("CC", "gcc")
    subprocess.run([cc, "-g", "-O0", "-I", NATIVE, os.path.join(NATIVE, "gdb_target.c"),
                    os.path.join(NATIVE, "vmctx_native.c"), "-o", out], check=True)
    offsets = VMComponentOffsets(HostPtr, SHAPE)
    # The C initializer's plan for this shape, then MAY_ENTER cleared in flags[0].
    args = ["--clear-may-enter", str(offsets.instance_flags(0)),
            *c_initializer_argv(offsets, (0x1000, 0x2000))]
    return out, args


def run_gdb(gdb, target, *commands):
    exe, args = target
    script = subprocess.run([sys.executable, "-m", "vmctx_emu.gdb"], capture_output=True, text=True,
                            check=True).stdout.strip()
    argv = [gdb, "-batch", "-nx", "-ex", f"source {script}", "-ex", "break vmctx_ready",
            "-ex", "run " + " ".join(args)]
    for command in commands:
        argv += ["-ex", command]
    argv += ["-ex", "kill", exe]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_vmctx_command_decodes_live_memory(gdb, target):
    proc = run_gdb(gdb, target, "vmctx g_vmctx " + " ".join(LAYOUT), "print/x (unsigned long)g_vmctx")
    out = proc.stdout
    assert "VMCOMPONENT_MAGIC (ok)" in out, proc.stderr
    address = re.search(r"\$1 = (0x[0-9a-f]+)", out).group(1)
    header = next(line for line in out.splitlines() if line.startswith("VMComponentContext at "))
    assert header.startswith(f"VMComponentContext at {address}:")
    assert f"ptr_size={int(HostPtr)}" in header and "232 bytes" in header
    rows = {line.split()[1]: line for line in out.splitlines() if line[:8].strip().isdigit()}
    assert rows["flags[0]"].endswith("MAY_LEAVE")  # the target cleared MAY_ENTER
    assert rows["flags[1]"].endswith("MAY_LEAVE|MAY_ENTER")
    assert rows["store.data"].split()[2] == "0x0000000000001000"
    assert rows["lowerings[2].data"].endswith("unset (debug poison)")
    assert "anomalies: none" in out


def test_vmctx_command_checks_magic_first(gdb, target):
    proc = run_gdb(gdb, target, "vmctx (char *)g_vmctx + 8 " + " ".join(LAYOUT))
    assert "vmctx: no VMComponentContext at" in proc.stderr + proc.stdout
    assert "expected the magic b'comp'" in proc.stderr + proc.stdout


def test_vmctx_command_needs_an_address(gdb, target):
    proc = run_gdb(gdb, target, "vmctx")
    assert "usage: vmctx ADDRESS" in proc.stderr + proc.stdout


def test_vmctx_command_passes_the_release_through(gdb, target):
    proc = run_gdb(gdb, target, "vmctx g_vmctx --wasmtime seed --json " + " ".join(LAYOUT))
    assert '"interpretation": "magic_ok"' in proc.stdout, proc.stderr
    proc = run_gdb(gdb, target, "vmctx g_vmctx --wasmtime 99 " + " ".join(LAYOUT))
    assert "not a supported release" in proc.stderr + proc.stdout


def test_target_args_helper_matches_the_plan():
    """`python -m vmctx_emu.gdb --target-args` prints what the README's gdb walk-through runs."""
    proc = subprocess.run([sys.executable, "-m", "vmctx_emu.gdb", "--target-args", *LAYOUT, "--clear-may-enter", "0"],
                          capture_output=True, text=True, check=True)
    offsets = VMComponentOffsets(HostPtr, SHAPE)
    assert proc.stdout.split() == ["--clear-may-enter", str(offsets.instance_flags(0)),
                                   *c_initializer_argv(offsets, (0x1000, 0x2000))]


@pytest.mark.parametrize("argv, needle", [
    (["--target-args", "--ptr-size", "4"], "the target is built for this host"),
    (["--target-args", "--wasmtime", "21"], "seed-layout contexts only"),
    (["--target-args", "--lowerings", "-1"], "--lowerings must be in [0, 2**32)"),
])
def test_target_args_helper_bad_input_one_line(argv, needle):
    proc = subprocess.run([sys.executable, "-m", "vmctx_emu.gdb", *argv], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1
    assert needle in proc.stderr


def test_vmctx_command_without_counts_asks_for_them(gdb, target):
    """Regression: the error named the command's internal temp file (`/tmp/vmctx-gdb-*.bin`)."""
    proc = run_gdb(gdb, target, "vmctx g_vmctx")
    text = proc.stderr + proc.stdout
    # Not a Wasmtime process: the scan finds no stored VMComponentOffsets copy, so the counts are asked for.
    assert "vmctx: no Wasmtime in pid " in text and "no stored VMComponentOffsets copy gives its shape: " \
        "give the component's counts after the address" in text, text
    assert "vmctx-gdb-" not in text and "sidecar" not in text


@pytest.mark.parametrize("count", ["40000000", "100000000"])
def test_vmctx_command_huge_count_is_a_gdb_error(gdb, target, count):
    """Regression: a count past the mapped memory leaked a raw `gdb.MemoryError` Python exception."""
    proc = run_gdb(gdb, target, f"vmctx g_vmctx --lowerings {count}")
    text = proc.stderr + proc.stdout
    assert "vmctx: cannot read the context of this layout (are the counts right?)" in text
    assert "Python Exception" not in text and "gdb.MemoryError" not in text


def test_vmctx_command_help_prints_usage(gdb, target):
    """`--help` after the address printed a JSON decoding error from gdb's Python."""
    proc = run_gdb(gdb, target, "vmctx g_vmctx --help")
    assert "Usage: vmctx ADDRESS" in proc.stdout and "Python Exception" not in proc.stderr


def test_vmctx_command_takes_decode_options(gdb, target):
    """`--byte-order` is decode's alone: it must not reach the layout query."""
    proc = run_gdb(gdb, target, "vmctx g_vmctx --byte-order little " + " ".join(LAYOUT))
    assert "VMCOMPONENT_MAGIC (ok)" in proc.stdout, proc.stderr
