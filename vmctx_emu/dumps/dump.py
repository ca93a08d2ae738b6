"""Dumps: the context's bytes plus a JSON sidecar with the layout parameters, one atomic unit.

A dump is two files: `ctx.bin`, the context's bytes and nothing else (so any
hex tool reads it), and `ctx.bin.json`, the sidecar. Two renames cannot be one
atomic step, so the sidecar is the commit point and names the bytes it belongs to:

1. the bytes go to a staging file `.vmctx-ctx.bin-TOKEN.bin.tmp` beside
   `ctx.bin`, the sidecar (recording `"commit": TOKEN`) to a temp file beside
   `ctx.bin.json`; both are fsynced;
2. the sidecar is renamed over `ctx.bin.json`: from here on the new dump is the dump;
3. the staging file is renamed over `ctx.bin`.

A reader takes the bytes from the staging file its sidecar's token names while
that file exists (a writer stopped between 2 and 3), else from `ctx.bin`. So a
writer killed at any moment leaves the complete old pair (before 2) or the
complete new one (from 2 on), never a mix; a failure before 2 removes every temp
file and leaves the old pair untouched. What a SIGKILL leaves behind (staging
files no sidecar names) is removed by the next dump to that path, once older
than `STALE_AFTER` seconds (younger ones may belong to a writer still running).
Writing goes through symlinks (the link's target is replaced, the link kept).

Reading checks before it reads: the file must be a regular file (unless
`allow_special`) no larger than what is asked for, and the sidecar is checked
once, against `SIDECAR_SCHEMA`, in `load_dump`. A dump is only ever read as
bytes: nothing found in it is dereferenced.
"""

import json
import os
import re
import secrets
import stat
import sys
import time

from ..checks import check_byte_order
from ..checks import check_bool, check_counts, check_int, check_ptr, check_u32
from ..errors import ArgumentTypeError, ArgumentValueError, BadMagicError, DumpError, UnknownReleaseError
from ..layouts.ptr import EMULATED_PTR_SIZES, as_ptr_size
from ..layouts.releases import resolve_wasmtime
from ..memory.reader import ContextReader

__all__ = ["DUMP_FORMAT", "DUMP_FORMAT_VERSION", "MAX_DUMP_BYTES", "MAX_SIDECAR_BYTES", "SIDECAR_SCHEMA",
           "STALE_AFTER", "DumpError", "DumpedContext", "write_dump", "load_dump", "read_dump_bytes",
           "check_sidecar", "sidecar_path"]

DUMP_FORMAT = "vmctx-emu dump"
DUMP_FORMAT_VERSION = 1
# What `read_dump_bytes` reads at most unless told otherwise (a 1M-lowering dump is tens of MB).
MAX_DUMP_BYTES = 1 << 30
# A sidecar is a few hundred bytes; anything much larger is not one.
MAX_SIDECAR_BYTES = 1 << 16
# Leftover staging files younger than this may belong to a writer still running.
STALE_AFTER = 60.0

_TOKEN = re.compile(r"[0-9a-f]{16}")


def sidecar_path(path):
    return os.fspath(path) + ".json"


# A writer's temp files: `.vmctx-NAME-TOKEN` + one of these, beside NAME (`_remove_stale` finds them so).
_STAGING, _TEMP_SIDECAR = ".bin.tmp", ".tmp"


def _temp_path(real_path, token, suffix):
    directory, name = os.path.split(real_path)
    return os.path.join(directory, f".vmctx-{name}-{token}{suffix}")


def _check_path(path, what="path"):
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"{what} must be a str or os.PathLike, got {type(path).__name__} {path!r}")
    path = os.fspath(path)
    if not isinstance(path, str):
        raise ArgumentTypeError(f"{what} must name a file as str, got {type(path).__name__} {path!r}")
    if not path or "\0" in path:
        raise ArgumentValueError(f"{what} must be a non-empty file name without NUL, got {path!r}")
    return path


# -- writing ---------------------------------------------------------------


def sidecar_dict(ctx, commit=None):
    meta = {"format": DUMP_FORMAT, "format_version": DUMP_FORMAT_VERSION, **ctx.layout_parameters()}
    if commit is not None:
        meta["commit"] = commit
    return meta


def _write_new(path, data, made):
    """Create `path` (mode 0666 less the umask, like any new file), write `data`, fsync; `made` gets it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    made.append(path)
    try:
        f = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _refuse_directory(path, real):
    if os.path.isdir(real):
        raise DumpError(f"cannot write dump {path}: it is a directory")


def _remove_stale(real_bin, real_side, keep):
    """Staging and temp files of this dump that no sidecar names any more (a killed writer's)."""
    now = time.time()
    for real, suffix in ((real_bin, _STAGING), (real_side, _TEMP_SIDECAR)):
        directory, prefix = os.path.split(_temp_path(real, "", ""))
        try:
            names = os.listdir(directory or ".")
        except OSError:
            continue
        for name in names:
            token = name[len(prefix):-len(suffix)] if name.startswith(prefix) and name.endswith(suffix) else ""
            if not _TOKEN.fullmatch(token) or token == keep:
                continue
            full = os.path.join(directory, name)
            try:
                if now - os.lstat(full).st_mtime >= STALE_AFTER:
                    os.unlink(full)
            except OSError:
                pass


def write_dump(ctx, path):
    """Write `ctx`'s bytes to `path` and its layout to `path + '.json'` as one atomic unit (module doc).

    Errors are `DumpError`s naming `path`; no temp file survives one.
    """
    path = _check_path(path)
    data = ctx.to_bytes()
    real_bin = os.path.realpath(path)
    real_side = os.path.realpath(sidecar_path(path))
    _refuse_directory(path, real_bin)
    _refuse_directory(sidecar_path(path), real_side)
    token = secrets.token_hex(8)
    staging = _temp_path(real_bin, token, _STAGING)
    temp_side = _temp_path(real_side, token, _TEMP_SIDECAR)
    text = (json.dumps(sidecar_dict(ctx, token), indent=2) + "\n").encode()
    made, committed, where = [], False, path  # `where`: the user's name of the file being written
    try:
        _write_new(staging, data, made)
        where = sidecar_path(path)
        _write_new(temp_side, text, made)
        os.replace(temp_side, real_side)  # the commit point
        made.remove(temp_side)
        committed, where = True, path
        os.replace(staging, real_bin)
        made.remove(staging)
        for directory in {os.path.dirname(real_bin), os.path.dirname(real_side)}:
            _fsync_dir(directory)
    except OSError as e:
        done = (f"; the new dump is complete (its sidecar names its bytes in {staging}), "
                f"but {path} still holds the old bytes") if committed else "; the previous dump is unchanged"
        raise DumpError(f"cannot write dump {where}: {e.strerror or e}{done}") from None
    finally:
        for tmp in made:
            if not (committed and tmp == staging):  # committed: the staging file is the dump's bytes
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
    _remove_stale(real_bin, real_side, token)
    return path


# -- reading -----------------------------------------------------------------


def _open_checked(path, what, allow_special):
    """(file object, size or None) after checking it is a regular file (or `allow_special`)."""
    try:
        f = open(path, "rb")
    except IsADirectoryError:
        raise DumpError(f"cannot read {what} {path}: it is a directory") from None
    except OSError as e:
        raise DumpError(f"cannot read {what} {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(f.fileno())
    except OSError as e:
        f.close()
        raise DumpError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if stat.S_ISREG(st.st_mode):
        return f, st.st_size
    f.close()
    if stat.S_ISDIR(st.st_mode):
        raise DumpError(f"cannot read {what} {path}: it is a directory")
    if not allow_special:
        raise DumpError(f"cannot read {what} {path}: not a regular file (a device, FIFO or socket); "
                        "copy it to a regular file first (in Python: allow_special=True)")
    return open(path, "rb"), None


def _check_limit(limit):
    return None if limit is None else check_int("limit", limit, 0, kind="an int or None")


def _read_bounded(path, limit, what="dump", allow_special=False, why=None):
    """(bytes, size): at most `limit` bytes of `path`, or a `DumpError` naming its size and the limit.

    `size` is the file's size (stat), or what was read from a special file.
    """
    f, size = _open_checked(path, what, allow_special)
    reason = f" ({why})" if why else ""
    with f:
        if size is not None and limit is not None and size > limit:
            raise DumpError(f"{what} {path} is {size:,} bytes, more than the {limit:,} bytes it may have{reason}")
        try:
            data = f.read() if limit is None else f.read(limit + 1)
        except OSError as e:
            raise DumpError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if limit is not None and len(data) > limit:
        raise DumpError(f"{what} {path} has more than the {limit:,} bytes it may have{reason}")
    return data, len(data) if size is None else size


def read_dump_bytes(path, limit=MAX_DUMP_BYTES, *, allow_special=False):
    """The raw bytes of a dump, at most `limit` of them (None: no limit), checked before reading.

    A file that is not regular (a device such as /dev/zero, a FIFO) is refused
    unless `allow_special`; a larger file is refused from its size alone, so a
    sparse or endless file costs nothing. Errors are `DumpError`s naming the
    file, its size and the limit.
    """
    path = _check_path(path)
    return _read_bounded(path, _check_limit(limit), allow_special=bool(allow_special))[0]


# -- the sidecar's schema --------------------------------------------------------

def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value):
    return {dict: "an object", list: "an array", str: "a string", bool: "a bool", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


# key -> (required, JSON type test, what it must be)
SIDECAR_SCHEMA = {
    "format": (False, lambda v: v == DUMP_FORMAT, f"the string {DUMP_FORMAT!r}"),
    "format_version": (True, lambda v: _is_int(v) and v == DUMP_FORMAT_VERSION,
                       f"{DUMP_FORMAT_VERSION} (a JSON integer)"),
    "layout": (False, lambda v: isinstance(v, str), "a layout id string"),
    "wasmtime": (False, lambda v: isinstance(v, str), 'a release string ("seed", "21.0.2")'),
    "ptr_size": (True, _is_int, f"a pointer size (a JSON integer, one of {EMULATED_PTR_SIZES})"),
    "byte_order": (False, lambda v: v in ("little", "big"), '"little" or "big"'),
    "counts": (True, lambda v: isinstance(v, dict), "an object of count name -> u32"),
    "size_of_vmctx": (False, _is_int, "an integer"),
    "address": (False, lambda v: v is None or _is_int(v) or isinstance(v, str),
                'null or a hex string ("0x7f0012340000")'),
    "debug_assertions": (False, lambda v: isinstance(v, bool), "a JSON bool (true or false)"),
    "commit": (False, lambda v: isinstance(v, str) and _TOKEN.fullmatch(v) is not None, "16 hex digits"),
}


def _parse_address(value, where, ptr):
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"0[xX][0-9a-fA-F_]{1,40}|[0-9_]{1,40}", text):
            raise DumpError(f"{where}: address {value!r} is not a hex string such as \"0x7f0012340000\"")
        value = int(text, 0) if text[:2].lower() == "0x" else int(text, 10)
    if not 0 <= value < 1 << (8 * ptr):
        raise DumpError(f"{where}: address {value:#x} is outside [0, 2**{8 * ptr}) for ptr_size {ptr}")
    return value


def check_sidecar(meta, where):
    """A parsed sidecar checked against `SIDECAR_SCHEMA` and itself, normalized; `DumpError` naming `where`.

    Types are JSON's (a bool is not an integer, "false" is not a bool); the
    release, layout id, counts, size and address must agree with each other.
    """
    if not isinstance(meta, dict):
        raise DumpError(f"sidecar {where}: expected a JSON object, found {_json_type(meta)}")
    unknown = sorted(set(meta) - set(SIDECAR_SCHEMA))
    if unknown:
        raise DumpError(f"sidecar {where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                        f"a sidecar has {', '.join(SIDECAR_SCHEMA)}")
    for key, (required, ok, expected) in SIDECAR_SCHEMA.items():
        if key not in meta:
            if required:
                raise DumpError(f"sidecar {where}: {key!r} is missing (it must be {expected})")
            continue
        if not ok(meta[key]):
            raise DumpError(f"sidecar {where}: {key} {json.dumps(meta[key])[:80]} is not {expected} "
                            f"(found {_json_type(meta[key])})")
    out = dict(meta)
    try:
        resolution = resolve_wasmtime(out.get("wasmtime"))  # none named: the seed
    except UnknownReleaseError as e:
        raise DumpError(f"sidecar {where}: wasmtime {out['wasmtime']!r}: {e}") from None
    layout = resolution.layout
    if "layout" in out and out["layout"] != layout.id:
        raise DumpError(f"sidecar {where}: layout {out['layout']!r} contradicts wasmtime "
                        f"{out.get('wasmtime', resolution.version)!r}, whose layout is {layout.id!r}")
    counts = out["counts"]
    extra = sorted(set(counts) - set(layout.count_names))
    if extra:
        raise DumpError(f"sidecar {where}: counts must map {', '.join(layout.count_names)}; "
                        f"found {', '.join(map(repr, extra))}")
    for name, value in counts.items():
        try:
            check_u32(name, value)
        except ValueError as e:
            raise DumpError(f"sidecar {where}: counts: {e}") from None
    ptr = out["ptr_size"]
    try:
        as_ptr_size(ptr)
    except ValueError as e:
        raise DumpError(f"sidecar {where}: {e}") from None
    if ptr not in EMULATED_PTR_SIZES:
        raise DumpError(f"sidecar {where}: ptr_size {ptr} is not one of the dumpable sizes {EMULATED_PTR_SIZES}")
    if "size_of_vmctx" in out:
        expected = layout.offsets(ptr, **counts).size_of_vmctx()
        if out["size_of_vmctx"] != expected:
            raise DumpError(f"sidecar {where}: size_of_vmctx {out['size_of_vmctx']} contradicts its own layout "
                            f"({layout.id}, ptr_size={ptr}, its counts), which needs {expected}")
    out["address"] = _parse_address(out.get("address"), where, ptr)
    return out


def _read_sidecar(path):
    """The checked sidecar of `path`, or None if there is none."""
    side = sidecar_path(path)
    if not os.path.lexists(side):
        return None
    text, _ = _read_bounded(side, MAX_SIDECAR_BYTES, "sidecar", why="a sidecar is a few hundred bytes")
    try:
        meta = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else e
        raise DumpError(f"sidecar {side} is not readable JSON: {reason}") from None
    return check_sidecar(meta, side)


# -- loading -----------------------------------------------------------------


class DumpedContext(ContextReader):
    """A read-only context loaded from bytes: the getters and views of a live instance, no setters."""

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

    def __repr__(self):
        return f"<DumpedContext {self.source}, ptr={int(self.ptr)}, {self.byte_order}-endian, {len(self._raw)} bytes>"


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


def _data_path(path, meta):
    """The file holding the bytes the sidecar names (module doc: a staging file while a commit is under way)."""
    token = (meta or {}).get("commit")
    if token is not None:
        staging = _temp_path(os.path.realpath(path), token, _STAGING)
        if os.path.isfile(staging):
            return staging
    return path


def load_dump(path, component=None, ptr=None, byte_order=None, *, counts=None, address=None,
              debug_assertions=None, check_magic=True, wasmtime=None, allow_special=False):
    """Load a dump with its layout from the sidecar or the arguments (arguments win).

    `counts` overrides single counts of the sidecar's component (the others
    are 0 without a sidecar). A missing component or pointer size (neither in
    the sidecar nor given) is an error naming it; the byte order defaults to
    the host's. With `check_magic` the magic at offset 0 must be
    `VMCOMPONENT_MAGIC`. Arguments are checked first (`ArgumentTypeError`,
    `ArgumentValueError` naming them), then the sidecar (`check_sidecar`);
    only the layout's size plus one byte of the dump is ever read, and only
    from a regular file unless `allow_special` (a device, a FIFO).
    """
    path = _check_path(path)
    _check_load_arguments(counts, address, debug_assertions, check_magic, byte_order)
    try:
        resolution = None if wasmtime is None else resolve_wasmtime(wasmtime)
    except UnknownReleaseError as e:
        raise DumpError(f"{path}: {e}") from None
    check_bool("allow_special", allow_special)
    f, _ = _open_checked(path, "dump", allow_special)  # a missing or special file is named before anything else
    f.close()
    meta = _read_sidecar(path)
    where = sidecar_path(path)
    side = meta or {}
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
    data, size = _read_exact(path, meta, ctx.offsets.size_of_vmctx(), allow_special)
    ctx._fill(data, size)
    bits = 8 * int(ctx.ptr)
    if address is None:
        address = side.get("address")
        if address is not None and address >= 1 << bits:
            raise DumpError(f"{where}: address {address:#x} is outside [0, 2**{bits}) for pointer size {int(ctx.ptr)}")
    ctx.vmctx = check_ptr("address", address, ctx.ptr) if address is not None else None
    if check_magic:
        try:
            ctx.check_magic()
        except BadMagicError as e:
            reason = f"{path}: {e}"
            raise BadMagicError(f"{reason} (check_magic=False reads it anyway)", found=e.found, address=e.address,
                                path=path, reason=reason) from None
    return ctx


def _read_exact(path, meta, expected, allow_special=False):
    """(bytes, size): the dump's bytes, at most `expected + 1` read; `size` the file's own (stat)."""
    source = _data_path(path, meta)
    try:
        f, size = _open_checked(source, "dump", allow_special)
    except DumpError:
        if source == path:
            raise
        f, size = _open_checked(path, "dump", allow_special)  # the writer finished its rename meanwhile
    with f:
        try:
            data = f.read(expected + 1)
        except OSError as e:
            raise DumpError(f"cannot read dump {path}: {e.strerror or e}") from None
    return data, len(data) if size is None else max(size, len(data))
