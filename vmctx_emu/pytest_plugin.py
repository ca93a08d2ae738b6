"""pytest fixtures for runtime tests: emulated contexts, real ones read on demand, and a field-by-field comparison.

Loaded through the `pytest11` entry point, so installing vmctx-emu is enough
(`-p vmctx_emu.pytest_plugin` loads it where plugin autoloading is off):

- `vmctx_instance(counts=None, *, wasmtime="50", debug_assertions=False, header=None, store=None)`
  builds an `OwnedComponentInstance` of that release (plausible header pointers unless given) and
  closes it after the test;
- `wasmtime_context(wat, host=None)` instantiates a WAT component in the installed `wasmtime`
  package, in this process, finds its context with one `scan` and returns a `WasmtimeContext`:
  `.refresh()` reads the context's bytes again at the address found (nothing else is scanned) and
  returns them decoded. The Store stays alive until the test ends. Skips when wasmtime or its
  component API is missing;
- `assert_same_context(actual, expected, *, only=None, ignore=())` (also a fixture of that name)
  fails naming the first differing field, its offset, both values and the release; a
  `WasmtimeContext` given to it is read afresh. `only` and `ignore` take presets, roles and fields
  (`SELECTORS`), so one call fits every release and shape.
"""

import gc
from dataclasses import replace

import pytest

from .errors import ArgumentTypeError, ArgumentValueError, ContextMismatch, VMCtxEmuError
from .layouts.types import ROLES

__all__ = ["assert_same_context", "ContextMismatch", "WasmtimeContext", "PRESETS", "SELECTORS"]

# Header pointers for emulated contexts when a test does not care: distinct, aligned, non-null.
HEADER_BASE = 0x1000
STORE_VTABLE = 0x8000

# Selections by what a sub-field holds, from the layout's declaration (its kind), never from field names.
PRESETS = {
    "pointers": "every pointer-sized sub-field: header pointers, func refs' code and vmctx, lowerings, memories, "
                "reallocs, tables, ... (values of the process, different in every run)",
}
# What `only` and `ignore` accept, first match wins: a preset, a role of `layouts.types.ROLES` (sub-fields
# declared with it: "flags", "magic", "type_index", ...), a field ("lowerings": every element), a label
# ("may_leave[1]", "trampoline_func_refs[0].vmctx"), or a prefix ending in "[" or ".".
SELECTORS = "a preset (" + ", ".join(PRESETS) + "), a role (" + ", ".join(ROLES) + "), a field, a label or a prefix"
# Differences listed after the first in a failure message.
MORE_LISTED = 5


class WasmtimeContext:
    """A component instantiated in this process by `wasmtime_context`, its context re-read on demand.

    `address`, `wasmtime` (the release read from the library), `layout`, `counts` and `shape_from` are
    what the scan found; `store` and `instance` call the component. `context` is the last read, a
    `LiveContext` (`decoded` is its decode): the one at instantiation until `refresh()` reads the
    context's bytes again (one read of `size` bytes at `address`, through /proc/self/mem as `scan`
    reads; pointer names in `points_to` stay the scan's). `assert_same_context` refreshes it itself.
    """

    def __init__(self, found, source, engine, store, instance):
        self.address, self.wasmtime, self.layout = found.address, found.wasmtime, found.layout
        self.counts, self.shape_from, self.size = dict(found.counts), found.shape_from, len(found.data)
        self.engine, self.store, self.instance = engine, store, instance
        self._source = source
        self.context = found

    @property
    def decoded(self):
        """The decode of the last read (at instantiation, or the last `refresh()`)."""
        return self.context.decoded

    def refresh(self):
        """Read the context's bytes again and return them as a new `LiveContext`, decoded (also `.context`)."""
        data = self._source.read(self.address, self.size)
        fresh = replace(self.context, data=data, decoded=None)
        fresh.decoded = fresh.decode()
        self.context = fresh
        return fresh

    def __repr__(self):
        return f"<WasmtimeContext {self.address:#x} Wasmtime {self.wasmtime} {self.layout.id} {self.counts}>"


def _decoded(ctx):
    """A `Decoded` for an instance, a dump, a `LiveContext`, a `WasmtimeContext` (read now) or a `Decoded`."""
    __tracebackhide__ = True
    from .dumps.decode import Decoded, decode

    if isinstance(ctx, Decoded):
        return ctx
    if isinstance(ctx, WasmtimeContext):
        return ctx.refresh().decoded
    decoded = getattr(ctx, "decoded", None)
    if decoded is not None:
        return decoded
    if hasattr(ctx, "memory") and hasattr(ctx, "offsets"):
        return decode(ctx)
    raise VMCtxEmuError(f"not a context: {type(ctx).__name__} (give an instance, a dump, a LiveContext, a "
                        "WasmtimeContext or a Decoded)")


def _selectors(argument, value):
    """`only`/`ignore` as a tuple of selector strings (None stays None: no restriction)."""
    __tracebackhide__ = True
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    try:
        found = tuple(value)
    except TypeError:
        raise ArgumentTypeError(f"{argument} takes a selector or a list of them ({SELECTORS}), got "
                                f"{type(value).__name__}", argument=argument, value=value) from None
    for s in found:
        if not isinstance(s, str) or not s:
            raise ArgumentTypeError(f"{argument}: a selector is a non-empty str ({SELECTORS}), got {s!r}",
                                    argument=argument, value=s)
    return found


def _matches(selector, column, label):
    if selector in PRESETS:
        return column.kind == "ptr"  # "pointers", the one preset
    if selector in ROLES:
        return column.role == selector
    if selector.endswith(("[", ".")):
        return label.startswith(selector)
    return label == selector or label.startswith((selector + "[", selector + "."))


def _selected(argument, selectors, columns, labels, decoded):
    """Per record, whether any of `selectors` picks it; a field selector picking nothing is an error (a typo
    would otherwise compare everything, or nothing)."""
    __tracebackhide__ = True
    picked = [False] * len(labels)
    for s in selectors:
        hits = [_matches(s, c, label) for c, label in zip(columns, labels)]
        if s not in PRESETS and s not in ROLES and not any(hits):
            fields = ", ".join(f.name for f in decoded.ctx.layout.declared_fields())
            raise ArgumentValueError(
                f"{argument}: {s!r} selects nothing in this {decoded.ctx.layout.id} context: it is not "
                f"{SELECTORS} of its fields ({fields})", argument=argument, value=s)
        picked = [p or h for p, h in zip(picked, hits)]
    return picked


def _release(decoded):
    return decoded.ctx.wasmtime or "seed"


def _releases(a, e):
    ra, re_ = _release(a), _release(e)
    return f"Wasmtime {ra}" if ra == re_ else f"Wasmtime {ra} vs {re_}"


def _shape(decoded):
    ctx = decoded.ctx
    return ctx.layout.id, ctx.offsets.size_of_vmctx(), ctx.offsets.component.counts()


def assert_same_context(actual, expected, *, only=None, ignore=()):
    """Fail with the first compared field where two contexts of one shape differ: its label (field and
    index), offset, both values in hex and the release; `ContextMismatch` also lists every other difference.

    `only` (None: every field) and `ignore` take one selector or a list of them: a preset ("pointers":
    every pointer-sized sub-field), a role ("flags", "magic", "type_index", ... from the layout's
    declaration), a field ("lowerings"), a label ("may_leave[1]") or a prefix ending in "[" or "."
    ("trampoline_func_refs[0]."). Presets and roles fit every release and shape; a field, label or prefix
    that selects nothing is an error. A `WasmtimeContext` is read afresh here.
    """
    __tracebackhide__ = True
    only, ignore = _selectors("only", only), _selectors("ignore", ignore)
    a, e = _decoded(actual), _decoded(expected)
    if _shape(a) != _shape(e):
        (_, sa, ca), (_, se, ce) = _shape(a), _shape(e)
        counts = ", ".join(f"{k} {ca.get(k)} vs {ce.get(k)}" for k in dict.fromkeys([*ca, *ce])
                           if ca.get(k) != ce.get(k))
        raise ContextMismatch(f"different shapes: {a.ctx.layout.name}, {sa} bytes vs {e.ctx.layout.name}, {se} bytes"
                              + (f" ({counts})" if counts else "") + f"; {_releases(a, e)}",
                              release=(_release(a), _release(e)))
    records = a.records
    columns = [a.columns[c] for c in records["column"]]
    labels = [c.label(int(i)) for c, i in zip(columns, records["index"])]
    kept = [True] * len(labels) if only is None else _selected("only", only, columns, labels, a)
    if only is not None and not any(kept):
        counts = ", ".join(f"{k}={v}" for k, v in a.ctx.offsets.component.counts().items() if v)
        raise ArgumentValueError(f"only={list(only)!r} selects no field of this {a.ctx.layout.id} context "
                                 f"({counts or 'every count 0'}): nothing to compare", argument="only", value=only)
    if ignore:
        dropped = _selected("ignore", ignore, columns, labels, a)
        kept = [k and not d for k, d in zip(kept, dropped)]
    va, ve = records["value"], e.records["value"]
    differ = [i for i in (va != ve).nonzero()[0].tolist() if kept[i]]
    if not differ:
        return
    first = differ[0]
    label, offset, x, y = labels[first], int(records["offset"][first]), int(va[first]), int(ve[first])
    others = [labels[i] for i in differ[1:]]
    more = ""
    if others:
        listed = ", ".join(others[:MORE_LISTED]) + (", ..." if len(others) > MORE_LISTED else "")
        more = f"; {len(others)} more differ: {listed}"
    index = int(records["index"][first]) if columns[first].is_array else None
    raise ContextMismatch(f"{label} at offset {offset}: actual {x:#x} != expected {y:#x} ({_releases(a, e)}, "
                          f"{a.ctx.layout.id}){more}", label, offset, x, y, index=index,
                          release=(_release(a), _release(e)), differences=[label, *others])


def _header_for(layout):
    return {name: (HEADER_BASE * (k + 1), STORE_VTABLE) if name == "store" else HEADER_BASE * (k + 1)
            for k, name in enumerate(layout.header_names())}


@pytest.fixture
def vmctx_instance():
    """Factory: `vmctx_instance(counts, wasmtime="50", debug_assertions=False, header=None)`."""
    from .layouts.releases import resolve_wasmtime
    from .memory.instance import OwnedComponentInstance

    made = []

    def make(counts=None, *, wasmtime="50", debug_assertions=False, header=None, store=None, **kw):
        resolution = resolve_wasmtime(wasmtime)
        if header is None and store is None:
            header = _header_for(resolution.layout)
        inst = OwnedComponentInstance(dict(counts or {}), store, wasmtime=resolution,
                                      debug_assertions=debug_assertions, header=header, **kw)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.close()


def new_contexts(before, after):
    """The contexts of `after` (a scan's, freed ones included) that `before` (the same) did not hold with the
    same bytes, and that are not freed; the live ones when there are any.

    A scan of this very process can judge its newest context "unknown": the process allocates while its
    heap is walked. So an unknown one counts too, when it is new and no live one is."""
    known = {c.address: c.data for c in before}
    new = [c for c in after if c.state != "freed" and (c.address not in known or known[c.address] != c.data)]
    live = [c for c in new if c.state == "live"]
    return live or new


@pytest.fixture
def wasmtime_context():
    """Factory: `wasmtime_context(wat, host={"name": fn(*args)})` -> a `WasmtimeContext` (`.refresh()` re-reads)."""
    wasmtime = pytest.importorskip("wasmtime")
    try:
        from wasmtime.component import Component, Linker
    except ImportError:
        pytest.skip("the installed wasmtime has no component API (wasmtime-py >= 39)")
    from .live import scan
    from .live.target import open_source

    kept, sources = [], []

    def run(wat, host=None):
        if not sources:
            sources.append(open_source(None))  # this process, read-only, for every scan and refresh of the test
        source = sources[0]
        # Both scans list freed contexts too, so a block freed before and judged otherwise later is known. Stores
        # of earlier tests that only the garbage collector frees are freed first: one freed while instantiating
        # would leave its address free for the new context. A known address holding other bytes afterwards is a
        # new context all the same (`new_contexts`). Neither scan decodes: only the new context is.
        gc.collect()
        before = scan(source, decode=False, include_freed=True).contexts
        engine = wasmtime.Engine()
        store = wasmtime.Store(engine)
        linker = Linker(engine)
        with linker.root() as root:
            for name, impl in (host or {}).items():
                root.add_func(name, lambda store, *args, impl=impl: impl(*args))
        instance = linker.instantiate(store, Component(engine, wat))
        kept.append((engine, store, instance))
        after = scan(source, decode=False, include_freed=True).contexts
        new = new_contexts(before, after)
        if len(new) != 1 or new[0].data is None:
            found = "; ".join(f"{c.address:#x} ({c.shape_from or ', '.join(c.notes)})" for c in new)
            raise VMCtxEmuError(f"expected one new component context of a known shape after instantiating, found "
                                f"{len(new)}: {found}")
        found = new[0]
        found.decoded = found.decode()
        return WasmtimeContext(found, source, engine, store, instance)

    yield run
    kept.clear()
    for source in sources:
        source.close()


@pytest.fixture(name="assert_same_context")
def assert_same_context_fixture():
    """`assert_same_context(actual, expected, only=None, ignore=())` as a fixture."""
    return assert_same_context
