"""Every renderer of the package: decoded data in, text and JSON out. Nothing is decoded here.

One module per thing rendered, each with its text and its JSON (`schema.SCHEMA_VERSION`, one
version for every document):

* `layout`: a layout (`VMComponentOffsets`) as a pahole-style table, `layout --json`;
* `records`: a decode's records, the `decode` table and `decode --json` (a scan's contexts too);
* `hexdump`: `hexdump -C` lines with field names in the margin;
* `diff`: the records that differ between two decodes;
* `infer`: the release layouts and shapes `infer` found;
* `scan`: a scan's contexts, their liveness and evidence, streamed context by context;
* `summary`: a scanned context at a glance (release, shape as options, each instance's flags in words);
* `where`: which context, field or entry point addresses belong to (`scan(where=...)`);
* `watch`: what changed between two scans (`scan --watch`);
* `capture`: a capture's files and manifest (`scan(capture=True)`), where a captured dump came from;

and below them `words` (one value's interpretation and raw hex), `symbols` (Rust names made short) and `textgrid` (text built as
numpy byte matrices, for millions of lines of one shape). The CLI, the gdb commands (through the
CLI) and Python callers use the same functions: `vmctx_emu.describe.scan_text(result)`,
`infer_json(results, size=..., ptr_size=..., byte_order=...)`, ...

Names are imported on first use, so `layout` and `--help` do not pay for numpy.
"""

from ..lazy import lazy_names
from .schema import SCHEMA_VERSION

_MODULES = {
    "layout": ("layout_dict", "layout_json", "layout_table"),
    "records": ("record_rows", "decoded_table", "decoded_table_chunks", "decoded_doc", "decoded_json",
                "decoded_json_chunks"),
    "hexdump": ("hexdump_lines", "hexdump_chunks"),
    "diff": ("diff_rows", "diff_table", "diff_doc", "diff_json"),
    "infer": ("infer_doc", "infer_json", "infer_text"),
    "scan": ("scan_counts", "context_doc", "scan_doc", "scan_json", "scan_json_chunks", "scan_text",
             "scan_text_chunks"),
    "summary": ("shape_options", "context_summary", "summary_lines", "Palette"),
    "where": ("where_doc", "where_json", "where_text"),
    "watch": ("snapshot", "changes"),
    "capture": ("capture_files", "capture_manifest", "origin_doc", "origin_lines", "saved_text"),
    "symbols": ("short_name",),
    "words": ("interpretation", "hex_value"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}

__all__ = ["SCHEMA_VERSION", *_LAZY]


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
