"""Finding component contexts in memory that is not ours: live processes and core files.

`scan(source=None | pid | core_path, wasmtime=None)` is the entry point; it is
imported on first use so that reading a source alone stays light.
"""

__all__ = ["scan", "ScanError", "ScanResult", "LiveContext"]


def __getattr__(name):
    if name in __all__:
        from . import scanner

        return getattr(scanner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
