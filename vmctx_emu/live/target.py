"""The target a user names: this process, a pid, or a core file path, opened as a MemorySource."""

import os

from ..errors import ArgumentTypeError, ArgumentValueError
from .core import CoreFileSource
from .process import ProcessSource

__all__ = ["open_source"]


def open_source(source=None):
    """A MemorySource for `source`: None is this process, an int (or a str of digits) a pid, a path a core file.

    A core file whose name is all digits must be given as "./1234" or a Path.
    """
    if source is None:
        return ProcessSource(os.getpid())
    if isinstance(source, bool):
        raise ArgumentTypeError(f"source must be None, a pid or a core file path, got {source!r}")
    if isinstance(source, int):
        return ProcessSource(source)
    if isinstance(source, str) and source.isascii() and source.isdigit():
        return ProcessSource(int(source))
    if isinstance(source, (str, bytes, os.PathLike)):
        path = os.fspath(source)
        if (b"\0" if isinstance(path, bytes) else "\0") in path:
            raise ArgumentValueError(f"a core file path has no NUL byte, got {path[:80]!r}")
        return CoreFileSource(source)
    raise ArgumentTypeError(f"source must be None, a pid or a core file path, got {type(source).__name__}")
