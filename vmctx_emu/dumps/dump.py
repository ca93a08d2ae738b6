"""Dumps: the context's bytes plus a JSON sidecar with the layout parameters, written atomically.

A dump is only ever read as bytes: nothing found in it is dereferenced.
"""

import json
import os
import sys
import tempfile

from ..errors import VMContextError, VMCtxEmuError
from ..memory.reader import ContextReader
from ..layouts.releases import wasmtime_layout

__all__ = ["DUMP_FORMAT_VERSION", "DumpError", "DumpedContext", "write_dump", "load_dump", "read_dump_bytes", "sidecar_path"]

DUMP_FORMAT_VERSION = 1


class DumpError(VMCtxEmuError, ValueError):
    """A dump or its sidecar that cannot be read as the layout it claims or is given."""


def sidecar_path(path):
    return os.fspath(path) + ".json"


def _atomic_write(path, data):
    """Write to a temporary file in the same directory, then rename over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".vmctx-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def sidecar_dict(ctx):
    return {"format": "vmctx-emu dump", "format_version": DUMP_FORMAT_VERSION, **ctx.layout_parameters()}


def write_dump(ctx, path):
    """Write `ctx`'s bytes to `path` and its layout to `path + '.json'`, each atomically."""
    path = os.fspath(path)
    _atomic_write(path, ctx.to_bytes())
    _atomic_write(sidecar_path(path), (json.dumps(sidecar_dict(ctx), indent=2) + "\n").encode())
    return path


def read_dump_bytes(path):
    """The raw bytes of a dump, or a `DumpError` naming the file and the reason."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DumpError(f"cannot read dump {path}: {e.strerror}") from e


def _read_sidecar(path):
    side = sidecar_path(path)
    if not os.path.exists(side):
        return None
    try:
        with open(side, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise DumpError(f"sidecar {side} is not readable JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("format_version") != DUMP_FORMAT_VERSION:
        found = meta.get("format_version") if isinstance(meta, dict) else type(meta).__name__
        raise DumpError(f"sidecar {side}: format_version {found!r} is not {DUMP_FORMAT_VERSION}")
    return meta


def _parse_address(value, where):
    if value is None or isinstance(value, int):
        return value
    try:
        return int(value, 0)
    except (TypeError, ValueError):
        raise DumpError(f"{where}: address {value!r} is not an int or hex string") from None


class DumpedContext(ContextReader):
    """A read-only context loaded from bytes: the getters and views of a live instance, no setters."""


    def __init__(self, data, component, ptr, byte_order, *, address=None, debug_assertions=True,
                 source="<bytes>", wasmtime=None):
        self._set_target(component, ptr, byte_order, debug_assertions, wasmtime)
        self.source = source
        self.vmctx = address
        expected = self.offsets.size_of_vmctx()
        if len(data) != expected:
            what = "truncated" if len(data) < expected else "too long (padded?)"
            raise DumpError(
                f"{source}: {len(data)} bytes, but the layout (ptr_size={int(self.ptr)}, "
                f"{_counts_text(self.offsets.component)}) needs size_of_vmctx()={expected}: {what}"
            )
        self._raw = memoryview(bytes(data)).cast("B")

    def __repr__(self):
        return f"<DumpedContext {self.source}, ptr={int(self.ptr)}, {self.byte_order}-endian, {len(self._raw)} bytes>"


def _counts_text(component):
    return ", ".join(f"{k}={v}" for k, v in component.counts().items())


def load_dump(path, component=None, ptr=None, byte_order=None, *, counts=None, address=None,
              debug_assertions=None, check_magic=True, wasmtime=None):
    """Load a dump with its layout from the sidecar or the arguments (arguments win).

    `counts` overrides single counts of the sidecar's component (the others
    are 0 without a sidecar). A missing component or pointer size (neither in
    the sidecar nor given) is an error naming it; the byte order defaults to
    the host's. With `check_magic` the magic at offset 0 must be
    `VMCOMPONENT_MAGIC`.
    """
    path = os.fspath(path)
    data = read_dump_bytes(path)
    meta = _read_sidecar(path) or {}
    where = sidecar_path(path)
    if wasmtime is None:
        wasmtime = meta.get("wasmtime", "seed")
    try:
        layout = wasmtime_layout(wasmtime)
    except ValueError as e:
        raise DumpError(f"{path}: {e}") from e
    if component is None and ("counts" in meta or counts):
        merged = dict.fromkeys(layout.count_names, 0)
        side_counts = meta.get("counts", {})
        if not isinstance(side_counts, dict) or set(side_counts) - set(layout.count_names):
            raise DumpError(f"{where}: counts must map {', '.join(layout.count_names)}; found {side_counts!r}")
        merged.update(side_counts)
        unknown = sorted(set(counts or {}) - set(layout.count_names))
        if unknown:
            raise DumpError(f"{path}: {', '.join(unknown)} is not a count of {layout.range_text}")
        merged.update(counts or {})
        try:
            component = layout.component(**merged)
        except ValueError as e:
            raise DumpError(f"{where if side_counts else path}: {e}") from e
    ptr = meta.get("ptr_size") if ptr is None else ptr
    byte_order = meta.get("byte_order", sys.byteorder) if byte_order is None else byte_order
    missing = [name for name, v in (("component counts", component), ("pointer size", ptr)) if v is None]
    if missing:
        raise DumpError(
            f"{path}: no sidecar {where} and no {' or '.join(missing)} given: "
            "pass them (CLI: --ptr-size and the count options)"
        )
    if address is None:
        address = _parse_address(meta.get("address"), where)
    if debug_assertions is None:
        debug_assertions = meta.get("debug_assertions", True)
    try:
        ctx = DumpedContext(data, component, ptr, byte_order, address=address,
                            debug_assertions=debug_assertions, source=path, wasmtime=wasmtime)
    except DumpError:
        raise
    except (TypeError, ValueError) as e:
        raise DumpError(f"{path}: {e}") from e
    if check_magic:
        try:
            ctx.check_magic()
        except VMContextError as e:
            raise VMContextError(f"{path}: {e} (--force reads it anyway)") from None
    return ctx
