"""`describe.scan`: a scan's text and JSON, streamed context by context, byte for byte what the CLI printed
before the renderers moved out of `cli.py` and the scanner. Since then (issue 19) that text is `--records`'s,
the default text is the summary (`test_scan_summary.py`) and each JSON context gains `summary`.

The references below are the old code (`cmd_scan`'s text, `ScanResult.to_dict`/`LiveContext.to_dict` dumped
with `indent=1`), run on synthetic results (table-driven) and on the result of a real Wasmtime scan.
"""

import dataclasses
import io
import json
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

import pytest

import vmctx_emu.live
from vmctx_emu import Component, OwnedComponentInstance, VMLowering
from vmctx_emu.cli import main
from vmctx_emu.describe import (SCHEMA_VERSION, context_summary, decoded_doc, decoded_table, scan_doc, scan_json,
                                scan_json_chunks, scan_text, scan_text_chunks)
from vmctx_emu.dumps.decode import decode
from vmctx_emu.layouts.releases import SEED
from vmctx_emu.live.liveness import Liveness
from vmctx_emu.live.scanner import LiveContext, ScanResult


def reference_text(result):
    """The text `cmd_scan` printed (commit 015e928)."""
    states = {"live": sum(c.state == "live" for c in result.contexts),
              "unknown": sum(c.state == "unknown" for c in result.contexts), "freed": result.freed}
    counted = ", ".join(f"{n} {state}" for state, n in states.items() if n or state == "live")
    out = [f"{result.source}: Wasmtime {result.wasmtime or 'unknown'} ({result.wasmtime_from}), "
           f"{len(result.contexts)} component context{'s' * (len(result.contexts) != 1)} listed ({counted})\n"]
    out += [f"note: {note}\n" for note in result.notes]
    for ctx in result.contexts:
        out.append(f"\nVMComponentContext at {ctx.address:#x}: {ctx.state.upper()}\n")
        out += [f"  {line}\n" for line in ctx.liveness.evidence]
        if ctx.decoded is not None:
            out.append(f"shape: {ctx.shape_from}\n")
            out.append(decoded_table(ctx.decoded, ctx.points_to) + "\n")
        out += [f"  note: {note}\n" for note in ctx.notes]
    return "".join(out)


def reference_context(ctx):
    # Since schema 4 a scan's points_to is its pointees' fields (`test_live_scan.py` checks them).
    doc = decoded_doc(ctx.decoded, ctx.pointees or ctx.points_to) if ctx.decoded is not None else {
        "layout": {"layout": ctx.layout.id, "wasmtime": ctx.wasmtime, "address": f"{ctx.address:#x}",
                   "counts": ctx.counts, "size_of_vmctx": None}, "records": [], "anomalies": []}
    doc.pop("schema_version", None)
    doc["liveness"] = ({"state": ctx.liveness.state, "evidence": list(ctx.liveness.evidence)}
                       if ctx.liveness is not None else None)
    doc["shape_from"] = ctx.shape_from
    doc["image"] = ctx.image
    doc["notes"] = list(ctx.notes)
    doc["summary"] = context_summary(ctx)  # its content: test_scan_summary.py
    return doc


def reference_json(result):
    """`json.dumps(ScanResult.to_dict(), indent=1)` (commit 015e928), with this package's schema version."""
    counts = {state: sum(c.state == state for c in result.contexts) for state in ("live", "unknown")}
    counts["freed"] = result.freed
    return json.dumps({"schema_version": SCHEMA_VERSION, "source": result.source,
                       "wasmtime": {"version": result.wasmtime, "from": result.wasmtime_from},
                       "liveness": counts, "contexts": [reference_context(c) for c in result.contexts],
                       "notes": list(result.notes)}, indent=1)


# ------------------------------------------------------------------------------------ synthetic

_keep = []


def decoded_context(lowerings=3, set_every=2):
    inst = OwnedComponentInstance(Component(num_lowerings=lowerings, num_runtime_memories=2,
                                            num_runtime_component_instances=1), (0x1000, 0x2000))
    _keep.append(inst)  # the decode reads its memory
    for i in range(0, lowerings, set_every):
        inst.set_lowering(i, VMLowering(0x10 + i, 0x20 + i), 0x30 + i, i)
    inst.set_runtime_memory(1, 0x7000)
    return inst, decode(inst)


def live_context(state="live", lowerings=3, points=True, notes=()):
    inst, decoded = decoded_context(lowerings)
    points_to = {}
    if points:
        points_to = {inst.offsets.lowering_callee(0): "callee in .text of libfoo.so",
                     inst.offsets.runtime_memory(1): 'VMMemoryDefinition: "quoted" caf\u00e9 \u2603',
                     inst.offsets.lowering_anyfunc(0) + 16: "this context"}
    return LiveContext(inst.vmctx, "50.0.0", SEED, counts=dict(inst.offsets.component.counts()),
                       shape_from="VMComponentOffsets stored at ctx-188 (6 counts)", decoded=decoded,
                       points_to=points_to, notes=list(notes),
                       liveness=Liveness(state, [f"allocator: chunk is {state}", "self pointer: holds it"]),
                       image="/usr/lib/libwasmtime.so (r-x)")


def undecoded_context(liveness=True):
    return LiveContext(0x7F00_0000_1230, "50.0.0", SEED, counts=None, shape_from=None, decoded=None,
                       notes=["shape not recovered: not decoded"],
                       liveness=Liveness("unknown", ["allocator: no glibc heap holds it"]) if liveness else None,
                       image="wasmtime (r-x)")


def result(contexts, freed=0, notes=("a note", "another: with \u00e9"), wasmtime="50.0.0"):
    return ScanResult("pid 1234", wasmtime, "version string in wasmtime", list(contexts), list(notes), freed, True)


CASES = {
    "no-contexts": lambda: result([], notes=["no component context: none here"], wasmtime=None),
    "one-live": lambda: result([live_context()]),
    "live-freed-unknown": lambda: result([live_context(), live_context("freed", notes=["freed: its store is gone"]),
                                          undecoded_context()], freed=4),
    "no-points": lambda: result([live_context(points=False, lowerings=200)]),
    "only-undecoded": lambda: result([undecoded_context()], notes=[]),
    "many": lambda: result([live_context(lowerings=k % 5 + 1, points=bool(k % 2)) for k in range(12)], freed=1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_scan_renderers_match_the_old_output(case):
    found = CASES[case]()
    assert scan_text(found, records=True) + "\n" == reference_text(found)
    assert scan_json(found) == reference_json(found)
    assert json.loads(scan_json(found)) == scan_doc(found)


def test_an_undecoded_context_without_liveness_is_null_in_json():
    found = result([undecoded_context(liveness=False)])
    assert json.loads(scan_json(found))["contexts"][0]["liveness"] is None
    assert scan_json(found) == reference_json(found)
    assert "VMComponentContext at 0x7f0000001230: UNKNOWN\n" in scan_text(found, records=True)


def test_scans_stream_a_context_at_a_time():
    found = CASES["many"]()
    for chunks in (scan_text_chunks(found, records=True), scan_json_chunks(found),
                   scan_json_chunks(found, binary=True)):
        pieces = list(chunks)
        assert len(pieces) > len(found.contexts)
        assert max(len(p) for p in pieces) < sum(len(p) for p in pieces) // 4
        for piece in pieces:  # no piece holds two contexts
            text = piece if isinstance(piece, str) else bytes(piece).decode()
            assert text.count("VMComponentContext at") + text.count('"shape_from"') <= 1
    binary = b"".join(bytes(p) for p in scan_json_chunks(found, binary=True))
    assert binary == (scan_json(found) + "\n").encode()


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_cli_scan_prints_the_renderers_text(as_json, monkeypatch):
    found = CASES["live-freed-unknown"]()
    monkeypatch.setattr(vmctx_emu.live, "scan", lambda *args, **kwargs: found)
    out = io.StringIO()
    assert main(["scan", "--pid", "1234"] + (["--json"] if as_json else ["--records"]), out=out) == 0
    assert out.getvalue() == (reference_json(found) + "\n" if as_json else reference_text(found))


# ------------------------------------------------------------------------------- a real Wasmtime

def _wasmtime_50():
    try:
        return version("wasmtime").startswith("50.")
    except PackageNotFoundError:
        return False


@pytest.mark.skipif(not _wasmtime_50() or sys.platform != "linux" or platform.machine() != "x86_64",
                    reason="scans the example process: wasmtime-py 50.x on x86-64 Linux")
@pytest.mark.parametrize("argv", [["--records"], ["--all", "--records"], ["--json"], ["--all", "--json"]],
                         ids=" ".join)
def test_cli_scan_of_a_real_wasmtime_is_unchanged(argv, monkeypatch):
    from test_scan_inputs import start_example, stop

    proc = start_example(seconds=120)
    try:
        seen = []
        real = vmctx_emu.live.scan

        def scan(*args, **kwargs):
            seen.append(real(*args, **kwargs))
            return seen[-1]

        monkeypatch.setattr(vmctx_emu.live, "scan", scan)
        out = io.StringIO()
        assert main(["scan", "--pid", str(proc.pid), *argv], out=out) == 0
    finally:
        stop(proc)
    [found] = seen  # the CLI asked for no decodes: it streams them; the reference takes them all at once
    assert found.contexts and all(c.decoded is None for c in found.contexts)
    found = dataclasses.replace(found, contexts=list(found.decoded_contexts()))
    assert any(c.points_to for c in found.contexts) and all(c.decoded is not None for c in found.contexts)
    expected = reference_json(found) + "\n" if "--json" in argv else reference_text(found)
    assert out.getvalue() == expected


def test_a_scan_table_puts_a_run_of_zero_slots_on_one_line_and_json_keeps_every_record():
    inst = OwnedComponentInstance(Component(num_lowerings=6, num_runtime_memories=5,
                                            num_runtime_component_instances=1), (0x1000, 0x2000),
                                  debug_assertions=False)
    _keep.append(inst)
    inst.set_lowering(2, VMLowering(0x10, 0x20), 0x30, 0)
    inst.set_runtime_memory(4, 0x7000)
    decoded = decode(inst)
    points_to = {inst.offsets.runtime_memory(4): "a memory"}
    lines = decoded_table(decoded, points_to).splitlines()
    first, last = inst.offsets.lowering_anyfunc(3), inst.offsets.lowering_anyfunc(5) + 16
    assert (f"{inst.vmctx + first:#018x}  {first:8d}  {'lowering_anyfuncs[3..5]':<34} {'0x0':<18}  zero: 9 slots in "
            f"a row (null or 0), offsets {first}..{last}") in lines
    assert any(line.split()[2] == "memories[0..3]" and "zero: 4 slots" in line for line in lines)
    assert any(line.endswith("a memory") for line in lines)  # a named pointer never joins a run
    assert len(lines) == 18 and not any("lowerings[3].callee" in line for line in lines)
    assert len(decoded_doc(decoded, points_to)["records"]) == len(decoded.records)  # JSON: every record
    assert "zero:" not in decoded_table(decoded)  # decode's table lists every slot
