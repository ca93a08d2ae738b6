"""Dumps: a context's bytes and its sidecar as one unit, and the read-only context loaded from them.

`write_dump(ctx, path)` writes `ctx.bin` and `ctx.bin.json` through the
atomic two-file protocol of `files.py`; `load_dump(path)` reads them back as a
`DumpedContext`, its layout from the sidecar (`sidecar.py`, checked once) or
the arguments (arguments win). Only the layout's size plus one byte of a dump
is ever read, and a dump is only ever read as bytes: nothing found in it is
dereferenced. `OwnedComponentInstance.dump` writes through `write_dump`: the
package's top level registers it with the memory layer, which knows no dump
format.
"""

import sys

from ..checks import check_bool, check_byte_order, check_counts, check_int, check_ptr
from ..errors import ArgumentTypeError, ArgumentValueError, BadMagicError, DumpError, SidecarConflictError, \
    UnknownReleaseError
from ..layouts.releases import resolve_wasmtime
from ..memory.reader import ContextReader
from .files import check_path, open_checked, read_committed, read_dump_bytes, sidecar_path, write_pair
from .sidecar import read_sidecar, sidecar_text

# read_dump_bytes: the bytes of a dump alone (`infer` reads no sidecar), from files.py.
__all__ = ["DumpError", "DumpedContext", "write_dump", "load_dump", "read_dump_bytes"]


def write_dump(ctx, path):
    """Write `ctx`'s bytes to `path` and its layout to `path + '.json'` as one atomic unit (`files.py`).

    Errors are `DumpError`s naming `path`; no temp file survives one.
    """
    path = check_path(path)
    return write_pair(path, ctx.to_bytes(), lambda token: sidecar_text(ctx, token))


# -- loading -----------------------------------------------------------------


class DumpedContext(ContextReader):
    """A read-only context loaded from bytes: the getters and views of a live instance, no setters.

    `origin` is where a captured dump's bytes came from (its sidecar's `origin`: the target, the
    context's liveness and evidence, how the release was known); None for any other.
    """

    origin = None

    def __init__(self, data, component, ptr, byte_order, *, address=None, debug_assertions=True,
                 source="<bytes>", wasmtime=None):
        self._prepare(component, ptr, byte_order, address, debug_assertions, source, wasmtime)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ArgumentTypeError(f"data must be bytes, got {type(data).__name__}")
        self._fill(bytes(data), len(data))

    def _prepare(self, component, ptr, byte_order, address, debug_assertions, source, wasmtime):
        """Everything but the bytes: layout, pointer size, byte order, address (checked)."""
        self._set_target(component, ptr, byte_order, debug_assertions, wasmtime)
        self.source = source
        self.vmctx = None if address is None else check_ptr("address", address, self.ptr)

    def _fill(self, data, size):
        """Take `data` (`size`: the whole file's, when only part of it was read) if it is the layout's size."""
        expected = self.offsets.size_of_vmctx()
        if size != expected or len(data) != expected:
            _wrong_size(self.source, size, expected, self.ptr, self.offsets.component)
        self._attach(memoryview(data).cast("B"))

    def with_bytes(self, data, *, address=None, source=None):
        """A context of this one's layout, shape, pointer size, byte order and build over other bytes (of
        its size): what the constructor gives for them, without working the layout out again (a scan
        decodes thousands of contexts of one shape)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ArgumentTypeError(f"data must be bytes, got {type(data).__name__}")
        other = self.detached_copy()
        other.source = self.source if source is None else source
        other.vmctx = None if address is None else check_ptr("address", address, self.ptr)
        other._fill(bytes(data), len(data))
        return other

    def __repr__(self):
        at = "" if self.vmctx is None else f" at {self.vmctx:#x}"
        return (f"<DumpedContext {self.source}{at}, ptr={int(self.ptr)}, {self.byte_order}-endian, "
                f"{len(self._raw)} bytes>")


def _wrong_size(source, size, expected, ptr, component):
    what = "truncated" if size < expected else "too long (padded?)"
    raise DumpError(
        f"{source}: {size} bytes, but the layout (ptr_size={int(ptr)}, "
        f"{_counts_text(component)}) needs size_of_vmctx()={expected}: {what}"
    )


def _counts_text(component):
    return ", ".join(f"{k}={v}" for k, v in component.counts().items())


def _check_load_arguments(counts, address, debug_assertions, check_magic, byte_order):
    if counts is not None:
        check_counts(counts)
    if address is not None:
        check_int("address", address, 0, kind="an int or None", bound="an int in [0, 2**64)")
    for name, value in (("debug_assertions", debug_assertions), ("check_magic", check_magic)):
        if value is not None:
            check_bool(name, value)
    if byte_order is not None:
        check_byte_order(byte_order)


def _same_release(given, recorded):
    """Whether a `wasmtime=` argument names the release a sidecar records: the same release once resolved,
    or a prefix of it ("50" and "v50.0" name 50.0.0)."""
    text = str(given).strip().lstrip("vV")
    if recorded == text or recorded.startswith(text + "."):
        return True
    try:
        return resolve_wasmtime(given).release == resolve_wasmtime(recorded).release
    except (UnknownReleaseError, ArgumentTypeError):
        return False


def _sidecar_conflicts(path, where, side, given):
    """`SidecarConflictError` for the first of `given` (argument -> value or None) that contradicts what the
    sidecar `side` records: a release by `_same_release`, a count (absent: 0) or anything else by equality."""
    for argument, value in given.items():
        key = {"ptr": "ptr_size"}.get(argument, argument)
        if key in side:
            recorded = side[key]
        elif argument in ("wasmtime", "ptr", "byte_order", "debug_assertions"):
            recorded = None
        else:
            recorded = side.get("counts", {}).get(argument, 0)
        if value is None or recorded is None:
            continue
        if not (_same_release(value, recorded) if argument == "wasmtime" else value == recorded):
            reason = f"{path}: {argument}={value!r} contradicts its sidecar {where}, which records {recorded!r}"
            raise SidecarConflictError(f"{reason}; leave it out (the sidecar answers it)", path=path, reason=reason,
                                       argument=argument, given=value, recorded=recorded, sidecar=where)


def load_dump(path, component=None, ptr=None, byte_order=None, *, counts=None, address=None,
              debug_assertions=None, check_magic=True, wasmtime=None, allow_special=False, strict_sidecar=False):
    """Load a dump with its layout from the sidecar or the arguments (arguments win; with `strict_sidecar`
    an argument that contradicts the sidecar is a `SidecarConflictError` naming both, `address` excepted:
    it always says where to decode the context as being).

    `counts` overrides single counts of the sidecar's component (the others
    are 0 without a sidecar). A missing component or pointer size (neither in
    the sidecar nor given) is an error naming it; the byte order defaults to
    the host's. With `check_magic` the magic at offset 0 must be
    `VMCOMPONENT_MAGIC`. Arguments are checked first (`ArgumentTypeError`,
    `ArgumentValueError` naming them), then the sidecar (`check_sidecar`);
    only the layout's size plus one byte of the dump is ever read, and only
    from a regular file unless `allow_special` (a device, a FIFO).
    """
    path = check_path(path)
    _check_load_arguments(counts, address, debug_assertions, check_magic, byte_order)
    try:
        resolution = None if wasmtime is None else resolve_wasmtime(wasmtime)
    except UnknownReleaseError as e:
        raise DumpError(f"{path}: {e}") from None
    check_bool("allow_special", allow_special)
    check_bool("strict_sidecar", strict_sidecar)
    f, _ = open_checked(path, "dump", allow_special)  # a missing or special file is named before anything else
    f.close()
    meta = read_sidecar(path)
    where = sidecar_path(path)
    side = meta or {}
    if strict_sidecar and meta is not None:  # the pointer size once it is checked, below
        _sidecar_conflicts(path, where, side, {"wasmtime": wasmtime, "byte_order": byte_order,
                                               "debug_assertions": debug_assertions, **(counts or {})})
        if "wasmtime" in side:
            resolution = None  # agreed: the sidecar's own release ("50" names the 50.0.0 it records)
    given_ptr = ptr
    if resolution is None:
        resolution = resolve_wasmtime(side.get("wasmtime"))  # checked with the sidecar
    layout = resolution.layout
    if component is None and (meta is not None or counts):
        merged = dict.fromkeys(layout.count_names, 0)
        side_counts = side.get("counts", {})
        stray = sorted(set(side_counts) - set(layout.count_names))
        if stray:
            raise DumpError(f"{where}: counts must map {', '.join(layout.count_names)}; found {side_counts!r}")
        merged.update(side_counts)
        unknown = sorted(set(counts or {}) - set(layout.count_names))
        if unknown:
            raise DumpError(f"{path}: {', '.join(unknown)} is not a count of {layout.range_text}")
        merged.update(counts or {})
        try:
            component = layout.component(**merged)
        except ValueError as e:
            raise DumpError(f"{where if side_counts else path}: {e}") from None
    ptr = side.get("ptr_size") if ptr is None else ptr
    byte_order = side.get("byte_order", sys.byteorder) if byte_order is None else byte_order
    missing = tuple(key for key, v in (("counts", component), ("ptr_size", ptr)) if v is None)
    if missing:
        words = {"counts": "component counts", "ptr_size": "pointer size"}
        reason = f"{path}: no sidecar {where} and no {' or '.join(words[key] for key in missing)} given"
        raise DumpError(f"{reason}: pass them (component= or counts=, and ptr=)", path=path, missing=missing,
                        reason=reason)
    if debug_assertions is None:
        debug_assertions = side.get("debug_assertions", True)
    ctx = DumpedContext.__new__(DumpedContext)
    try:
        ctx._prepare(component, ptr, byte_order, None, debug_assertions, path, resolution)
    except (ArgumentTypeError, ArgumentValueError):
        raise
    except (TypeError, ValueError) as e:
        raise DumpError(f"{path}: {e}") from None
    if strict_sidecar and meta is not None and given_ptr is not None:
        _sidecar_conflicts(path, where, side, {"ptr": int(ctx.ptr)})
    data, size = read_committed(path, side.get("commit"), ctx.offsets.size_of_vmctx(), allow_special)
    ctx._fill(data, size)
    bits = 8 * int(ctx.ptr)
    if address is None:
        address = side.get("address")
        if address is not None and address >= 1 << bits:
            raise DumpError(f"{where}: address {address:#x} is outside [0, 2**{bits}) for pointer size {int(ctx.ptr)}")
    ctx.vmctx = check_ptr("address", address, ctx.ptr) if address is not None else None
    ctx.origin = side.get("origin")
    if check_magic:
        try:
            ctx.check_magic()
        except BadMagicError as e:
            reason = f"{path}: {e}"
            raise BadMagicError(f"{reason} (check_magic=False reads it anyway)", found=e.found, address=e.address,
                                path=path, reason=reason) from None
    return ctx
