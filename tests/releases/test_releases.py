"""`scan` against a real child of each wasmtime wheel: `make test-releases` (see conftest.py).

For each release (one test id each) the child instantiates components of several
shapes (child.py) and sleeps; from the main venv we scan it by pid and through a
gcore core and check:

* the release identified is the runtime the wheel bundles (read from the wheel's
  own library, cross-checked against the wheel -> runtime table measured for 33-51);
* one context per component instance the child made, each matched to its shape by
  its counts;
* every context's shape came from the runtime's stored `VMComponentOffsets` copy
  (at the distance measured for each release), none unrecovered, no anomaly;
* the counts in that stored copy, read here without the scanner, are the shapes'
  counts one to one (from 45.0.0 the component-model-async shapes' are printed:
  runtime callbacks, unsafe intrinsics, trampolines per release);
* every decoded record's bytes are the bytes at its address in the child
  (`/proc/PID/mem`, read here independently of the scanner);
* the core gives the same contexts, counts, shapes and records;
* from 39.0.0 on (wasmtime-py's component API), the real flag words of the
  `lower_lift` and `fused_adapter` contexts around a call sequence (read by the
  child itself at the address the scan gives) are the words an emulated instance
  of the same release and counts holds through the same sequence (`host_call`,
  `host_post_return`, `FusedAdapter`), and a second call without post_return
  fails, or not, as it does for real.
"""

import json
import re
import struct
import warnings
from pathlib import Path

import pytest
from packaging.version import Version

from vmctx_emu import OwnedComponentInstance
from vmctx_emu.describe import context_doc
from vmctx_emu.layouts.releases import wasmtime_layout
from vmctx_emu.live.identify import wasmtime_version_in
from vmctx_emu.runtime.adapter import FusedAdapter, HostCallError, host_call, host_post_return

# Wheels whose bundled runtime is another patch release (measured in every wheel 33.0.0-51.0.0;
# every other wheel of that range bundles its own version).
BUNDLED = {"37.0.0": "37.0.2", "38.0.0": "38.0.1", "47.0.1": "47.0.0", "50.0.1": "50.0.0"}
MEASURED_UP_TO = Version("51.0.0")
# Where the runtime keeps the stored offsets copy, bytes before the context, by runtime major (measured).
STORED_AT = {33: 160, 34: 220, 35: 236, 36: 236, 37: 236, 38: 236, 39: 236, 40: 236, 41: 236,
             42: 204, 43: 204, 44: 204, 45: 204, 46: 204, 47: 204, 48: 204, 49: 188, 50: 188, 51: 188}
# Anomalies decode may report for a release and still pass, as {release: {kind, ...}}. None so far.
EXPECTED_ANOMALIES = {}

ANY = object()
PSEUDO_PATH = re.compile(r"\[[a-z:_ -]+\] \+ 0x[0-9a-f]+ \(([rwxps-]{4})\)")


def _resources(host, major):
    return {"num_lowerings": int(host), "num_runtime_component_instances": 1,
            "num_trampolines": 4 if host else 3, "num_resources": 2}


def _measured(table, major):
    """A count measured per runtime major; ANY past the wheels measured (a new release may change it)."""
    return table[major] if major <= MEASURED_UP_TO.major else ANY


# context.get/context.set are unsafe intrinsics, and the context holds a func ref for every
# intrinsic up to the highest index used: `UnsafeIntrinsic` puts store-data-address and 8 native
# loads/stores (and from 47 8 checked ones) before context-get-i32-0, then context-set-i32-0.
# Measured: the stored num_unsafe_intrinsics is this + 1 with context.get alone, + 2 with both.
CONTEXT_GET_INTRINSIC = {45: 9, 46: 9, 47: 17, 48: 17, 49: 17, 50: 17, 51: 17}
# The trampolines of child.py's ASYNC_FUSED (an async lower of a sibling's async lift with a
# callback, plus task.return and subtask.drop): measured per runtime major.
ASYNC_FUSED_TRAMPOLINES = {45: 5, 46: 5, 47: 5, 48: 5, 49: 6, 50: 6, 51: 7}
ONE = {"num_runtime_component_instances": 1}

# The counts each shape of child.py gives its context (absent counts are 0), with and without
# its host imports (child.py builds it without them where the C API has no host functions),
# for the wheel's runtime major.
SHAPE_COUNTS = {
    "lower_lift": lambda host, major: {"num_lowerings": 1, "num_runtime_component_instances": 1,
                                       "num_trampolines": 1},
    "strings": lambda host, major: (
        {"num_lowerings": 2, "num_runtime_memories": 2, "num_runtime_reallocs": 1, "num_runtime_post_returns": 3,
         "num_runtime_component_instances": 1, "num_trampolines": 2} if host else
        {"num_runtime_memories": 1, "num_runtime_reallocs": 1, "num_runtime_post_returns": 3,
         "num_runtime_component_instances": 1}),
    "resources": _resources,
    "two_in_one_store": _resources,
    # How many trampolines the adapter brings changes with the release (1 to 5 seen with the host import).
    "fused_adapter": lambda host, major: {"num_lowerings": int(host), "num_runtime_component_instances": 3,
                                          "num_trampolines": ANY},
    "lift_only": lambda host, major: ONE,
    # Component-model async (45+, child.py's async engine).
    "async_callback": lambda host, major: {"num_runtime_callbacks": 1, **ONE},
    "context": lambda host, major: {"num_unsafe_intrinsics": _plus(_measured(CONTEXT_GET_INTRINSIC, major), 2),
                                    **ONE},
    "context_get": lambda host, major: {"num_unsafe_intrinsics": _plus(_measured(CONTEXT_GET_INTRINSIC, major), 1),
                                        **ONE},
    "waitable_set": lambda host, major: {"num_runtime_memories": 1, "num_trampolines": 5, **ONE},
    "streams_futures": lambda host, major: {"num_runtime_memories": 1, "num_trampolines": 14, **ONE},
    "task_builtins": lambda host, major: {"num_runtime_callbacks": 1, "num_trampolines": 7, **ONE},
    "stackful": lambda host, major: {"num_trampolines": 1, **ONE},
    "async_fused": lambda host, major: {"num_runtime_callbacks": 1, "num_runtime_component_instances": 3,
                                        "num_trampolines": _measured(ASYNC_FUSED_TRAMPOLINES, major)},
    "cancellable": lambda host, major: {"num_runtime_memories": 1, "num_trampolines": 2, **ONE},
    "async_lower_host": lambda host, major: {"num_lowerings": 1, "num_runtime_memories": 1, "num_trampolines": 1,
                                             **ONE},
}


def _plus(count, n):
    return ANY if count is ANY else count + n


def _spec(report, shape, release):
    """The counts `shape` of the child's report gives its context in wheel `release`."""
    return SHAPE_COUNTS[shape](bool(report["shapes"][shape]["host_imports"]), Version(release).major)


def _runtime_version(child):
    """The runtime the wheel bundles, read from the library the child loaded."""
    library = Path(child.report["library"]).resolve()
    assert child.venv.resolve() in library.parents, f"child loaded {library}, not its venv's"
    found = wasmtime_version_in(library.read_bytes())
    assert found, f"no Wasmtime version string in {library}"
    if Version(child.release) <= MEASURED_UP_TO:
        assert found == BUNDLED.get(child.release, child.release), f"wheel {child.release}: library says {found}"
    else:
        assert Version(found).major == Version(child.release).major, f"wheel {child.release}: library says {found}"
    return found


def _where(child, result):
    return f"wheel {child.release}, {result.source}"


def _key(ctx):
    return ctx.address, tuple(sorted((ctx.counts or {}).items()))


def _matches(counts, spec):
    counts = counts or {}
    if any(name not in counts and value not in (0, ANY) for name, value in spec.items()):
        return False
    return all(spec.get(name, 0) in (ANY, value) for name, value in counts.items())


def _slots(report):
    """One shape name per component instance the child made."""
    return [name for name, shape in report["shapes"].items() for _ in range(shape["instances"])]


def _match(counts, report, release):
    """Count dicts matched one to one to the child's instances: {slot index: index into counts}."""
    slots = _slots(report)
    specs = [_spec(report, name, release) for name in slots]
    fits = [[i for i, spec in enumerate(specs) if _matches(c, spec)] for c in counts]
    owner = {}  # slot -> counts index

    def augment(c, seen):
        for s in fits[c]:
            if s not in seen:
                seen.add(s)
                if s not in owner or augment(owner[s], seen):
                    owner[s] = c
                    return True
        return False

    for c in range(len(counts)):
        augment(c, set())
    return owner


def _assign(contexts, report, release):
    """Contexts matched one to one to the child's instances by their counts, or (instances, contexts) left over."""
    slots = _slots(report)
    owner = _match([ctx.counts for ctx in contexts], report, release)
    matched = set(owner.values())
    return ([slots[s] for s in range(len(slots)) if s not in owner],
            [contexts[c] for c in range(len(contexts)) if c not in matched])


def _stored_words(pid, address, major):
    """The u32 words from where the runtime's stored `VMComponentOffsets` copy starts to the context
    (the counts in the Rust struct's order, then the offsets and the size), read here, not by scan."""
    at = STORED_AT.get(major)
    if at is None:
        return None
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(address - at)
        raw = mem.read(at)
    return list(struct.unpack(f"<{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))


def _stored_counts(pid, address, layout, major):
    """The counts Wasmtime itself stored before the context at `address`, or None where not measured."""
    words = _stored_words(pid, address, major)
    return None if words is None else dict(zip(layout.count_names, words))


def _describe(ctx, pid=None):
    """One context in a failure message; with `pid`, an undecoded one's first bytes, mapping and stored copy too."""
    counts = {k: v for k, v in (ctx.counts or {}).items() if v}
    text = f"{ctx.address:#x} counts {counts} shape_from {ctx.shape_from!r} notes {ctx.notes}"
    if pid is not None and ctx.decoded is None:
        text += f" [{_around(pid, ctx.address)}]"
        try:
            words = _stored_words(pid, ctx.address, Version(ctx.wasmtime).major)
        except OSError as e:
            words = f"unreadable: {e}"
        text += f" [stored copy's words from ctx-{STORED_AT.get(Version(ctx.wasmtime).major)}: {words}]"
    return text


def _around(pid, address):
    """The 32 bytes at `address` in the child and the mapping holding it, for a failure message."""
    try:
        with open(f"/proc/{pid}/mem", "rb") as mem:
            mem.seek(address)
            head = mem.read(32)
        with open(f"/proc/{pid}/maps") as maps:
            where = next((line.strip() for line in maps
                          if int(line.split("-")[0], 16) <= address < int(line.split()[0].split("-")[1], 16)), "?")
    except OSError as e:
        return f"unreadable: {e}"
    return f"bytes {head.hex(' ', 8)} ({head[:16]!r}) in mapping {where!r}"


# ----------------------------------------------------------------------- tests

def test_release_identified(child, live_scan):
    """scan names the runtime the wheel bundles, read from that wheel's library mapped in the child."""
    expected = _runtime_version(child)
    assert live_scan.wasmtime == expected, _where(child, live_scan)
    assert live_scan.wasmtime_from.startswith("version string in "), live_scan.wasmtime_from
    assert str(Path(child.report["library"]).resolve()) in live_scan.wasmtime_from, live_scan.wasmtime_from


def test_one_context_per_instance(child, live_scan):
    """As many contexts as component instances the child made, each with the counts of its shape."""
    found = live_scan.contexts
    assert len(found) == child.report["instances"], (
        f"{_where(child, live_scan)}: expected {child.report['instances']} contexts "
        f"({ {k: v['instances'] for k, v in child.report['shapes'].items()} }), found {len(found)}: "
        + "; ".join(_describe(c, child.pid) for c in found) + f"; scan notes: {live_scan.notes}")
    missing, extra = _assign(found, child.report, child.release)
    assert (missing, [_describe(c, child.pid) for c in extra]) == ([], []), _where(child, live_scan)


def test_dropped_stores_are_not_listed_as_live(child, live_scan, core_scan, say):
    """The child dropped some stores before it was ready (39+): every context listed is live, by pid and core,
    and the contexts the drops left behind are counted as freed (unless their memory was reused since)."""
    for result in (live_scan, core_scan):
        states = {c.state for c in result.contexts}
        assert states <= {"live"}, [(hex(c.address), c.liveness.evidence) for c in result.contexts
                                     if c.state != "live"]
    dropped = child.report.get("dropped", 0)
    say(f"{child.release}: {dropped} stores dropped before the scan; freed contexts found: "
        f"pid {live_scan.freed}, core {core_scan.freed}")
    assert live_scan.freed <= dropped and core_scan.freed == live_scan.freed


def test_shapes_from_stored_offsets(child, live_scan):
    """Every context's counts come from the runtime's own stored copy, at the measured distance."""
    at = STORED_AT.get(Version(live_scan.wasmtime).major)
    for ctx in live_scan.contexts:
        assert ctx.shape_from and ctx.decoded is not None, f"{_where(child, live_scan)}: {_describe(ctx, child.pid)}"
        assert not [n for n in ctx.notes if "not recovered" in n], f"{_where(child, live_scan)}: {_describe(ctx)}"
        if at is not None:
            assert ctx.shape_from.startswith(f"VMComponentOffsets stored at ctx-{at} "), _describe(ctx)


ASYNC_SHAPES = ("async_callback", "context", "context_get", "waitable_set", "streams_futures", "task_builtins",
                "stackful", "async_fused", "cancellable", "async_lower_host")


def test_stored_counts_are_the_shapes(child, live_scan, say):
    """The counts Wasmtime stored before each context (read here, not by scan) are its shape's, one to
    one; each component-model-async shape's are printed, so every run records them."""
    major = Version(live_scan.wasmtime).major
    if major not in STORED_AT:
        pytest.skip(f"where Wasmtime {live_scan.wasmtime} stores its VMComponentOffsets copy is not measured")
    layout = wasmtime_layout(live_scan.wasmtime)
    stored = [_stored_counts(child.pid, ctx.address, layout, major) for ctx in live_scan.contexts]
    owner = _match(stored, child.report, child.release)
    slots = _slots(child.report)
    for s, c in sorted(owner.items()):
        if slots[s] in ASYNC_SHAPES:
            say(f"{child.release}: {slots[s]} stored counts: " + (", ".join(
                f"{k}={v}" for k, v in stored[c].items() if v) or "all 0"))
    missing = [slots[s] for s in range(len(slots)) if s not in owner]
    extra = [f"{ctx.address:#x}: {stored[c]}" for c, ctx in enumerate(live_scan.contexts) if c not in owner.values()]
    assert (missing, extra) == ([], []), _where(child, live_scan)


def test_no_unexpected_anomalies(child, live_scan):
    allowed = EXPECTED_ANOMALIES.get(child.release, set())
    odd = {f"{ctx.address:#x}": [a.to_dict() for a in ctx.decoded.anomalies if a.kind not in allowed]
           for ctx in live_scan.contexts if ctx.decoded is not None}
    assert {k: v for k, v in odd.items() if v} == {}, _where(child, live_scan)


def test_records_are_the_childs_bytes(child, live_scan):
    """Each record's value is what /proc/PID/mem holds at its address; so is each whole context."""
    checked = 0
    with open(f"/proc/{child.pid}/mem", "rb") as mem:
        for ctx in live_scan.contexts:
            if ctx.decoded is None:
                continue
            for record in context_doc(ctx)["records"]:
                width = (len(record["value"]) - 2) // 2
                mem.seek(int(record["address"], 16))
                raw = mem.read(width)
                assert int.from_bytes(raw, "little") == int(record["value"], 16), (
                    f"{_where(child, live_scan)}, context {ctx.address:#x}: {record}, memory has {raw.hex()}")
                checked += 1
            image = ctx.decoded.ctx.to_bytes()
            mem.seek(ctx.address)
            assert mem.read(len(image)) == image, f"{_where(child, live_scan)}, context {ctx.address:#x}"
    assert checked or not live_scan.contexts


def test_core_matches_live(child, live_scan, core_scan):
    """A gcore of the child scans to the same release, contexts, counts, shapes and records."""
    assert (core_scan.wasmtime, core_scan.wasmtime_from.startswith("version string in ")) == \
        (live_scan.wasmtime, True), core_scan.wasmtime_from
    assert sorted(_key(c) for c in core_scan.contexts) == sorted(_key(c) for c in live_scan.contexts), (
        f"core: {[_describe(c) for c in core_scan.contexts]}; notes {core_scan.notes}\n"
        f"live: {[_describe(c) for c in live_scan.contexts]}")
    live = {c.address: c for c in live_scan.contexts}
    for ctx in core_scan.contexts:
        twin = live[ctx.address]
        assert ctx.shape_from == twin.shape_from, _describe(ctx)
        if ctx.decoded is None or twin.decoded is None:
            assert ctx.decoded is twin.decoded is None, _describe(ctx)
            continue
        assert [a.to_dict() for a in ctx.decoded.anomalies] == [a.to_dict() for a in twin.decoded.anomalies]
        assert ctx.decoded.ctx.to_bytes() == twin.decoded.ctx.to_bytes(), f"core {core_scan.source}: {_describe(ctx)}"
        assert _records(ctx, core=True) == _records(twin, core=False), f"core {core_scan.source}: {_describe(ctx)}"


def _records(ctx, core):
    """The records, with what a core cannot tell the same way said as a core says it.

    A core's file notes name only file mappings: where the live scan says "[heap] + 0x... (rw-p)"
    (a kernel pseudo-path, also inside a followed VMFuncRef's text) the core scan says
    "anonymous rw-p memory".
    """
    records = context_doc(ctx)["records"]
    if not core:
        for record in records:
            pointee = record.get("points_to")
            if pointee:  # since schema 4 an object whose text the record's text repeats
                record["text"] = PSEUDO_PATH.sub(r"anonymous \1 memory", record["text"])
                record["points_to"] = json.loads(PSEUDO_PATH.sub(r"anonymous \1 memory", json.dumps(pointee)))
    return records


# ------------------------------------------------------------- flag words

PY_COMPONENT_API = Version("39.0.0")  # wasmtime-py's wasmtime.component: the child can call components
FLAG_SHAPES = ("lower_lift", "fused_adapter")
# The fused_adapter shape's runtime component instances: the inliner numbers the root 0, then each
# nested instantiation in order ($b 1, $a 2). The host calls A's export; A calls B through a fused
# adapter; B calls the host import `log`.
ADAPTER_CALLER, ADAPTER_CALLEE = 2, 1
# Every moment the child reads the words at (child.flag_sequence), in order.
MOMENTS = ("rest", "inside", "after_call", "after_post_return", "after_call_again", "after_second_call",
           "after_second_post_return")


def _flags_at(ctx):
    """The address of the context's first flag word."""
    return ctx.address + ctx.layout.offsets(8, **ctx.counts).region(ctx.layout.flags_field().name).offset


def _flag_contexts(child, live_scan):
    """shape -> its one context in the scan, for the flag shapes the child can call."""
    found = {}
    for shape in child.report["flag_shapes"]:
        spec = _spec(child.report, shape, child.release)
        fits = [ctx for ctx in live_scan.contexts if ctx.decoded is not None and _matches(ctx.counts, spec)]
        assert len(fits) == 1, f"{_where(child, live_scan)}: {shape}: {[_describe(c) for c in fits]}"
        found[shape] = fits[0]
    return found


def _emulated_header(release):
    """Plausible non-null pointers for the release's header fields (the store as a fat pointer)."""
    return {name: (0x1000 * (k + 1), 0x8000) if name == "store" else 0x1000 * (k + 1)
            for k, name in enumerate(wasmtime_layout(release).header_names())}


def _post_return(flags):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # a no-op from v42
        host_post_return(flags)


def emulated_sequence(release, counts, shape):
    """child.flag_sequence on an emulated instance of `release` with `counts`: the same moments."""
    n = counts["num_runtime_component_instances"]
    with OwnedComponentInstance(counts, wasmtime=release, debug_assertions=False,
                                header=_emulated_header(release)) as ctx:
        flags = [ctx.instance_flags(i) for i in range(n)]

        def words():
            return [f.value for f in flags]

        if shape == "fused_adapter":
            entry, callee = flags[ADAPTER_CALLER], flags[ADAPTER_CALLEE]

            def call(probe=lambda: None):
                host_call(entry, lambda: FusedAdapter(entry, callee).call(probe))
        else:
            entry = flags[0]

            def call(probe=lambda: None):
                host_call(entry, probe)

        seen = {"rest": words()}
        inside = []
        call(lambda: inside.append(words()))
        seen["inside"] = inside
        seen["after_call"] = words()
        _post_return(entry)
        seen["after_post_return"] = words()
        call()
        seen["after_call_again"] = words()
        try:
            call()
            seen["second_call"] = None
        except HostCallError as e:
            seen["second_call"] = str(e)
        seen["after_second_call"] = words()
        if seen["second_call"] is not None:
            _post_return(entry)
            seen["after_second_post_return"] = words()
    return seen


def _differences(release, shape, real, emulated):
    """Every moment where the real and emulated words (or the second call's outcome) disagree."""
    out = []
    for moment in MOMENTS:
        if real.get(moment) != emulated.get(moment):
            out.append(f"wheel {release}, {shape}, {moment}: real {real.get(moment)}, "
                       f"emulated {emulated.get(moment)}")
    ours, theirs = emulated["second_call"], real["second_call"]
    if (ours is None) != (theirs is None) or (ours is not None and ours not in theirs):
        out.append(f"wheel {release}, {shape}, second_call: real {theirs!r}, emulated {ours!r}")
    return out


def _summary(seen):
    short = {m: seen[m][0] if m == "inside" and len(seen[m]) == 1 else seen[m] for m in MOMENTS if m in seen}
    words = " ".join(f"{m} {w[0] if len(w) == 1 else w}" for m, w in short.items())
    second = seen["second_call"]
    return f"{words}; second call {'ok' if second is None else 'fails: ' + second.splitlines()[0]}"


def test_flag_words_match_the_emulator(child, live_scan, say):
    """The real flag words at each moment of a call sequence are the emulator's, shape by shape."""
    if Version(child.release) < PY_COMPONENT_API:
        pytest.skip(f"wasmtime-py {child.release} has no Python component API (from 39.0.0): the child cannot call")
    contexts = _flag_contexts(child, live_scan)
    assert set(contexts) == set(FLAG_SHAPES), child.report["flag_shapes"]
    real = child.request("flags", {shape: {"flags_at": _flags_at(ctx),
                                           "instances": ctx.counts["num_runtime_component_instances"]}
                                   for shape, ctx in contexts.items()})
    errors = {shape: seen["error"] for shape, seen in real.items() if "error" in seen}
    assert not errors, f"wheel {child.release}: the child's sequence failed: {errors}"
    differences = []
    for shape, ctx in contexts.items():
        seen = real[shape]
        assert len(seen["inside"]) == 1, f"wheel {child.release}, {shape}: host import called {len(seen['inside'])}x"
        say(f"{child.release}: {shape} flag words (real): {_summary(seen)}")
        emulated = emulated_sequence(live_scan.wasmtime, ctx.counts, shape)
        differences += _differences(child.release, shape, seen, emulated)
    # The sequence ends at rest: the child's contexts are still the bytes the other tests were given.
    with open(f"/proc/{child.pid}/mem", "rb") as mem:
        for ctx in live_scan.contexts:
            if ctx.decoded is not None:
                image = ctx.decoded.ctx.to_bytes()
                mem.seek(ctx.address)
                assert mem.read(len(image)) == image, f"{_where(child, live_scan)}: {_describe(ctx)} changed"
    assert differences == [], "the emulator disagrees with real Wasmtime:\n" + "\n".join(differences)
