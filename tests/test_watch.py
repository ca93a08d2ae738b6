"""`scan --watch`: the summary once, then only what changed between reads."""

import io

import pytest

import vmctx_emu.live
from vmctx_emu.cli import main
from vmctx_emu.describe.watch import changes, snapshot
from vmctx_emu.live.scanner import ScanResult

from test_scan_summary import scanned


def result(*contexts):
    return ScanResult("pid 7", "41.0.0", "version string in x", list(contexts), [], 0, True)


def test_a_flag_flip_a_new_context_and_a_gone_one_are_each_one_line():
    a, b = scanned("41.0.0", [3, 3]), scanned("41.0.0", [3])
    before = snapshot(result(a, b))
    a.decoded.ctx.instance_flags(1).value = 5
    c = scanned("41.0.0", [3])
    from vmctx_emu.dumps.decode import decode

    a.decoded = decode(a.decoded.ctx)
    after = snapshot(result(a, c))
    lines = changes(before, after)
    assert f"{a.address:#x}: instance 1: MAY_LEAVE|MAY_ENTER (0x3): at rest -> MAY_LEAVE|NEEDS_POST_RETURN (0x5): " \
           "inside a call from the host, or returned and waiting for post_return" in "\n".join(lines)
    assert f"{b.address:#x}: gone (freed, or no longer found)" in lines
    assert f"{c.address:#x}: new context, live, Wasmtime 41.0.0, --wasmtime 41.0.0 --lowerings 2 --instances 1" in lines
    assert len(lines) == 3
    assert changes(after, after) == []


def test_the_cli_prints_the_summary_then_changes_until_its_reads_are_done(monkeypatch):
    a = scanned("41.0.0", [3])
    results = [result(a), result(a), result()]
    monkeypatch.setattr(vmctx_emu.live, "scan", lambda *args, **kwargs: results.pop(0))
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    out = io.StringIO()
    assert main(["scan", "--pid", "7", "--watch", "0.1", "--reads", "3"], out=out) == 0
    text = out.getvalue()
    assert "instance 0: MAY_LEAVE|MAY_ENTER (0x3): at rest" in text and "watching pid 7 every 0.1 s" in text
    assert text.count(f"{a.address:#x}: gone") == 1 and text.endswith("stopped after 3 reads\n") and not results


def test_ctrl_c_stops_it_cleanly(monkeypatch):
    a = scanned("41.0.0", [3])
    monkeypatch.setattr(vmctx_emu.live, "scan", lambda *args, **kwargs: result(a))

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", interrupt)
    out = io.StringIO()
    assert main(["scan", "--pid", "7", "--watch", "1"], out=out) == 0
    assert out.getvalue().endswith("stopped after 1 read\n")


@pytest.mark.parametrize("argv, message", [
    (["--core", "c", "--watch", "1"], "--watch reads a live process (--pid)"),
    (["--pid", "7", "--watch", "1", "--json"], "without --core, --json, --records, --save or --context"),
    (["--pid", "7", "--watch", "0"], "seconds between reads are from 0.05 to 86400, got 0"),
    (["--pid", "7", "--watch", "x"], "expected seconds such as 0.5 or 2, got 'x'"),
    (["--pid", "7", "--watch", "1", "--reads", "0"], "expected a positive count, got 0"),
])
def test_bad_watch_options_are_one_line(argv, message, capsys):
    try:
        code = main(["scan", *argv])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


CHILD = """
import sys, time, wasmtime
from wasmtime.component import Component, Linker
from vmctx_emu.live.example import COMPONENT
engine = wasmtime.Engine()
keep = []
def instantiate():
    store = wasmtime.Store(engine)
    linker = Linker(engine)
    with linker.root() as root:
        root.add_func("add", lambda s, x: x + 100)
    keep.append((store, linker.instantiate(store, Component(engine, COMPONENT))))
instantiate()
print("ready", flush=True)
sys.stdin.readline()
instantiate()
print("again", flush=True)
time.sleep(60)
"""


def test_a_real_process_gaining_an_instance_is_seen(tmp_path):
    import subprocess
    import sys
    import threading

    pytest.importorskip("wasmtime")
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        watch = subprocess.Popen([sys.executable, "-m", "vmctx_emu", "scan", "--pid", str(child.pid), "--watch",
                                  "0.2", "--reads", "12"], stdout=subprocess.PIPE, text=True)
        first = [watch.stdout.readline()]
        while not first[-1].startswith("watching pid"):
            first.append(watch.stdout.readline())
        threading.Timer(0.5, lambda: (child.stdin.write("\n"), child.stdin.flush())).start()
        rest = watch.stdout.read()
        assert watch.wait(timeout=120) == 0
    finally:
        child.kill()
        child.wait()
    assert sum(": LIVE, Wasmtime" in line for line in first) == 1
    new = [line for line in rest.splitlines() if ": new context, live, Wasmtime" in line]
    assert len(new) == 1 and "--lowerings 1" in new[0], rest
    assert rest.endswith("stopped after 12 reads\n")
