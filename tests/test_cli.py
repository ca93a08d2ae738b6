"""The `vmctx-emu` command line: table, JSON, and one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest
from conftest import run_cli as run

from vmctx_emu.describe import SCHEMA_VERSION


SAMPLE_ARGS = ["layout", "--ptr-size", "8", "--lowerings", "3", "--memories", "1", "--reallocs", "1",
               "--post-returns", "1", "--instances", "2", "--always-trap", "1"]

EXPECTED_TABLE = """\
/* offset      |    size */  type = struct VMComponentContext {  /* seed (commit 97894bc65e), ptr_size=8 */
/*      0      |       4 */    u32 magic;
/* XXX  4-byte hole      */
/*      8      |      16 */    *mut dyn Store store;
/* XXX  8-byte hole      */
/*     32      |      32 */    VMGlobalDefinition flags[2];  /* num_runtime_component_instances, 16 bytes each */
/*     64      |      72 */    VMCallerCheckedAnyfunc lowering_anyfuncs[3];  /* num_lowerings, 24 bytes each */
/*    136      |      24 */    VMCallerCheckedAnyfunc always_trap_anyfuncs[1];  /* num_always_trap, 24 bytes each */
/*    160      |      48 */    VMLowering lowerings[3];  /* num_lowerings, 16 bytes each */
/*    208      |       8 */    *mut VMMemoryDefinition memories[1];  /* num_runtime_memories, 8 bytes each */
/*    216      |       8 */    *mut VMCallerCheckedAnyfunc reallocs[1];  /* num_runtime_reallocs, 8 bytes each */
/*    224      |       8 */    *mut VMCallerCheckedAnyfunc post_returns[1];  /* num_runtime_post_returns, 8 bytes each */

                               /* total size (bytes):   232 */
                             }
"""


def test_layout_table(capsys):
    status, out, err = run(SAMPLE_ARGS, capsys)
    assert (status, err) == (0, "")
    assert out == EXPECTED_TABLE


def test_layout_json(capsys):
    status, out, _ = run(SAMPLE_ARGS + ["--json"], capsys)
    assert status == 0
    doc = json.loads(out)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["ptr_size"] == 8 and doc["size_of_vmctx"] == 232
    assert doc["counts"]["num_runtime_component_instances"] == 2
    assert [(r["name"], r["offset"], r["size"], r["count"], r["padding_before"]) for r in doc["regions"]] == [
        ("magic", 0, 4, 1, 0), ("store", 8, 16, 1, 4), ("flags", 32, 32, 2, 8),
        ("lowering_anyfuncs", 64, 72, 3, 0), ("always_trap_anyfuncs", 136, 24, 1, 0),
        ("lowerings", 160, 48, 3, 0), ("memories", 208, 8, 1, 0), ("reallocs", 216, 8, 1, 0),
        ("post_returns", 224, 8, 1, 0),
    ]


def test_ptr_size_host(capsys):
    import ctypes

    status, out, _ = run(["layout", "--ptr-size", "host", "--json"], capsys)
    assert status == 0 and json.loads(out)["ptr_size"] == ctypes.sizeof(ctypes.c_void_p)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["layout", "--ptr-size", "3"], "pointer size 3 is not supported"),
        (["layout", "--ptr-size", "eight"], "expected 'host' or an int, got 'eight'"),
        (["layout", "--lowerings", "-1"], "--lowerings must be in [0, 2**32) (a u32), got -1"),
        (["layout", "--memories", "4294967296"], "--memories must be in [0, 2**32)"),
        (["layout", "--reallocs", "x"], "expected an int, got 'x'"),
        (["layout", "--instances", "268435456"], "size of flags"),
        (["layout", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_one_line_exit_2(capsys, argv, needle):
    status, out, err = run(argv, capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("vmctx-emu") and "error: " in err
    assert needle in err
    assert "Traceback" not in err


def test_console_script_runs_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "vmctx_emu", *SAMPLE_ARGS], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == EXPECTED_TABLE
    proc = subprocess.run([sys.executable, "-m", "vmctx_emu", "layout", "--instances", "268435456"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_help_lists_layout_options(capsys):
    status, out, _ = run(["layout", "--help"], capsys)
    assert status == 0
    for option in ("--ptr-size", "--lowerings", "--memories", "--reallocs", "--post-returns",
                   "--instances", "--always-trap", "--json"):
        assert option in out
