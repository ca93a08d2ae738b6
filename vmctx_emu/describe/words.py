"""The words for one decoded value: its interpretation and its raw hex, shared by every renderer."""

import re
from xml.sax.saxutils import escape

from ..dumps.decode import Interp
from ..memory.flags import flag_names
from ..memory.magic import describe_magic_bytes

__all__ = ["FIXED_TEXT", "interpretation", "hex_width", "hex_value", "anomaly_summary", "utf8_text", "xml_text"]

# Interpretations whose text does not depend on the value.
FIXED_TEXT = {Interp.POISON: "unset (debug poison)", Interp.NULL: "null", Interp.POINTER: "pointer (not followed)",
              Interp.OWN_VMCTX: "this context", Interp.OTHER_VMCTX: "NOT this context"}


def _i32(value):
    return value - (1 << 32) if value & 0x8000_0000 else value


def interpretation(code, value, ctx):
    """What the `Interp` `code` of `value` means in `ctx`, in words."""
    if code == Interp.MAGIC_OK:
        return "VMCOMPONENT_MAGIC (ok)"
    if code == Interp.MAGIC_BAD:
        raw = value.to_bytes(4, ctx.byte_order)
        what = describe_magic_bytes(raw, ctx.byte_order, ctx.ptr)
        return f"BAD MAGIC {raw!r}" + (f": {what}" if what else "")
    if code == Interp.FLAGS:
        return flag_names(_i32(value), ctx.layout.flag_bits)
    text = FIXED_TEXT.get(code)
    return str(value) if text is None else text


def hex_width(column, ctx):
    """Bytes of a column's raw value: a pointer's size, else 4."""
    return int(ctx.ptr) if column.kind == "ptr" else 4


def hex_value(column, value, ctx):
    """The raw value as 0x and every hex digit of its width (`0x0000555500001000`)."""
    return f"{value:#0{2 + 2 * hex_width(column, ctx)}x}"


def anomaly_summary(anomalies):
    return "anomalies: none" if not anomalies else f"anomalies: {len(anomalies)}"


def utf8_text(text):
    """`text` writable as UTF-8 whatever it holds: a byte of a file name that is not UTF-8 (os keeps it as a
    surrogate escape) as `\\xff`, any other lone surrogate as `\\udXXX`."""
    text = str(text)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


# Characters XML 1.0 does not allow even escaped (a hostile symbol or file name may hold them): shown as U+FFFD.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text):
    """`text` as XML character data (an SVG's titles and labels): markup escaped, characters XML cannot carry
    replaced by U+FFFD."""
    return escape(_NOT_XML.sub("\ufffd", text))
