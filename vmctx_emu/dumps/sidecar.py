"""The sidecar: the JSON file beside a dump that says how to read its bytes, checked once, against a schema.

`sidecar_text(ctx, commit)` is what a writer puts there (the context's
`layout_parameters()`, the format and the commit token `files.write_pair`
uses); `read_sidecar(path)` reads the sidecar of a dump, at most
`MAX_SIDECAR_BYTES` of it, and `check_sidecar` checks it against
`SIDECAR_SCHEMA` and against itself: its release, layout id, counts, size
and address must agree. A dump a scan captured (`vmctx_emu.capture`) also says
where its bytes came from: `origin` (`ORIGIN_SCHEMA`: the target, the
context's liveness and its evidence, how the release was known).
"""

import json
import os
import re

from ..checks import check_u32
from ..errors import DumpError, UnknownReleaseError
from ..layouts.ptr import EMULATED_PTR_SIZES, as_ptr_size
from ..layouts.releases import resolve_wasmtime
from .files import TOKEN, read_bounded, sidecar_path

__all__ = ["DUMP_FORMAT", "DUMP_FORMAT_VERSION", "MAX_SIDECAR_BYTES", "SIDECAR_SCHEMA", "ORIGIN_SCHEMA", "sidecar_dict",
           "sidecar_text", "check_sidecar", "read_sidecar"]

DUMP_FORMAT = "vmctx-emu dump"
DUMP_FORMAT_VERSION = 1
# A sidecar is a few hundred bytes; anything much larger is not one.
MAX_SIDECAR_BYTES = 1 << 16


def sidecar_dict(ctx, commit=None, origin=None):
    """What the sidecar of a dump of `ctx` says: the format, `ctx.layout_parameters()`, `commit`, and where
    the bytes came from (`origin`, a dict of `ORIGIN_SCHEMA`'s keys), when given."""
    meta = {"format": DUMP_FORMAT, "format_version": DUMP_FORMAT_VERSION, **ctx.layout_parameters()}
    if commit is not None:
        meta["commit"] = commit
    if origin is not None:
        meta["origin"] = origin
    return meta


def sidecar_text(ctx, commit, origin=None):
    """The sidecar file's bytes (indented JSON) for a dump of `ctx` committed as `commit` (None: the file is
    written as part of a larger unit, a capture), and where its bytes came from (`origin`)."""
    return (json.dumps(sidecar_dict(ctx, commit, origin), indent=2) + "\n").encode()


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value):
    return isinstance(value, str)


def _is_lines(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_liveness(value):
    return (isinstance(value, dict) and set(value) <= {"state", "evidence"} and _is_text(value.get("state"))
            and _is_lines(value.get("evidence", [])))


# Where a captured dump's bytes came from: key -> (JSON type test, what it must be); every key optional.
ORIGIN_SCHEMA = {
    "source": (_is_text, 'the target, as the scan named it ("pid 1234", "core FILE")'),
    "liveness": (_is_liveness, 'an object {"state": "live" | "freed" | "unknown", "evidence": [strings]}'),
    "wasmtime_from": (_is_text, "how the scan knew the release (a string)"),
    "version": (_is_text, "the version the target runs, where the table decodes it as another release"),
    "image": (_is_text, "the Wasmtime image its header points into (a string)"),
    "shape_from": (_is_text, "how the scan knew the counts (a string)"),
    "guessed": (_is_text, "why the counts are a guess (a string)"),
    "capture": (_is_text, "the capture's manifest, beside the dump (a file name)"),
}


def _is_origin(value):
    return isinstance(value, dict)


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
    "commit": (False, lambda v: isinstance(v, str) and TOKEN.fullmatch(v) is not None, "16 hex digits"),
    "origin": (False, _is_origin, "an object saying where the bytes came from (ORIGIN_SCHEMA)"),
}


def _check_origin(origin, where):
    unknown = sorted(set(origin) - set(ORIGIN_SCHEMA))
    if unknown:
        raise DumpError(f"sidecar {where}: origin: unknown key(s) {', '.join(map(repr, unknown))}; "
                        f"an origin has {', '.join(ORIGIN_SCHEMA)}")
    for key, value in origin.items():
        ok, expected = ORIGIN_SCHEMA[key]
        if not ok(value):
            raise DumpError(f"sidecar {where}: origin: {key} {json.dumps(value)[:80]} is not {expected} "
                            f"(found {_json_type(value)})")


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
    if "origin" in meta:
        _check_origin(meta["origin"], where)
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


def read_sidecar(path):
    """The checked sidecar of the dump at `path`, or None if there is none."""
    side = sidecar_path(path)
    if not os.path.lexists(side):
        return None
    text, _ = read_bounded(side, MAX_SIDECAR_BYTES, "sidecar", why="a sidecar is a few hundred bytes")
    try:
        meta = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else e
        raise DumpError(f"sidecar {side} is not readable JSON: {reason}") from None
    return check_sidecar(meta, side)
