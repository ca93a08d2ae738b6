"""Live or freed, against real Wasmtime 50: stores dropped before a scan, and threads that create and drop
stores while it runs. A scan must list no freed context as live, by pid and from a core.

The child keeps stores of one shape (MEMORY_REALLOC_POST_RETURN: counts no other shape has) and drops or
churns stores of another (LOWER_LIFT), so which contexts may be live is known from their counts alone.
"""

import json
import platform
import select
import subprocess
import sys
import textwrap
from importlib.metadata import version

import pytest

wasmtime = pytest.importorskip("wasmtime")
if not version("wasmtime").startswith("50."):
    pytest.skip(f"needs wasmtime 50.x, found {version('wasmtime')}", allow_module_level=True)
if sys.platform != "linux" or platform.machine() != "x86_64":
    pytest.skip("reads /proc and x86-64 cores", allow_module_level=True)

from vmctx_emu.live import scan  # noqa: E402

from conftest import run_cli  # noqa: E402
from cores import SMALL_MEMORIES, gcore  # noqa: E402
from test_real_wasmtime import LOWER_LIFT, MEMORY_REALLOC_POST_RETURN  # noqa: E402

THREADS, HELD = 4, 3  # churning threads, and the stores each holds at most
ANSWER_TIMEOUT = 120

CHILD = textwrap.dedent("""
    import gc, json, sys, threading, wasmtime
    from wasmtime.component import Component, Linker

    def instantiate(engine, wat, host):
        store = wasmtime.Store(engine)
        linker = Linker(engine)
        with linker.root() as root:
            for name in host:
                root.add_func(name, lambda store, *args: None if name == "peek" else 3)
        return store, linker.instantiate(store, Component(engine, wat))

    {small}
    engine = small_engine(wasmtime)
    kept = [instantiate(engine, {keep!r}, ["len", "peek"])]
    dropped = [instantiate(engine, {drop!r}, ["add"]) for _ in range(5)]
    state = threading.Condition()
    paused, stop, parked, alive = False, False, 0, {{}}

    def churn(k):
        global parked
        engine = small_engine(wasmtime)
        held = []
        n = 0
        while True:
            with state:
                if paused or stop:
                    alive[k] = len(held)
                    parked += 1
                    state.notify_all()
                    while paused and not stop:
                        state.wait()
                    parked -= 1
                    if stop:
                        return
            held.append(instantiate(engine, {drop!r}, ["add"]))
            n += 1
            if len(held) > {held}:
                held.pop(n % len(held))
                gc.collect()

    threads = []
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()[0]
        if command == "drop":
            dropped.clear()
            gc.collect()
            print("dropped", flush=True)
        elif command == "churn":
            threads = [threading.Thread(target=churn, args=(k,)) for k in range({threads})]
            for t in threads:
                t.start()
            print("churning", flush=True)
        elif command in ("pause", "stop"):
            with state:
                paused, stop = True, command == "stop"
                state.notify_all()
                while parked < len(threads):
                    state.wait()
            print(command, json.dumps(sum(alive.values())), flush=True)
            if stop:
                break
        elif command == "resume":
            with state:
                paused = False
                state.notify_all()
            print("resumed", flush=True)
""").format(keep=MEMORY_REALLOC_POST_RETURN, drop=LOWER_LIFT, held=HELD, threads=THREADS,
            small=SMALL_MEMORIES)

KEPT = {"num_lowerings": 2, "num_runtime_memories": 2, "num_runtime_reallocs": 1, "num_runtime_post_returns": 3,
        "num_runtime_component_instances": 1, "num_trampolines": 2}
DROPPED = {"num_lowerings": 1, "num_runtime_component_instances": 1, "num_trampolines": 1}


class Child:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.expect("ready")

    @property
    def pid(self):
        return self.proc.pid

    def expect(self, word):
        ready, _, _ = select.select([self.proc.stdout], [], [], ANSWER_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        assert line.split(" ", 1)[0].strip() == word, f"the child answered {line!r}, not {word!r}"
        return line.split(" ", 1)[1] if " " in line else None

    def ask(self, command, answer):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.expect(answer)

    def close(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def child():
    c = Child()
    yield c
    c.close()


def shapes(result, state):
    """The counts (non-zero ones) of every context of `state`."""
    return [{k: v for k, v in c.counts.items() if v} for c in result.contexts if c.state == state and c.counts]


def check_no_guess_unsaid(result):
    """Every decoded context's shape is the stored one, or carries the guessed_shape anomaly."""
    for ctx in result.contexts:
        if ctx.decoded is not None and not ctx.shape_from.startswith("VMComponentOffsets stored at"):
            assert any(a.kind == "guessed_shape" for a in ctx.decoded.anomalies), (hex(ctx.address), ctx.shape_from)


def test_dropped_stores_are_freed_not_live(child, tmp_path, capsys):
    before = scan(child.pid)
    assert sorted(map(str, shapes(before, "live"))) == sorted(map(str, [KEPT] + [DROPPED] * 5))
    dropped = {c.address for c in before.contexts if c.counts and c.counts["num_lowerings"] == 1}
    child.ask("drop", "dropped")
    core = gcore(child.pid, tmp_path, "dropped")
    for result in (scan(child.pid), scan(core)):
        assert shapes(result, "live") == [KEPT], [(hex(c.address), c.liveness.evidence) for c in result.contexts]
        # The five dropped contexts are freed (their bytes may since hold other data: then no context at all).
        assert result.freed <= 5 and not dropped & {c.address for c in result.contexts if c.state == "live"}
        check_no_guess_unsaid(result)
        everything = scan(result.source.split(" ", 1)[1] if result.source.startswith("core ") else child.pid,
                          include_freed=True)
        freed = [c for c in everything.contexts if c.state == "freed"]
        assert len(freed) == result.freed and {c.address for c in freed} <= dropped
        for ctx in freed:
            assert ctx.liveness.evidence[0].startswith("allocator: "), ctx.liveness.evidence
            assert any(w in ctx.liveness.evidence[0] for w in ("free chunk", "top chunk", "tcache", "freed and reused"))
    status, out, _ = run_cli(["scan", "--core", core], capsys)
    assert status == 0 and "1 component context listed (1 live" in out.splitlines()[0]
    status, out, _ = run_cli(["scan", "--core", core, "--all", "--json"], capsys)
    doc = json.loads(out)
    assert doc["liveness"]["live"] == 1 and doc["liveness"]["freed"] == len(freed)
    assert sorted(c["liveness"]["state"] for c in doc["contexts"]) == sorted(["live"] + ["freed"] * len(freed))


def test_threads_churning_stores_leave_no_freed_context_listed_as_live(child, tmp_path):
    child.ask("churn", "churning")
    # While the threads run, the scan sees each block at its own instant: a thread may drop a store already
    # read as live and make one the scan reaches later, as often as it likes, so no count holds; what must never
    # happen is a guess left unsaid, or a crash.
    for _ in range(3):
        result = scan(child.pid)
        assert shapes(result, "live"), "not even the kept store's context"
        check_no_guess_unsaid(result)
    # Paused (each thread between two steps), the answer is exact: the stores alive, and nothing else.
    alive = json.loads(child.ask("pause", "pause"))
    core = gcore(child.pid, tmp_path, "churn")
    for result in (scan(child.pid), scan(core)):
        live = shapes(result, "live")
        assert sorted(map(str, live)) == sorted(map(str, [KEPT] + [DROPPED] * (5 + alive))), (
            len(live), alive, [(hex(c.address), c.liveness.evidence) for c in result.contexts if c.state != "live"])
        assert result.freed > 0
        check_no_guess_unsaid(result)
    child.ask("stop", "stop")
