"""The pointer graph (`describe/graph.py`): well-formed SVG, one node per context, folding of alike stores and
contexts, hover text everywhere, the same bytes for the same input, bounded size and time; from the demo's
dumps and from real Wasmtime processes."""

import platform
import random
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from types import SimpleNamespace

import pytest

from vmctx_emu import Component, OwnedComponentInstance, VMLowering
from vmctx_emu.demo import write_sample_dumps
from vmctx_emu.describe.graph import FOLD_MIN, GRAPH_STYLE, MAX_CONTEXT_NODES, MAX_TARGETS, graph_svg
from vmctx_emu.dumps.decode import decode
from vmctx_emu.dumps.dump import load_dump
from vmctx_emu.live.liveness import FREED, Liveness
from vmctx_emu.live.scanner import LiveContext

SVG = "{http://www.w3.org/2000/svg}"
BASE = 0x7F00_0000_0000
# What the demo's after.bin points at (`demo.write_sample_dumps`): its store, lowering 0's callee, memory 0.
STORE, CALLEE, MEMORY = 0x5555_0000_1000, 0x6000_0000_0100, 0x7000_0000_1000


def live(path, address=None):
    """A dump wrapped as a scanned context (decoded; no names for its pointers, as from a dump)."""
    dumped = load_dump(path, address=address)
    return LiveContext(dumped.vmctx, dumped.wasmtime, dumped.layout, counts=dict(dumped.offsets.component.counts()),
                       decoded=decode(dumped), release=dumped.wasmtime)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    ctx, before, after = write_sample_dumps(tmp_path_factory.mktemp("demo"))
    return {"ctx": live(ctx), "before": live(before), "after": live(after), "after_path": after}


def alike(ctx, n, store=None):
    """`n` copies of `ctx` at other addresses; `store(i)`: each in the store at that address."""
    return [replace(ctx, address=BASE + i * 0x1000,
                    store_context=None if store is None else SimpleNamespace(
                        address=store(i), layout=SimpleNamespace(rust_struct="VMStoreContext"), verdict=None))
            for i in range(n)]


def parsed(svg):
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("class") == "vmctx-graph"
    return root


def nodes(root, kind):
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == f"node {kind}"]


def test_a_dump_draws_its_store_host_function_and_memory(demo):
    root = parsed(graph_svg([demo["after"]]))
    [ctx] = nodes(root, "context")
    assert int(ctx.get("data-address"), 16) == demo["after"].address
    assert [int(n.get("data-address"), 16) for n in nodes(root, "store")] == [STORE]
    assert [int(n.get("data-address"), 16) for n in nodes(root, "host")] == [CALLEE]
    assert [int(n.get("data-address"), 16) for n in nodes(root, "memory")] == [MEMORY]
    assert {g.get("class") for g in root.iter(f"{SVG}g") if g.get("class", "").startswith("edge ")} == \
        {"edge host", "edge memory", "edge store"}
    [store] = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge store"]
    assert "to the store at 0x555500001000: store (a pointer initialize_vmctx writes" in store.find(f"{SVG}title").text


def test_no_contexts_is_an_empty_graph_that_says_so():
    root = parsed(graph_svg([]))
    assert root.find(f"{SVG}title").text == "pointer graph: no contexts" and not nodes(root, "context")


def test_unset_and_poisoned_pointers_are_no_edges(demo):
    root = parsed(graph_svg([demo["ctx"]]))  # as initialized in a debug build: all but the header poisoned
    assert len(nodes(root, "context")) == 1
    assert [g.get("class") for g in root.iter(f"{SVG}g") if g.get("class", "").startswith("edge")] == ["edge store"]
    assert not nodes(root, "host") and not nodes(root, "memory") and not nodes(root, "core")


def test_every_node_and_edge_has_hover_text_saying_what_it_is(demo):
    undecoded = replace(demo["before"], address=BASE, decoded=None)
    root = parsed(graph_svg([demo["after"], demo["before"], undecoded]))
    drawn = [g for g in root.iter(f"{SVG}g") if g.get("class", "").split(" ")[0] in ("node", "edge")]
    assert len(drawn) >= 7
    for g in drawn:
        title = g.find(f"{SVG}title")
        assert title is not None and title.text, g.attrib
    ctx = next(n for n in nodes(root, "context") if int(n.get("data-address"), 16) == demo["after"].address)
    text = ctx.find(f"{SVG}title").text
    assert "state: unknown" in text and "layout: seed" in text and "options: --wasmtime seed --lowerings 3" in text
    lone = next(n for n in nodes(root, "context") if int(n.get("data-address"), 16) == BASE)
    assert "not decoded" in lone.find(f"{SVG}title").text


def test_several_pointers_to_one_node_are_one_edge_with_a_count(demo):
    root = parsed(graph_svg(alike(demo["after"], 1)))
    # after.bin's lowerings 0..2 share no callee, but lowering_anyfuncs all hold its own address: no edge
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge host"]
    assert len(edges) == 1 and edges[0].find(f"{SVG}title").text.startswith("1 pointer from the context at ")


@pytest.mark.parametrize("n", [1, 2, FOLD_MIN - 1])
def test_below_fold_min_every_context_is_one_node(demo, n):
    contexts = alike(demo["after"], n)
    root = parsed(graph_svg(contexts))
    assert sorted(int(g.get("data-address"), 16) for g in nodes(root, "context")) == [c.address for c in contexts]
    assert "like this" not in graph_svg(contexts)


def test_alike_contexts_of_one_store_fold_into_one_with_a_count(demo):
    contexts = alike(demo["after"], 2000)
    svg = graph_svg(contexts)
    root = parsed(svg)
    assert len(nodes(root, "context")) == 1 and "× 2,000 like this" in svg
    fold = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "fold")
    assert f"{contexts[0].address:#x}, {contexts[1].address:#x}" in fold.find(f"{SVG}title").text
    assert "and 1,992 more" in fold.find(f"{SVG}title").text


def test_alike_stores_fold_into_one_group_and_unlike_ones_stay(demo):
    one_each = alike(demo["after"], 30, store=lambda i: 0x5000_0000 + i * 0x100)
    svg = graph_svg(one_each)
    root = parsed(svg)
    assert len(nodes(root, "context")) == len(nodes(root, "store")) == 1 and "× 30 stores like this" in svg
    assert len(nodes(root, "host")) == 1  # the callee all 30 share
    few = alike(demo["after"], FOLD_MIN - 1, store=lambda i: 0x5000_0000 + i * 0x100)
    root = parsed(graph_svg(few))
    assert len(nodes(root, "context")) == len(nodes(root, "store")) == FOLD_MIN - 1
    assert len([g for g in root.iter(f"{SVG}g") if g.get("class") == "group"]) == FOLD_MIN - 1


@pytest.mark.parametrize("freed, drawn", [(FOLD_MIN, 2), (FOLD_MIN - 1, 1 + FOLD_MIN - 1)])
def test_contexts_in_another_state_are_not_alike(demo, freed, drawn):
    contexts = alike(demo["after"], FOLD_MIN + freed)
    for c in contexts[FOLD_MIN:]:
        c.liveness = Liveness(FREED, ["allocator: chunk is free"])
    svg = graph_svg(contexts)
    root = parsed(svg)
    assert len(nodes(root, "context")) == drawn
    assert [g.get("data-state") for g in nodes(root, "context")].count(FREED) == (1 if freed >= FOLD_MIN else freed)


def test_a_context_pointing_at_another_is_an_edge_between_them(demo):
    other = live(demo["after_path"], address=BASE)  # its func refs' vmctx now name the context at its old address
    root = parsed(graph_svg([demo["after"], other]))
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge context"]
    assert len(edges) == 1
    title = edges[0].find(f"{SVG}title").text
    assert title.startswith(f"2 pointers from the context at {BASE:#x} to the component context at "
                            f"{demo['after'].address:#x}: lowering_anyfuncs[0].vmctx (a func ref's vmctx: not this "
                            "context); always_trap_anyfuncs[0].vmctx"), title


def test_the_same_contexts_give_the_same_bytes_in_any_order(demo):
    contexts = alike(demo["after"], 40, store=lambda i: 0x5000_0000 + (i % 5) * 0x100) + [demo["before"]]
    shuffled = contexts[:]
    random.Random(1).shuffle(shuffled)
    assert graph_svg(contexts) == graph_svg(contexts) == graph_svg(shuffled)


def test_two_thousand_contexts_stay_small_and_quick(demo):
    contexts = alike(demo["after"], 2000, store=lambda i: 0x5000_0000 + (i % 97) * 0x100)
    start = time.perf_counter()
    svg = graph_svg(contexts)
    took = time.perf_counter() - start
    parsed(svg)
    assert len(svg.encode()) <= 1 << 20 and took <= 0.5, (len(svg), took)


def test_without_folding_at_most_max_context_nodes_are_drawn_and_the_rest_counted(demo):
    contexts = alike(demo["after"], MAX_CONTEXT_NODES + 50)
    svg = graph_svg(contexts, fold_min=len(contexts) + 1)
    assert len(nodes(parsed(svg), "context")) == MAX_CONTEXT_NODES
    assert "50 more contexts not drawn" in svg and len(svg.encode()) <= 5 << 20


@pytest.mark.parametrize("ptr", [4, 8])
def test_a_context_with_many_targets_draws_the_first_and_counts_the_rest(ptr):
    memories = MAX_TARGETS + 76
    with OwnedComponentInstance(Component(num_runtime_memories=memories, num_lowerings=2), (0x1000, 0x2000),
                                ptr=ptr) as inst:
        for i in range(memories):
            inst.set_runtime_memory(i, 0x7000 + i * 0x100)
        inst.set_lowering(0, VMLowering(0x10, 0x20), 0x30, 0)
        inst.set_lowering(1, VMLowering(0x10, 0x21), 0x31, 1)  # the same callee: one node, one edge of 2
        ctx = LiveContext(inst.vmctx, "seed", inst.layout, counts=dict(inst.offsets.component.counts()),
                          decoded=decode(inst))
        root = parsed(graph_svg([ctx]))
    assert len(nodes(root, "memory")) == MAX_TARGETS - 1  # the host function is the first target
    [more] = nodes(root, "more")
    assert more.find(f"{SVG}text").text == f"… {memories - MAX_TARGETS + 1} more pointer values"
    [host] = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge host"]
    assert host.find(f"{SVG}title").text.startswith("2 pointers from ")
    [to_more] = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge more"]
    assert to_more.find(f"{SVG}title").text.startswith(f"{memories - MAX_TARGETS + 1} more distinct pointer values")
    assert [int(n.get("data-address"), 16) for n in nodes(root, "store")] == [0x1000]


def test_hostile_names_stay_well_formed_text(demo):
    ctx = demo["after"]
    callee = ctx.decoded.ctx.offsets.lowering_callee(0)
    hostile = replace(ctx, pointees={callee: {"kind": "symbol", "symbol": "evil\x01</title><script>x</script>",
                                              "text": "evil\x01\ud800 & <b>"}})
    svg = graph_svg([hostile])
    [host] = nodes(parsed(svg), "host")
    assert host.find(f"{SVG}title").text == "host function at 0x600000000100: evil\ufffd\ufffd & <b>"
    assert "<script" not in svg


def test_standalone_carries_its_style_and_the_style_has_dark_and_print_schemes(demo):
    svg = graph_svg([demo["after"]], standalone=True)
    assert parsed(svg).find(f"{SVG}style").text == GRAPH_STYLE
    assert "@media (prefers-color-scheme: dark)" in GRAPH_STYLE and "@media print" in GRAPH_STYLE
    assert "<script" not in svg and "<style" not in graph_svg([demo["after"]])


# --------------------------------------------------------------------------- real Wasmtime


real = pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64", reason="reads /proc on x86-64")
INSTANCES = 12  # one store of alike contexts (the example's `--instances`), above FOLD_MIN


@pytest.fixture(scope="module")
def pool():
    """A real Wasmtime process: the example's own context in its store, and INSTANCES more in one store."""
    pytest.importorskip("wasmtime")
    from test_scan_inputs import stop
    from vmctx_emu.live.scanner import scan

    proc = subprocess.Popen([sys.executable, "-m", "vmctx_emu.live.example", "--seconds", "120",
                             "--instances", str(INSTANCES)],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"pid {proc.pid} ready"), line
        yield scan(proc.pid)
    finally:
        stop(proc)


@real
def test_a_real_process_one_node_per_context_unfolded_and_its_pool_folded(pool):
    contexts = pool.contexts
    assert len(contexts) == INSTANCES + 1
    root = parsed(graph_svg(contexts, fold_min=len(contexts) + 1))
    assert sorted(int(g.get("data-address"), 16) for g in nodes(root, "context")) == sorted(c.address for c in contexts)
    assert len(nodes(root, "store")) == 2
    [host] = nodes(root, "host")  # every lowering calls the example's one host function
    assert "cabi_entrypoint" in "".join(host.itertext())
    svg = graph_svg(contexts)
    assert len(nodes(parsed(svg), "context")) == 2 and f"× {INSTANCES} like this" in svg


@real
def test_a_real_component_with_memories_and_func_refs():
    pytest.importorskip("wasmtime")
    from test_live_scan import _instantiate
    from test_real_wasmtime import MEMORY_REALLOC_POST_RETURN
    from vmctx_emu.live.scanner import scan

    kept = _instantiate(MEMORY_REALLOC_POST_RETURN, {"len": lambda store, s: len(s), "peek": lambda store, s: None})
    ctx = next(c for c in scan().contexts if (c.counts or {}).get("num_runtime_memories") == 2
               and c.store_context is not None)
    root = parsed(graph_svg([ctx]))
    assert len(nodes(root, "memory")) == 2  # the lowerings' two memories, each its own
    assert nodes(root, "core")  # the realloc and post-returns' func refs lead to their core instances
    [host] = nodes(root, "host")  # both lowerings call Wasmtime's one entry point (their host data differ)
    [edge] = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge host"]
    assert edge.find(f"{SVG}title").text.startswith("2 pointers from ")
    assert [int(n.get("data-address"), 16) for n in nodes(root, "store")] == [ctx.store_context.address]
    del kept
