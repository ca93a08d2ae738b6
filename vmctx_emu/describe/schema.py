"""The one version every JSON document of the package carries as `schema_version`.

`decode --json`, `diff --json`, `layout --json`, `infer --json`, `scan --json` and a capture's
manifest (and the same documents from the Python API: `vmctx_emu.describe`) share it: a change
to the shape of any of them bumps it, once, here.

History:
  1  `decode`, `diff`, `layout` documents (`infer` and `scan` said 2 on their own)
  2  `scan` (contexts with `liveness`, `shape_from`, `image`) and `infer`
  3  one version for every document; no document changed shape
  4  `scan`: each context's `summary` (flags in words, the store context); a followed pointer's
     `points_to` is an object (`kind`, `text` and the fields of what it points at) and its record's
     `text` says the same; `where` documents; `infer` says what it took from a sidecar; a capture's
     `manifest.json` (`describe/capture.py`); `origin` in `decode` and `origins` in `diff` documents of
     captured dumps
"""

__all__ = ["SCHEMA_VERSION"]

SCHEMA_VERSION = 4
