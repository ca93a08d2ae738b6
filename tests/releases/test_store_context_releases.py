"""`make test-releases`: the store context of each wheel's real Wasmtime (39.0.0 on), at rest, inside a
blocked host import and after, read from a child by pid through the scan's context and its header pointer.

What is asserted is what tests/releases/STORE_CONTEXT.md records as measured: at rest no entry or
exit is recorded and stack_limit is usize::MAX; inside the import the entry and exit values are set,
the exit PC lies in executable memory, stack_limit is the entry stack less at most max_wasm_stack;
after the call everything is as at rest; fuel is kept as minus what is left.
"""

import json
import select
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from vmctx_emu.dumps.store_context import IN_HOST_CALL, NOT_IN_WASM
from vmctx_emu.live import scan
from vmctx_emu.live.process import ProcessSource
from vmctx_emu.live.store_context import store_context_of

CHILD = Path(__file__).with_name("store_context_child.py")
FIRST = Version("39.0.0")  # wasmtime-py's Python component API
TIMEOUT = 120
MAX_WASM_STACK = 512 * 1024
EXIT_FPS = ("last_wasm_exit_fp", "last_wasm_exit_trampoline_fp")
ENTRIES = ("last_wasm_entry_sp", "last_wasm_entry_fp")


def _line(proc, expected):
    ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
    line = proc.stdout.readline() if ready else ""
    assert line.startswith(expected), (expected, line, proc.poll())
    return line.split()


def _values(d):
    return {f.name: f.value for f in d.fields}


def test_store_context_at_rest_inside_a_host_import_and_after(release, release_python):
    if Version(release) < FIRST:
        pytest.skip(f"{release}: no Python component API before {FIRST}")
    proc = subprocess.Popen([str(release_python), str(CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        _line(proc, "ready")
        contexts = scan(proc.pid).contexts
        assert len(contexts) == 1, contexts
        [ctx] = contexts
        with ProcessSource(proc.pid) as source:
            rest = store_context_of(source, ctx)
            proc.stdin.write("call\n")
            proc.stdin.flush()
            _line(proc, "inside")
            inside = store_context_of(source, ctx)
            code = [m for m in source.mappings() if m.executable]
            proc.stdin.write("go\n")
            proc.stdin.flush()
            _, result, fuel_left = _line(proc, "after")
            after = store_context_of(source, ctx)
        proc.stdin.write("quit\n")
        proc.stdin.flush()
    finally:
        proc.kill()
        proc.wait()
    umax = (1 << 64) - 1
    report = {name: {k: (hex(v) if isinstance(v, int) and v > 0xFFFF else v) for k, v in _values(d).items()}
              for name, d in (("rest", rest), ("inside", inside), ("after", after))}
    print(f"{release} {rest.layout.id} {json.dumps(report)}")
    assert result == "102"
    for d in (rest, after):
        assert (d.verdict.state, d.verdict.sure) == (NOT_IN_WASM, True), (release, d.verdict)
        assert d.get("stack_limit") == umax
    assert (inside.verdict.state, inside.verdict.sure) == (IN_HOST_CALL, False), (release, inside.verdict)
    [exit_fp] = [inside.get(r) for r in EXIT_FPS if inside.get(r) is not None]
    entry = [inside.get(r) for r in ENTRIES if inside.get(r) is not None]
    limit = inside.get("stack_limit")
    assert limit < exit_fp < min(entry)
    assert 0 < min(entry) - limit <= MAX_WASM_STACK
    assert any(m.start <= inside.get("last_wasm_exit_pc") < m.end for m in code)
    assert rest.get("fuel_consumed") == -1000 and rest.get("epoch_deadline") == 5
    assert rest.get("fuel_consumed") < inside.get("fuel_consumed") <= after.get("fuel_consumed") == -int(fuel_left)
