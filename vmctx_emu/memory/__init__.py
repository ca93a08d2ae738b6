"""Context memory: allocation, emulated instances, flag words, numpy views and the C bridge.

The memory layer knows no dump format: `OwnedComponentInstance.dump` calls
the writer registered here, and the layer above that owns the format
registers it (the package's top level registers `vmctx_emu.dumps`'s, which
is imported only when a dump is first written).
"""

from ..errors import VMCtxEmuError

__all__ = ["register_dump_writer", "dump_writer"]

_dump_writer = None


def register_dump_writer(write):
    """Make `write(ctx, path)` what `OwnedComponentInstance.dump(path)` calls."""
    global _dump_writer
    _dump_writer = write


def dump_writer():
    """The registered `write(ctx, path)`."""
    if _dump_writer is None:
        raise VMCtxEmuError("no dump writer is registered (vmctx_emu.memory.register_dump_writer)")
    return _dump_writer
