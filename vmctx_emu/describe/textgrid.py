"""Text built as numpy byte matrices: one row per line (or element), numbers written column by column.

Used where millions of lines share one shape (a decode's array elements, hexdump lines): a
`Row` is the line's text with holes; every hole is filled for all rows at once from a matrix
of ASCII digits (`dec_digits`, `dec_right`, `hex_digits`). Tables are built on first use, so
commands that print no such text do not pay for them at start-up.
"""

from functools import lru_cache

import numpy as np

__all__ = ["Row", "dec_digits", "dec_right", "hex_digits", "hex_pairs", "decimal_widths"]


@lru_cache(maxsize=None)
def _tables():
    """Four decimal digits per entry as one 4-byte word: zero-padded, space-padded; four blanks."""
    n = np.arange(10_000)
    zero = np.stack([48 + n // 10**(3 - k) % 10 for k in range(4)], axis=1).astype(np.uint8)
    spaced = zero.copy()
    for k in range(3):  # a leading zero is a blank, the last digit never
        spaced[:, k][n < 10**(3 - k)] = ord(" ")
    return zero.view(np.uint32)[:, 0], spaced.view(np.uint32)[:, 0], np.frombuffer(b"    ", np.uint32)[0]


@lru_cache(maxsize=None)
def _hex4():
    """Four lowercase hex digits per 16-bit value, as one 4-byte word each."""
    n = np.arange(1 << 16)
    chars = np.frombuffer(b"0123456789abcdef", np.uint8)
    return np.stack([chars[n >> 4 * (3 - k) & 15] for k in range(4)], axis=1).view(np.uint32)[:, 0]


@lru_cache(maxsize=None)
def hex_pairs():
    """(256, 2) ASCII: the two lowercase hex digits of each byte value."""
    return _hex4()[:256].view(np.uint8).reshape(256, 4)[:, 2:]


def _dec8(values, spaced=False):
    """(len(values), 8) ASCII of `values` < 10**8: zero-padded, or right-aligned in spaces (`{:8d}`)."""
    dec4, spaced4, blank4 = _tables()
    hi, lo = np.divmod(np.asarray(values).astype(np.int64), 10_000)
    out = np.empty((len(hi), 2), np.uint32)
    if spaced and len(hi) and hi.min() > 0:  # all of eight digits' width: no blanks
        out[:, 0] = spaced4[hi]
        out[:, 1] = dec4[lo]
    elif spaced and len(hi) and hi.max() == 0:  # all of four digits or fewer
        out[:, 0] = blank4
        out[:, 1] = spaced4[lo]
    elif spaced:
        out[:, 0] = np.where(hi > 0, spaced4[hi], blank4)
        out[:, 1] = np.where(hi > 0, dec4[lo], spaced4[lo])
    else:
        out[:, 0] = dec4[hi]
        out[:, 1] = dec4[lo]
    return out.view(np.uint8).reshape(len(hi), 8)


def dec_digits(values, n):
    """(len(values), n) ASCII decimal digits of non-negative `values`, zero-padded to `n` (values < 10**n)."""
    if n <= 8:
        return _dec8(values)[:, 8 - n:]
    v = np.asarray(values).astype(np.uint64)
    parts = []
    for _ in range((n + 7) // 8):
        v, r = np.divmod(v, np.uint64(10**8))
        parts.append(_dec8(r))
    return np.concatenate(parts[::-1], axis=1)[:, 8 * len(parts) - n:]


def dec_right(values, n=8):
    """(len(values), n) ASCII of `values` right-aligned in spaces, as `{:nd}` (values < 10**n, n <= 8)."""
    return _dec8(values, spaced=True)[:, 8 - n:]


def hex_digits(values, n):
    """(len(values), n) lowercase hex digits of `values` (u64), zero-padded to `n` <= 16."""
    words = (n + 3) // 4  # 16-bit words, four digits each
    big = np.asarray(values).astype(">u8").view(">u2").reshape(-1, 4)[:, 4 - words:]
    return _hex4()[big].view(np.uint8).reshape(-1, 4 * words)[:, 4 * words - n:]


def decimal_widths(values):
    """Decimal digits of each non-negative value (1 for 0)."""
    v = np.asarray(values).astype(np.uint64)
    n = np.ones(len(v), np.int64)
    for k in range(1, len(str(int(v.max()))) if len(v) else 1):
        n += v >= np.uint64(10**k)
    return n


class Row:
    """The text of one row with holes, rendered for `m` rows as an (m, width) ASCII matrix.

    `text` appends fixed text; `fill` appends a hole filled from an (m, n) ASCII matrix
    (`dec_digits`, `hex_digits`, ...), one column per character, all rows at once.
    """

    def __init__(self, m):
        self.m = m
        self._parts = []
        self._fills = []
        self.width = 0

    def text(self, text):
        self._parts.append(text)
        self.width += len(text)

    def fill(self, digits):
        n = digits.shape[1]
        self._fills.append((self.width, digits))
        self._parts.append(" " * n)
        self.width += n

    def matrix(self):
        row = np.frombuffer("".join(self._parts).encode("ascii"), np.uint8)
        mat = np.empty((self.m, self.width), np.uint8)
        mat[:] = row
        for pos, digits in self._fills:
            mat[:, pos:pos + digits.shape[1]] = digits
        return mat
