"""An emulated component instance: a real, initialized `VMComponentContext` and its runtime API.

Mirrors `OwnedComponentInstance` / `ComponentInstance` in Wasmtime's
crates/runtime/src/component.rs (runtime.md): allocation, `initialize_vmctx`,
the debug poison, set-once setters, checked getters and `from_opaque`.
"""

import os
import sys

from ..errors import ArgumentTypeError, ArgumentValueError, VMContextError
from ..layouts.ptr import HostPtr
from .buffer import LIVE, AlignedBuffer
from .initializer import check_header, initial_fills
from .reader import ContextReader, VMLowering, attr_name, element_tuple

__all__ = ["OwnedComponentInstance", "VMComponentContext", "VMLowering"]

# Synthetic addresses for emulated targets start here and are handed out first-fit, page-aligned.
_SYNTHETIC_BASE = 0x1000_0000
_PAGE = 0x1000
# Fills of at most this many stores are written as ints, larger ones through numpy.
_SMALL_FILL = 64


def _synthetic_address(size, ptr):
    return LIVE.free_range(size, _SYNTHETIC_BASE, 1 << (8 * int(ptr)), _PAGE)


class OwnedComponentInstance(ContextReader):
    """A component instance's context in real memory, initialized as Wasmtime does.

    With the host pointer size and byte order the bytes live in a ctypes
    allocation and `vmctx` is its address; otherwise they are laid out for the
    emulated target and `vmctx` is `address` (or a synthetic one) wherever the
    context's own address must be stored. The release's runtime setters
    (`set_lowering`, `set_trampoline`, ...) and getters are methods with its
    Rust names and arguments.
    """

    _flags_writable = True

    def __init__(
        self,
        component,
        store=None,
        *,
        ptr=HostPtr,
        byte_order=sys.byteorder,
        debug_assertions=True,
        address=None,
        wasmtime=None,
        header=None,
    ):
        self._set_target(component, ptr, byte_order, debug_assertions, wasmtime)
        self._header = check_header(self.layout, self.ptr, store, header)

        size = self.offsets.size_of_vmctx()
        # At least pointer-aligned like the Rust allocation; 16 so the flag
        # globals (align 16) are aligned in absolute terms too.
        self._buffer = AlignedBuffer(size, max(16, int(self.ptr)))
        self._raw = self._buffer.raw
        self.vmctx = self._place(address, size)
        self._initialize_vmctx()
        LIVE.add(self._vmctx, self, size)

    # -- construction ---------------------------------------------------

    def _place(self, address, size):
        if self.is_host_layout:
            if address is not None and address != self._buffer.address:
                raise ArgumentValueError(
                    "address= is for emulating another target; a host-layout context lives at "
                    f"its real address {self._buffer.address:#x}"
                )
            return self._buffer.address
        if address is None:
            return _synthetic_address(size, self.ptr)
        self._check_ptr("address", address)
        if address % max(16, int(self.ptr)) or address == 0:
            raise ArgumentValueError(f"address {address:#x} must be non-null and 16-byte aligned")
        if address + size > 1 << (8 * int(self.ptr)):
            raise ArgumentValueError(
                f"address {address:#x} + size {size} does not fit a {int(self.ptr)}-byte pointer"
            )
        return address

    def _initialize_vmctx(self):
        """`initialize_vmctx`: the plan C's initializer applies too (magic, headers, flags, poison)."""
        raw, native, words = self._raw, self.byte_order == sys.byteorder, {}
        for fill in initial_fills(self.layout, self.offsets, self._header, self.debug_assertions):
            w = fill.width
            if native and fill.count <= _SMALL_FILL and w in (4, 8) and not fill.offset % w and not fill.stride % w:
                # A few stores: plain int stores through a word view beat building a numpy view.
                view = words.get(w) or words.setdefault(w, raw[: len(raw) - len(raw) % w].cast("Q" if w == 8 else "I"))
                value = fill.value & ((1 << (8 * w)) - 1)  # an i32 flag word as its unsigned bits
                start, step = fill.offset // w, fill.stride // w
                for i in range(start, start + fill.count * step, step):
                    view[i] = value
            else:
                self.subview(fill.field, fill.sub)[:] = fill.value

    # -- lifetime -------------------------------------------------------

    def dump(self, path):
        """Write the bytes to `path` and the layout to `path + '.json'`: one atomic unit (see `dumps.dump`)."""
        from ..dumps.dump import write_dump

        if not isinstance(path, (str, bytes, os.PathLike)):
            raise ArgumentTypeError(f"dump path must be a str or path-like, got {type(path).__name__} {path!r}")
        self._live()
        return write_dump(self, path)

    def close(self):
        """Forget the memory; views taken earlier keep it alive, so nothing reads freed memory."""
        if self._raw is not None:
            LIVE.remove(self._vmctx)
            self._raw = None
            self._buffer = None
            self._forget_geometry()

    def __enter__(self):
        self._live()
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else f"at {self._vmctx:#x}"
        return (f"<OwnedComponentInstance {state}, ptr={int(self.ptr)}, {self.byte_order}-endian, "
                f"{self.offsets.size_of_vmctx()} bytes>")

    # -- setters (derived from the declaration: see `runtime_setters`) ----

    def _store(self, offset, value):
        self._ptr_word.pack_into(self._live(), offset, value)

    def _store_kind(self, kind, offset, value):
        word = self._ptr_word if kind == "ptr" else self._u32 if kind == "u32" else self._i32
        word.pack_into(self._live(), offset, value)

    def _check_unset(self, accessor, index, offset, what="slot"):
        """Debug builds: a setter's slot must still hold INVALID_PTR (set once only)."""
        found = self._load(offset)
        if found != self._invalid:
            raise VMContextError(
                f"{accessor}({index}): {what} at offset {offset} already holds {found:#x}, "
                f"not INVALID_PTR {self._invalid:#x} (it can be set once only)"
            )

    def _check_value(self, call, arg, sub, value, null):
        """Argument `arg` of `call` for sub-field `sub`: its type, range and the Rust `null` rule."""
        if sub.kind != "ptr":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ArgumentTypeError(f"{call}: {arg} must be a u32 (an int), got {type(value).__name__} {value!r}")
            if not 0 <= value < 1 << 32:
                raise ArgumentValueError(f"{call}: {arg} must be a u32, got {value!r}")
            return value
        if value is None and null == "allowed":
            return 0
        value = self._check_ptr(f"{call} {arg}", value)
        if value == 0 and null == "never":
            raise ArgumentValueError(f"{call}: {arg} must be non-null (a NonNull or fn pointer in {self.layout.name})")
        if value == 0 and null == "debug" and self.debug_assertions:
            raise VMContextError(f"{call}: the {sub.role} pointer must be non-null "
                                 f"(debug_assert! in {self.layout.name})")
        return value


def _arg_values(setter_name, index, arg, value):
    """The sub-field values one Rust argument carries: a scalar, or a tuple/namedtuple for a struct."""
    if len(arg.subs) == 1:
        return (value,)
    if all(hasattr(value, attr_name(s)) for s in arg.subs):
        return tuple(getattr(value, attr_name(s)) for s in arg.subs)
    if isinstance(value, (tuple, list)) and len(value) == len(arg.subs):
        return tuple(value)
    raise ArgumentTypeError(f"{setter_name}({index}): {arg.name} must have {', '.join(arg.subs)} "
                            f"(a namedtuple or a {len(arg.subs)}-tuple), got {value!r}")


def _setter(layout, spec):
    """`spec` as a method: check every argument, assert (debug) the slots are unset, write, fill `vmctx`.

    Offsets and packers are computed once per instance (`_geometry`); a plain
    in-range int index and plain in-range int values take the short path, anything
    else the checked one, which converts or raises exactly as before.
    """
    fields = {name: layout.field(name) for name in spec.fields}
    field_names = tuple(spec.fields)
    asserts = spec.asserts or tuple((f, s) for f in spec.fields for s in fields[f].poison)
    own_vmctx = tuple((f, fields[f].elem_type.role_sub("vmctx")) for f in spec.fields
                      if fields[f].elem_type.role_sub("vmctx"))
    signature = f"{spec.name}(index, {', '.join(a.name.rstrip('_') for a in spec.args)})"
    nargs = len(spec.args)
    key = ("set", spec.name)
    plain_tuples = tuple(
        element_tuple(fields[a.field].elem_type)
        if len(a.subs) > 1 and element_tuple(fields[a.field].elem_type)._fields == tuple(attr_name(s) for s in a.subs)
        else None for a in spec.args)

    def geometry(self):
        ptr = self.ptr
        regions = [self.offsets.region(f) for f in field_names]
        packers = {"ptr": self._ptr_word.pack_into, "u32": self._u32.pack_into, "i32": self._i32.pack_into}
        ptr_limit = 1 << (8 * int(ptr))
        args = []
        for arg in spec.args:
            field = fields[arg.field]
            subs = []
            for sub_name in arg.subs:
                sub = field.elem_type.sub(sub_name)
                what = f"{arg.name.rstrip('_')}" + (f".{sub_name}" if len(arg.subs) > 1 else "")
                # Fast path bounds: a non-null pointer, or any u32; everything else is checked.
                low, high = (1, ptr_limit) if sub.kind == "ptr" else (0, 1 << 32)
                subs.append((sub, what, arg.null or sub.null, field_names.index(arg.field),
                             field.sub_offset(sub_name, ptr), packers[sub.kind], low, high))
            args.append((arg, tuple(subs)))
        geo = (tuple((r.offset, r.elem_size) for r in regions), min(r.count for r in regions), tuple(args),
               tuple((field_names.index(f), fields[f].sub_offset(sub, ptr), f"{f}.{sub}") for f, sub in asserts),
               tuple((field_names.index(f), fields[f].sub_offset(sub.name, ptr)) for f, sub in own_vmctx))
        self._geometry[key] = geo
        return geo

    def checked_set(self, index, *args):
        if len(args) != nargs:
            raise ArgumentTypeError(f"{layout.name} has {signature}; got {len(args)} argument(s) after the index")
        raw = self._live()
        geo = self._geometry.get(key) or geometry(self)
        bases, count, arg_plan, assert_plan, own_plan = geo
        if index.__class__ is int and 0 <= index < count:
            starts = [base + index * size for base, size in bases]
        else:
            starts = [self.offsets.element_offset(f, index) for f in field_names]
        writes = []
        for (arg, subs), value, plain in zip(arg_plan, args, plain_tuples):
            if len(subs) == 1:
                values = (value,)
            elif plain is not None and value.__class__ is plain:
                values = value
            else:
                values = _arg_values(spec.name, index, arg, value)
            for (sub, what, null, k, sub_off, pack, low, high), v in zip(subs, values):
                if v.__class__ is not int or not low <= v < high:
                    v = self._check_value(f"{spec.name}({index})", what, sub, v, null)
                writes.append((pack, starts[k] + sub_off, v))
        if self.debug_assertions:
            for k, sub_off, what in assert_plan:
                self._check_unset(spec.name, index, starts[k] + sub_off, what)
        for pack, offset, value in writes:
            pack(raw, offset, value)
        if own_plan:
            pack = self._ptr_word.pack_into
            for k, sub_off in own_plan:
                pack(raw, starts[k] + sub_off, self._vmctx)

    set_ = _fast_setter(spec, fields, field_names, asserts, own_vmctx, plain_tuples, checked_set)
    set_.__name__ = spec.name
    set_.__doc__ = f"`{signature}` as in {layout.name}'s runtime."
    return set_


_MISSING = object()


def _fast_setter(spec, fields, field_names, asserts, own_vmctx, plain_tuples, checked_set):
    """`checked_set` behind a generated straight-line short path (no loops, no per-call lists).

    The short path takes plain in-range ints (and the element's namedtuple) on a
    live context whose geometry is cached, asserts (debug) the slots are unset,
    and writes; anything else, including every failure, goes to `checked_set`,
    which checks, converts and raises as the Rust setter does. Nothing is
    written before every check has passed.
    """
    if any(fields[a.field].elem_type.sub(s).kind == "i32" for a in spec.args for s in a.subs):
        return checked_set
    n = len(spec.args)
    params = [f"a{i}" for i in range(n)]
    attr = f"_fast_{spec.name}"  # the instance's geometry for this setter, dropped by close()
    body, writes, v = [], [], 0
    for i, (arg, plain) in enumerate(zip(spec.args, plain_tuples)):
        field = fields[arg.field]
        if len(arg.subs) == 1:
            names = [f"a{i}"]
        else:
            if plain is None:
                return checked_set
            names = [f"v{v + j}" for j in range(len(arg.subs))]
            body += [f"    if a{i}.__class__ is not T{i}:", "        return slow(self, index, args)",
                     f"    {', '.join(names)}, = a{i}"]
            v += len(arg.subs)
        for name, sub_name in zip(names, arg.subs):
            kind = field.elem_type.sub(sub_name).kind
            bound = f"1 <= {name} < limit" if kind == "ptr" else f"0 <= {name} < 4294967296"
            body += [f"    if {name}.__class__ is not int or not {bound}:", "        return slow(self, index, args)"]
            writes.append((kind, (arg.field, sub_name), name))
    # Every store as (kind, (field, sub), value name): the writes, then the context's own address.
    stores = writes + [("ptr", (f, sub.name), "self._vmctx") for f, sub in own_vmctx]
    # g, flattened: count, limit, native, the memory, then per assert and per store what the mode needs:
    # native (host byte order, aligned): a word view, the word index of element 0 and the stride
    # in words; otherwise a struct packer (unpacker), the byte offset of element 0 and the stride.
    g_names = ["count", "limit", "native", "raw"]
    g_names += [f"{x}{j}" for j in range(len(asserts)) for x in ("av", "ab", "as")]
    g_names += [f"{x}{j}" for j in range(len(stores)) for x in ("sv", "sb", "ss")]
    # Positional arguments fill a0, a1, ... in order, so the last one missing means too few.
    lines = [f"def set_(self, index, {', '.join(f'{p}=MISSING' for p in params)}, *rest):",
             "    try:",
             f"        g = self.{attr}",  # present only while the context is live (close() drops it)
             "    except AttributeError:",
             f"        return slow(self, index, ({', '.join(params)},) + rest, self._raw is not None)",
             f"    if rest or a{n - 1} is MISSING or index.__class__ is not int:",
             f"        return slow(self, index, ({', '.join(params)},) + rest)",
             f"    {', '.join(g_names)}, = g",
             "    if not 0 <= index < count:",
             f"        return slow(self, index, ({', '.join(params)},))"]
    body = [line.replace("slow(self, index, args)", f"slow(self, index, ({', '.join(params)},))") for line in body]
    lines += body
    lines.append("    if native:")
    if asserts:
        lines += ["        if self.debug_assertions:", "            invalid = self._invalid"]
        for j in range(len(asserts)):
            lines += [f"            if av{j}[ab{j} + index * as{j}] != invalid:",
                      "                return slow(self, index, ARGS)"]
    lines += [f"        sv{j}[sb{j} + index * ss{j}] = {name}" for j, (_, _, name) in enumerate(stores)]
    lines += ["        return", "    if self.debug_assertions:"]
    lines += ["        invalid = self._invalid"]
    for j in range(len(asserts)):
        lines += [f"        if av{j}(raw, ab{j} + index * as{j})[0] != invalid:",
                  "            return slow(self, index, ARGS)"]
    lines += [f"    sv{j}(raw, sb{j} + index * ss{j}, {name})" for j, (_, _, name) in enumerate(stores)]

    def fast_geometry(self):
        ptr = self.ptr
        regions = {f: self.offsets.region(f) for f in field_names}
        width = {"ptr": int(ptr), "u32": 4}
        places = [("ptr", f, sub) for f, sub in asserts] + [(kind, f, sub) for kind, (f, sub), _ in stores]
        native = self.byte_order == sys.byteorder and all(
            (regions[f].offset + fields[f].sub_offset(sub, ptr)) % width[kind] == 0
            and regions[f].elem_size % width[kind] == 0 for kind, f, sub in places)
        if native:
            raw = self._raw
            views = {w: raw[: len(raw) - len(raw) % w].cast("Q" if w == 8 else "I") for w in set(width.values())}
        g = [min(r.count for r in regions.values()), 1 << (8 * int(ptr)), native, self._raw]
        for j, (kind, f, sub) in enumerate(places):
            start, size, w = regions[f].offset + fields[f].sub_offset(sub, ptr), regions[f].elem_size, width[kind]
            if native:
                g += [views[w], start // w, size // w]
            else:
                word = self._ptr_word if kind == "ptr" else self._u32
                g += [word.unpack_from if j < len(asserts) else word.pack_into, start, size]
        setattr(self, attr, tuple(g))

    def slow(self, index, args, first=False):
        if first:
            fast_geometry(self)
        return checked_set(self, index, *(a for a in args if a is not _MISSING))

    namespace = {"MISSING": _MISSING, "slow": slow,
                 **{f"T{i}": t for i, t in enumerate(plain_tuples) if t is not None}}
    source = "\n".join(lines).replace("ARGS", f"({', '.join(params)},)")
    exec(source, namespace)  # noqa: S102 (source built above from the declaration only)
    return namespace["set_"]


def runtime_setters(layout):
    """Setter name -> method for every setter `layout` declares."""
    return {spec.name: _setter(layout, spec) for spec in layout.setters}


OwnedComponentInstance._setters_for = runtime_setters


class VMComponentContext:
    """Namespace for `from_opaque`, as in Wasmtime."""

    @staticmethod
    def from_opaque(address):
        """The live instance whose context starts at `address`, after checking its magic.

        Only contexts this package allocated are looked at: any other address
        is refused without reading it.
        """
        if isinstance(address, bool) or not isinstance(address, int):
            raise ArgumentTypeError(f"from_opaque: address must be an int, got {type(address).__name__} {address!r}")
        if not 0 <= address < 1 << 64:
            raise ArgumentValueError(f"from_opaque: address must be in [0, 2**64), got {address:#x}")
        inst = LIVE.get(address)
        if inst is None:
            owner = LIVE.containing(address)
            if owner is not None:
                raise VMContextError(
                    f"{address:#x} is not the start of a VMComponentContext: it lies at offset "
                    f"{address - owner.vmctx} inside the context at {owner.vmctx:#x}"
                )
            raise VMContextError(
                f"{address:#x} is not the address of a live emulated VMComponentContext "
                "(refusing to read memory this package does not own)"
            )
        # The magic sits at offset 0 so this check never trusts offsets read from memory.
        inst.check_magic()
        return inst
