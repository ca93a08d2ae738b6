"""`scan`'s default text: each context at a glance (release, shape as options, each instance's flags in words)."""

import io

import pytest

import vmctx_emu.live
from vmctx_emu import OwnedComponentInstance
from vmctx_emu.cli import main
from vmctx_emu.describe import Palette, context_summary, scan_text, shape_options, summary_lines
from vmctx_emu.dumps.decode import decode
from vmctx_emu.layouts.releases import wasmtime_layout
from vmctx_emu.live.liveness import Liveness
from vmctx_emu.live.scanner import LiveContext, ScanResult

_keep = []


def scanned(release, words, state="live", lowerings=2):
    """A LiveContext of `release` whose instances hold `words`, decoded as a scan decodes it."""
    layout = wasmtime_layout(release)
    counts = {"num_lowerings": lowerings, "num_runtime_component_instances": len(words)}
    header = {name: (0x1000, 0x2000) if name == "store" else 0x3000 for name in layout.header_names()}
    inst = OwnedComponentInstance(counts, wasmtime=release, header=header)
    _keep.append(inst)
    for i, word in enumerate(words):
        inst.instance_flags(i).value = word
    full = dict(inst.offsets.component.counts())
    return LiveContext(inst.vmctx, release, layout, counts=full, shape_from="VMComponentOffsets stored at ctx-188",
                       decoded=decode(inst), liveness=Liveness(state, [f"allocator: the chunk is {state}"]),
                       release=release)


def test_a_v41_instance_waiting_for_post_return_says_its_next_call_traps():
    # The v41 program: idle, post_return never called.
    ctx = scanned("41.0.0", [5])
    assert summary_lines(ctx) == [
        f"VMComponentContext at {ctx.address:#x}: LIVE, Wasmtime 41.0.0, layout L9 (v39.0.0 - v41.0.4)",
        "  shape: --wasmtime 41.0.0 --lowerings 2 --instances 1",
        "    from VMComponentOffsets stored at ctx-188",
        "  instance 0: MAY_LEAVE|NEEDS_POST_RETURN (0x5): inside a call from the host, or returned and waiting for "
        "post_return: the same bits on this release (NEEDS_POST_RETURN is set before the callee runs), or such a "
        "call trapped",
        '    a call now fails with "wasm trap: cannot enter component instance" until post_return is called',
        "  anomalies: none",
    ]


def test_instances_in_one_state_are_one_line_and_a_word_never_written_is_said():
    ctx = scanned("35.0.0", [3, 3, 3, 1, 2])
    lines = summary_lines(ctx)
    assert "  instances 0-2: MAY_LEAVE|MAY_ENTER (0x3): at rest" in lines
    assert any(line.startswith("  instance 3: MAY_LEAVE (0x1): inside a call") for line in lines)
    assert "  instance 4: MAY_ENTER (0x2): 0x2 is not a word this release's runtime writes" in lines
    summary = context_summary(ctx)
    assert [i["state_key"] for i in summary["instances"]] == ["at_rest"] * 3 + ["in_call", "not_written"]
    assert summary["options"] == "--wasmtime 35.0.0 --lowerings 2 --instances 5" == shape_options(ctx)


def test_a_v50_context_cannot_show_a_call_and_says_where_to_look():
    summary = context_summary(scanned("50.0.0", [1]))
    assert summary["instances"][0]["state_key"] == "may_leave"
    assert "the store context shows whether wasm is running" in summary["instances"][0]["state"]
    assert summary["release"] == "50.0.0" and summary["layout"] == "L11" and summary["anomalies"] == {}


def test_a_freed_context_shows_its_evidence_and_a_live_one_does_not():
    assert "  allocator: the chunk is freed" in summary_lines(scanned("50.0.0", [1], state="freed"))
    assert not any("allocator" in line for line in summary_lines(scanned("50.0.0", [1])))


def test_an_undecoded_context_says_its_shape_is_unknown():
    ctx = LiveContext(0x7F00_0000_1230, "50.0.0", wasmtime_layout("50.0.0"), liveness=Liveness("unknown", ["x"]))
    assert context_summary(ctx) is None
    assert "  shape: unknown, so not decoded" in summary_lines(ctx)


def test_a_context_of_known_shape_not_read_gives_its_shape():
    ctx = LiveContext(0x7F00_0000_1230, "50.0.0", wasmtime_layout("50.0.0"), counts={"num_lowerings": 4_000_000},
                      shape_from="VMComponentOffsets stored at ctx-188", liveness=Liveness("unknown", ["x"]))
    lines = summary_lines(ctx)
    assert "  shape: --wasmtime 50.0.0 --lowerings 4000000, not decoded" in lines
    assert "    from VMComponentOffsets stored at ctx-188" in lines


def test_anomalies_are_counted_by_kind():
    ctx = scanned("41.0.0", [7, 6, 3])  # MAY_ENTER with NEEDS_POST_RETURN: decode's flag_state anomaly, twice
    assert context_summary(ctx)["anomalies"] == {"flag_state": 2}
    assert summary_lines(ctx)[-1] == "  anomalies: flag_state x2 (--records lists them)"
    assert context_summary(scanned("41.0.0", [3]))["anomalies"] == {}


def test_colour_only_when_asked():
    ctx = scanned("41.0.0", [5])
    plain, coloured = summary_lines(ctx), summary_lines(ctx, Palette(True))
    assert not any("\x1b[" in line for line in plain)
    assert "\x1b[32mLIVE\x1b[0m" in coloured[0] and "\x1b[33minside a call" in coloured[3]
    assert [line.replace("\x1b[32m", "").replace("\x1b[33m", "").replace("\x1b[0m", "") for line in coloured] == plain


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("env, coloured", [({}, True), ({"NO_COLOR": "1"}, False), ({"TERM": "dumb"}, False)])
def test_the_cli_colours_a_terminal_unless_told_not_to(env, coloured, monkeypatch):
    found = ScanResult("pid 1", "41.0.0", "version string in x", [scanned("41.0.0", [5])], [], 0, True)
    monkeypatch.setattr(vmctx_emu.live, "scan", lambda *args, **kwargs: found)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = _Tty()
    assert main(["scan", "--pid", "1"], out=out) == 0
    assert ("\x1b[" in out.getvalue()) is coloured
    plain = io.StringIO()
    assert main(["scan", "--pid", "1"], out=plain) == 0
    assert "\x1b[" not in plain.getvalue() and plain.getvalue() == scan_text(found) + "\n"


def test_a_real_wasmtime_50_call_in_progress_is_told_from_its_store_context():
    """The issue's question on v50, where the flag word is 1 throughout: is a call in progress?"""
    import os
    import platform
    import sys
    from importlib.metadata import version

    wasmtime = pytest.importorskip("wasmtime")
    if not version("wasmtime").startswith("50.") or sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("scans this process: wasmtime-py 50.x on x86-64 Linux")
    from wasmtime.component import Component, Linker

    from vmctx_emu.live import scan
    from vmctx_emu.live.example import COMPONENT

    from vmctx_emu.pytest_plugin import new_contexts

    before = scan(decode=False, include_freed=True).contexts
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = Linker(engine)
    seen = {}

    def mine(result):
        [ctx] = [c for c in result.decoded_contexts() if c.address == new.address]
        return "\n".join(summary_lines(ctx))

    with linker.root() as root:
        root.add_func("add", lambda s, x: (seen.setdefault("inside", mine(scan(os.getpid()))), x + 100)[1])
    instance = linker.instantiate(store, Component(engine, COMPONENT))
    [new] = new_contexts(before, scan(decode=False, include_freed=True).contexts)  # a reused block is no new one
    rest = mine(scan(os.getpid()))
    assert instance.get_func(store, "run")(store, 1) == 102
    inside = seen["inside"]
    assert "instance 0: MAY_LEAVE (0x1): at rest; its store is not in wasm, so no call is in progress" in rest
    assert ": not in wasm: no entry into wasm and no exit from it recorded" in rest
    assert "instance 0: MAY_LEAVE (0x1): may leave: at rest or inside a call" in inside
    assert ": in a host call from wasm (not sure): entered, and wasm called the host" in inside


def test_a_context_of_many_instances_in_many_states_is_summarised_in_bounded_lines():
    from vmctx_emu.describe import summary as module

    words = [3, 1] * 5000  # 10,000 instances, a new run each
    ctx = scanned("41.0.0", words)
    lines = summary_lines(ctx)
    shown = [line for line in lines if line.startswith("  instance")]
    assert len(shown) == module.MAX_RUNS and len(lines) < 2 * module.MAX_RUNS + 10
    assert f"  ... {10_000 - module.MAX_RUNS:,} more instances in {10_000 - module.MAX_RUNS:,} more runs of one " \
           "state (--records or --json lists every flag word)" in lines
    assert len(context_summary(ctx)["instances"]) == 10_000  # the data keeps them all
    # Closed now: a live 160 KB context would widen every later neighbour search of the live-context registry.
    inst = ctx.decoded.ctx
    assert inst in _keep
    _keep.remove(inst)
    inst.close()
