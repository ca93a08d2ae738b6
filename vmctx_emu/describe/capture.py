"""A capture's files (each context's dump pair, the structures they reach, the manifest), and where a captured
dump came from, as text and JSON.

`capture_files(capture)` gives every file of a `live.capture.Capture` as
(name, bytes), in the order written:

* `ctx-0xADDRESS.bin` and `ctx-0xADDRESS.bin.json` per context with bytes: a
  dump pair `decode`, `diff` and `hexdump` read as any other; the sidecar's
  `origin` says where it came from (`dumps/sidecar.py` `ORIGIN_SCHEMA`);
* `reached.bin`: every structure the contexts point at, once each, end to end;
* `manifest.json`: the scan (source, release and how it was known, notes),
  each context (its file, address, state, release, and what each pointer it
  followed reaches) and each structure (kind, address, size, its offset in
  `reached.bin`, its words by name), with `schema_version`.

`origin_lines(ctx)` and `origin_doc(ctx)` say where a loaded dump came from.
"""

import json
import time

from ..dumps.sidecar import sidecar_text
from .schema import SCHEMA_VERSION

__all__ = ["CAPTURE_FORMAT", "CAPTURE_FORMAT_VERSION", "MANIFEST", "REACHED", "context_file", "capture_files",
           "capture_manifest", "read_manifest", "origin_doc", "origin_lines", "saved_text"]

CAPTURE_FORMAT = "vmctx-emu capture"
CAPTURE_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REACHED = "reached.bin"
MANIFEST_LIMIT = 256 << 20  # bytes a manifest read back may have (2,000 contexts write about 1 MB)


def context_file(ctx):
    """The file name a context's bytes are captured as: `ctx-0x55bd33c52080.bin`."""
    return f"ctx-{ctx.address:#x}.bin"


def _origin(ctx, result):
    """A captured context's sidecar `origin`: the target, its liveness and evidence, how its release and
    shape were known."""
    origin = {"source": ctx.source or result.source}
    if ctx.liveness is not None:
        origin["liveness"] = {"state": ctx.liveness.state, "evidence": list(ctx.liveness.evidence)}
    origin["wasmtime_from"] = result.wasmtime_from
    if ctx.release and ctx.wasmtime != ctx.release:
        origin["version"] = ctx.wasmtime
    if ctx.image and ctx.image not in (result.wasmtime_from or ""):  # most often it names the same image
        origin["image"] = ctx.image
    for key in ("shape_from", "guessed"):
        if getattr(ctx, key):
            origin[key] = getattr(ctx, key)
    origin["capture"] = MANIFEST
    return origin


def _hex(value):
    if isinstance(value, dict):
        return {k: _hex(v) for k, v in value.items()}
    return hex(value) if isinstance(value, int) else value


def capture_manifest(capture, reached_at, captured_at=None):
    """The manifest's object; `reached_at` maps each structure (by id) to its offset in `reached.bin`."""
    result = capture.result
    contexts = []
    for captured in capture.contexts:
        ctx = captured.context
        entry = {"file": context_file(ctx) if ctx.data is not None else None, "address": f"{ctx.address:#x}",
                 "state": ctx.state, "wasmtime": ctx.release or ctx.wasmtime}
        if ctx.data is None:
            entry["not_saved"] = "; ".join(ctx.notes) or "its shape is not known"
        entry["reaches"] = [{"field": label, "kind": r.kind, "address": f"{r.address:#x}"}
                            for label, r in captured.reaches]
        contexts.append(entry)
    structures = []
    for r in capture.reached:
        entry = {"kind": r.kind, "address": f"{r.address:#x}", "size": r.size}
        if r.data is None:
            entry["unreadable"] = r.why
        else:
            entry.update({"offset": reached_at[id(r)], "fields": _hex(r.fields)})
        structures.append(entry)
    return {
        "schema_version": SCHEMA_VERSION, "format": CAPTURE_FORMAT, "format_version": CAPTURE_FORMAT_VERSION,
        "captured_at": captured_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": result.source, "live": result.live,
        "wasmtime": {"version": result.wasmtime, "from": result.wasmtime_from},
        "liveness": {"listed": len(result.contexts), "freed": result.freed},
        "notes": list(result.notes),
        "contexts": contexts,
        "reached": {"file": REACHED, "structures": structures},
    }


def capture_files(capture, captured_at=None):
    """Every file of `capture` as (name, bytes), in the order they are written (module doc)."""
    files = []
    result = capture.result
    for captured in capture.contexts:
        ctx = captured.context
        if ctx.data is None:
            continue
        name = context_file(ctx)
        files.append((name, bytes(ctx.data)))
        files.append((name + ".json", sidecar_text_of(ctx, result)))
    reached_at, blob = {}, bytearray()
    for r in capture.reached:
        if r.data is not None:
            reached_at[id(r)] = len(blob)
            blob += r.data
    files.append((REACHED, bytes(blob)))
    manifest = capture_manifest(capture, reached_at, captured_at)
    files.append((MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode()))
    return files


def read_manifest(directory):
    """The manifest of the capture in `directory`, checked to be one (`DumpError` naming what is wrong)."""
    import os

    from ..dumps.files import read_bounded
    from ..errors import DumpError

    path = os.path.join(os.fspath(directory), MANIFEST)
    data, _ = read_bounded(path, MANIFEST_LIMIT, what="capture manifest")
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise DumpError(f"capture manifest {path} is not JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != CAPTURE_FORMAT:
        raise DumpError(f"{path} is not a vmctx-emu capture manifest (no \"format\": \"{CAPTURE_FORMAT}\")")
    if manifest.get("format_version") != CAPTURE_FORMAT_VERSION:
        raise DumpError(f"capture manifest {path} has format_version {manifest.get('format_version')!r}; this "
                        f"vmctx-emu reads {CAPTURE_FORMAT_VERSION}")
    contexts = manifest.get("contexts")
    if not isinstance(contexts, list) or not all(isinstance(c, dict) for c in contexts):
        raise DumpError(f"capture manifest {path}: \"contexts\" is not a list of objects")
    return manifest


def sidecar_text_of(ctx, result):
    """The sidecar of a captured context: its layout as `decode` reads it, and its `origin`."""
    return sidecar_text(ctx.dumped(), None, origin=_origin(ctx, result))


# -------------------------------------------------------------------- where a captured dump came from

def origin_doc(ctx):
    """Where a loaded dump came from, for JSON (its sidecar's `origin` and the address), or None."""
    origin = getattr(ctx, "origin", None)
    if origin is None:
        return None
    return {"address": None if ctx.vmctx is None else f"{ctx.vmctx:#x}", **origin}


def origin_lines(ctx, evidence=True):
    """Where a loaded dump came from, as text lines (none for a dump that records no origin): the target,
    the address, the state and release; with `evidence`, the liveness evidence and how the shape was known."""
    origin = getattr(ctx, "origin", None)
    if origin is None:
        return []
    liveness = origin.get("liveness") or {}
    at = "" if ctx.vmctx is None else f" at {ctx.vmctx:#x}"
    state = f": {liveness['state'].upper()}" if liveness.get("state") else ""
    version = origin.get("version") or ctx.wasmtime
    how = f" ({origin['wasmtime_from']})" if origin.get("wasmtime_from") else ""
    lines = [f"captured from {origin.get('source', 'an unnamed target')}{at}{state}, Wasmtime {version}{how}"]
    if evidence:
        lines += [f"  {line}" for line in liveness.get("evidence", [])]
        if origin.get("shape_from"):
            lines.append(f"  shape: {origin['shape_from']}")
    return lines


def saved_text(directory, capture, total, count):
    """What `scan --save` says before it writes: how many contexts and structures, how many bytes, where."""
    saved = sum(c.context.data is not None for c in capture.contexts)
    skipped = len(capture.contexts) - saved
    unread = sum(r.data is None for r in capture.reached)
    text = (f"saving {saved} context{'s' * (saved != 1)} and the {len(capture.reached)} structure"
            f"{'s' * (len(capture.reached) != 1)} they reach to {directory}: {count} files, {total:,} bytes")
    if skipped:
        text += f" ({skipped} listed context{'s' * (skipped != 1)} without a known shape: in the manifest only)"
    if unread:
        text += f" ({unread} structure{'s' * (unread != 1)} unreadable: in the manifest only)"
    return text
