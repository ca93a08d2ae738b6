"""Captures you can keep: a scan's contexts and what they point at, written to a directory as one unit.

    result = scan(pid, capture=True)      # reads what each context points at while the target is open
    save_capture(result, "capture-dir")   # each context a dump pair, reached.bin, manifest.json

The files are `describe.capture`'s (`capture_files`); they are written by
`dumps.files.write_directory`: their total is bounded (`limit`) and known
before anything is written, DIR must be new or empty, and one rename makes
the whole capture appear at once.
"""

from .checks import check_int
from .describe.capture import capture_files
from .dumps.files import write_directory
from .errors import ArgumentValueError

__all__ = ["CAPTURE_LIMIT", "save_capture"]

# The most a capture may write unless told otherwise: 2,000 contexts take about 3 MB (README).
CAPTURE_LIMIT = 64 << 20


def save_capture(result, directory, *, limit=CAPTURE_LIMIT, before=None):
    """Write the capture of `result` (a `ScanResult` of `scan(..., capture=True)`) into `directory`, new or
    empty; returns (files, bytes) written. `before(total, count)` is called once the size is known, before
    anything is written. `CaptureError` when `directory` holds anything or the files exceed `limit` bytes."""
    if getattr(result, "capture", None) is None:
        raise ArgumentValueError("save_capture needs the result of scan(..., capture=True): its capture is read "
                                 "while the target is open", argument="result", value=result)
    check_int("limit", limit, 0)
    files = capture_files(result.capture)
    total = write_directory(directory, files, limit, before)
    return len(files), total
