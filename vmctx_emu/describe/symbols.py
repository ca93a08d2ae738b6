"""Symbol names short enough to read in a table: generic arguments elided, paths inside them dropped.

`<wasmtime::…::DynamicHostFn<F, false> as wasmtime::…::HostFn<T, P, R>>::cabi_entrypoint + 0x3 in section
.text of _libwasmtime.so` reads `<DynamicHostFn<…> as HostFn<…>>::cabi_entrypoint + 0x3 in section .text of
_libwasmtime.so`. JSON keeps the full name; text shows this.
"""

import re
from functools import lru_cache

__all__ = ["short_name"]

# A path starts where no identifier character precedes, and each identifier is taken whole (possessive):
# otherwise each start inside a long identifier retries it, quadratic (a 145 KB one took 120 s).
_PATH = re.compile(r"(?<![A-Za-z0-9_])(?:[A-Za-z_][A-Za-z0-9_]*+::)+(?=[A-Za-z_])")


def _elide(symbol):
    out, depth, generic_depth = [], 0, None
    for i, ch in enumerate(symbol):
        if ch == "<":
            # A generic argument list follows a name; a `<T as Trait>` qualification starts one.
            if generic_depth is None and i and (symbol[i - 1].isalnum() or symbol[i - 1] in "_"):
                generic_depth = depth
                out.append("<…")
            elif generic_depth is None:
                out.append(ch)
            depth += 1
        elif ch == ">":
            depth -= 1
            if generic_depth is not None and depth == generic_depth:
                generic_depth = None
                out.append(">")
            elif generic_depth is None:
                out.append(ch)
        elif generic_depth is None:
            out.append(ch)
    return "".join(out)


def _drop_paths(symbol):
    """Module paths of the types inside a qualification `<…>` dropped; the path after it kept."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(symbol):
        if ch in "<>":
            piece = symbol[start:i]
            out.append(_PATH.sub("", piece) if depth > 0 else piece)
            out.append(ch)
            depth += 1 if ch == "<" else -1
            start = i + 1
    out.append(symbol[start:])
    return "".join(out)


@lru_cache(maxsize=4096)  # a scan repeats a few names thousands of times
def short_name(text):
    """`text` (a pointer's name) with any Rust symbol in it shortened; other text as it is."""
    if not text or "<" not in text:
        return text
    head, sep, tail = text.partition(" in section ")
    symbol, plus, offset = head.partition(" + 0x")
    if _unbalanced(symbol):
        return text
    return _drop_paths(_elide(symbol)) + plus + offset + sep + tail


def _unbalanced(symbol):
    """Unbalanced angle brackets (a name cut or not Rust's): left as it is."""
    depth = 0
    for ch in symbol:
        depth += (ch == "<") - (ch == ">")
        if depth < 0:
            return True
    return depth != 0
