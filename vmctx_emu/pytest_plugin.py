"""pytest fixtures for runtime tests: emulated contexts, real ones, and a field-by-field comparison.

Loaded through the `pytest11` entry point, so installing vmctx-emu is enough:

- `vmctx_instance(counts=None, *, wasmtime="50", debug_assertions=False, header=None, store=None)`
  builds an `OwnedComponentInstance` of that release (plausible header pointers unless given) and
  closes it after the test;
- `wasmtime_context(wat, host=None)` instantiates a WAT component in the installed `wasmtime`
  package, in this process, and returns its live context as `scan` decodes it (a `LiveContext`);
  the Store stays alive until the test ends. Skips when wasmtime or its component API is missing;
- `assert_same_context(actual, expected, *, ignore=())` (also a fixture of that name) fails naming
  the first differing field, its offset and both values.
"""

import pytest

from .errors import ContextMismatch, VMCtxEmuError

__all__ = ["assert_same_context", "ContextMismatch"]

# Header pointers for emulated contexts when a test does not care: distinct, aligned, non-null.
HEADER_BASE = 0x1000
STORE_VTABLE = 0x8000


def _decoded(ctx):
    """A `Decoded` for an instance, a dump, a `LiveContext` or a `Decoded` itself."""
    from .dumps.decode import Decoded, decode

    if isinstance(ctx, Decoded):
        return ctx
    decoded = getattr(ctx, "decoded", None)
    if decoded is not None:
        return decoded
    if hasattr(ctx, "memory") and hasattr(ctx, "offsets"):
        return decode(ctx)
    raise VMCtxEmuError(f"not a context: {type(ctx).__name__} (give an instance, a dump, a LiveContext or a "
                        "Decoded)")


def _fields(decoded):
    return {decoded.label(r): (int(r["offset"]), int(r["value"])) for r in decoded.records}


def assert_same_context(actual, expected, *, ignore=()):
    """Fail with the first field (label, offset, both values) where two contexts differ.

    `ignore` names fields to skip, as labels ("store_context") or prefixes
    ending in "[" or "." ("lowerings[", "trampoline_func_refs[0].").
    """
    a, e = _decoded(actual), _decoded(expected)
    if (a.ctx.layout.id, a.ctx.offsets.size_of_vmctx()) != (e.ctx.layout.id, e.ctx.offsets.size_of_vmctx()):
        raise ContextMismatch(f"different shapes: {a.ctx.layout.name}, {a.ctx.offsets.size_of_vmctx()} bytes vs "
                              f"{e.ctx.layout.name}, {e.ctx.offsets.size_of_vmctx()} bytes")
    skip = tuple(ignore)

    def kept(label):
        return not any(label == s or (s.endswith(("[", ".")) and label.startswith(s)) for s in skip)

    fa, fe = _fields(a), _fields(e)
    for label in sorted(set(fa) | set(fe), key=lambda k: (fa.get(k, fe.get(k))[0], k)):
        if not kept(label):
            continue
        (offset, va), (_, ve) = fa.get(label, (None, None)), fe.get(label, (None, None))
        if va != ve:
            raise ContextMismatch(f"{label} at offset {offset}: {_hex(va)} != {_hex(ve)} (actual != expected)",
                                  label, offset, va, ve)


def _hex(value):
    return "missing" if value is None else f"{value:#x}"


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


@pytest.fixture
def wasmtime_context():
    """Factory: `wasmtime_context(wat, host={"name": fn(*args)})` -> the live context, decoded."""
    wasmtime = pytest.importorskip("wasmtime")
    try:
        from wasmtime.component import Component, Linker
    except ImportError:
        pytest.skip("the installed wasmtime has no component API (wasmtime-py >= 39)")
    from .live import scan

    kept = []

    def run(wat, host=None):
        # Only live contexts count: freed ones (and unknown ones, whose block was reused) come and go as the
        # process allocates.
        known = {c.address for c in scan().contexts if c.state == "live"}
        engine = wasmtime.Engine()
        store = wasmtime.Store(engine)
        linker = Linker(engine)
        with linker.root() as root:
            for name, impl in (host or {}).items():
                root.add_func(name, lambda store, *args, impl=impl: impl(*args))
        instance = linker.instantiate(store, Component(engine, wat))
        kept.append((engine, store, instance))
        new = [c for c in scan().contexts if c.address not in known and c.state == "live"]
        if len(new) != 1:
            found = "; ".join(f"{c.address:#x} ({c.shape_from or ', '.join(c.notes)})" for c in new)
            raise VMCtxEmuError(f"expected one new component context after instantiating, found {len(new)}: {found}")
        new[0].store, new[0].instance = store, instance
        return new[0]

    yield run
    kept.clear()


@pytest.fixture(name="assert_same_context")
def assert_same_context_fixture():
    """`assert_same_context(actual, expected, ignore=())` as a fixture."""
    return assert_same_context
