"""`scan --context ADDR` (`live/context_at.py`): the one context at an address, as the debuggers' `vmctx ADDRESS`
shows it, or why there is none."""

import json
import platform
import sys

import pytest

from conftest import run_cli
from vmctx_emu.errors import ContextNotFoundError, LiveError
from vmctx_emu.layouts.releases import resolve_release
from vmctx_emu.live.context_at import context_at
from vmctx_emu.live.scanner import LiveContext, ScanResult

L11 = resolve_release("50").layout
COUNTS = {name: 0 for name in L11.count_names} | {"num_lowerings": 1, "num_runtime_component_instances": 1,
                                                   "num_trampolines": 1}  # 96 bytes


def result(*contexts):
    return ScanResult("pid 7", "50.0.0", "given", list(contexts), ["a note of the scan"])


def test_picks_the_context_at_the_address_and_keeps_the_notes():
    a, b = LiveContext(0x1000, "50.0.0", L11, dict(COUNTS), data=b""), LiveContext(0x2000, "50.0.0", L11, dict(COUNTS),
                                                                                   data=b"")
    only = context_at(result(a, b), 0x2000)
    assert only.contexts == [b] and only.notes == ["a note of the scan"] and only.source == "pid 7"


@pytest.mark.parametrize("address, message, inside", [
    (0x1010, "pid 7: the scan finds no component context at 0x1010; 0x1010 is inside the context at 0x1000 (+0x10)",
     0x1000),
    (0x1060, "pid 7: the scan finds no component context at 0x1060; the contexts it found: 0x1000", None),
])
def test_no_context_there_says_what_is(address, message, inside):
    with pytest.raises(ContextNotFoundError) as e:
        context_at(result(LiveContext(0x1000, "50.0.0", L11, dict(COUNTS), data=b"")), address)
    assert str(e.value) == message and isinstance(e.value, LiveError)
    assert (e.value.address, e.value.source, e.value.found, e.value.inside) == (address, "pid 7", [0x1000], inside)


def test_nothing_found_at_all():
    with pytest.raises(ContextNotFoundError, match="at 0x10; it found none$"):
        context_at(result(), 0x10)


def test_a_shape_not_from_a_stored_copy_is_said():
    guessed = LiveContext(0x1000, "50.0.0", L11, dict(COUNTS), data=b"", guessed="shape guessed, not stored")
    assert context_at(result(guessed), 0x1000).notes[-1] == (
        "the context at 0x1000 has no stored VMComponentOffsets copy our calculator reproduces: its shape is a guess "
        "(the guessed_shape anomaly); give its counts to decode it as you know it")
    unknown = LiveContext(0x1000, "50.0.0", L11)
    assert context_at(result(unknown), 0x1000).notes[-1] == (
        "the context at 0x1000 is not decoded: its shape is unknown (its notes say why); give its counts to decode it")


wasmtime = pytest.importorskip("wasmtime")
if sys.platform != "linux" or platform.machine() != "x86_64":
    pytest.skip("reads /proc", allow_module_level=True)



def test_cli_scan_context_on_a_real_process(example, capsys):
    status, out, _ = run_cli(["scan", "--pid", example.pid, "--json"], capsys)
    [ctx] = json.loads(out)["contexts"]
    address = int(ctx["layout"]["address"], 16)
    status, out, err = run_cli(["scan", "--pid", example.pid, "--context", hex(address), "--json"], capsys)
    assert status == 0 and json.loads(out)["contexts"] == [ctx], err
    status, out, err = run_cli(["scan", "--pid", example.pid, "--context", hex(address + 32)], capsys)
    assert status == 2 and out == "" and err == (
        f"vmctx-emu scan: error: pid {example.pid}: the scan finds no component context at {address + 32:#x}; "
        f"{address + 32:#x} is inside the context at {address:#x} (+0x20)\n")
