"""Rust symbol names for reading: v0 (`_R...`) and legacy (`_ZN...17h<hash>E`) mangling, crate hashes dropped.

Symbol names come from the target's files, so they are input like any other:
a name that does not parse is returned as it is, and so is one whose reading
would pass rustc-demangle's own limits (`MAX_DEPTH` nested paths and types,
`MAX_OUTPUT` characters): back-references and binders let a 20-character name
ask for gigabytes, so the work is bounded by what is produced, never by what
the name claims.
"""

import functools
import re

from ..errors import ArgumentTypeError

__all__ = ["demangle", "MAX_DEPTH", "MAX_OUTPUT"]

MAX_DEPTH = 500  # nested paths, types, constants and back-references followed (rustc-demangle's MAX_DEPTH)
MAX_OUTPUT = 1_000_000  # characters of output (rustc-demangle stops at the same size)
# Characters built on the way, inner strings counted again in each string that holds them (the
# real cost of building the output; nesting counts a name once per level, hence a multiple), and
# each nested parse as _PARSE_COST characters, so a name of empty parts is bounded too (~0.1 s).
_MAX_WORK = 4 * MAX_OUTPUT
_PARSE_COST = 64
_MAX_DIGITS = 19  # a length or index of more digits is past any name's size (and past Python's int limit)
_CACHED = 4096  # longer names or readings are demangled afresh each time: the cache holds small strings


def demangle(name):
    """A Rust symbol name (v0 `_R...` or legacy `_ZN...17h<hash>E`) for reading, without crate hashes.

    Anything else (C, C++, damaged Rust, or a name whose reading passes
    `MAX_DEPTH` or `MAX_OUTPUT`) comes back unchanged: a mangled name is still
    a correct name, a half-demangled one is not. The result is at most
    max(len(name), MAX_OUTPUT) characters. `name` must be a str.
    """
    if not isinstance(name, str):
        raise ArgumentTypeError(f"name must be a str, got {type(name).__name__} {name!r:.80}", argument="name",
                                value=name)
    found = _cache.get(name)
    if found is None:
        found = _demangle(name)
        if len(name) <= _CACHED and len(found) <= _CACHED:
            if len(_cache) >= _CACHE_ENTRIES:
                _cache.clear()
            _cache[name] = found
    return found


_cache = {}  # name -> its reading, both at most _CACHED characters (a scan asks again for the same names)
_CACHE_ENTRIES = 4096


def _demangle(name):
    try:
        if name.startswith("_R"):
            return _demangle_v0(name[2:])
        if name.startswith("_ZN"):
            return _demangle_legacy(name[3:]) or name
    except (_Bad, RecursionError):  # RecursionError: nesting no compiler emits
        pass
    return name


class _Bad(Exception):
    """Not a name this demangler reads; the caller keeps the mangled one."""


_LENGTH = re.compile(r"[1-9][0-9]{0,%d}" % (_MAX_DIGITS - 1))
_LEGACY_ESCAPES = {"SP": "@", "BP": "*", "RF": "&", "LT": "<", "GT": ">", "LP": "(", "RP": ")", "C": ","}


def _demangle_legacy(s):
    parts, i = [], 0
    while i < len(s) and s[i] != "E":
        m = _LENGTH.match(s, i)
        if not m or m.end() + int(m.group()) > len(s):
            raise _Bad
        i = m.end() + int(m.group())
        parts.append(s[m.end():i])
    tail = s[i + 1:]
    if i >= len(s) or tail[:1] not in ("", ".") or not parts or not re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        return None  # not Rust: C++ names have no hash component
    return "::".join(_legacy_part(p) for p in parts[:-1]) + tail


def _legacy_part(p):
    if p.startswith("_$"):
        p = p[1:]

    def escape(m):
        code = m.group(1)
        if code in _LEGACY_ESCAPES:
            return _LEGACY_ESCAPES[code]
        if re.fullmatch(r"u[0-9a-f]{1,6}", code) and int(code[1:], 16) <= 0x10FFFF:
            return chr(int(code[1:], 16))
        raise _Bad

    return re.sub(r"\$([A-Za-z0-9]*)\$", escape, p).replace("..", "::")


_B62 = {c: i for i, c in enumerate("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_BASIC = dict(a="i8", b="bool", c="char", d="f64", e="str", f="f32", h="u8", i="isize", j="usize", l="i32", m="u32",
              n="i128", o="u128", s="i16", t="u16", u="()", v="...", x="i64", y="u64", z="!", p="_")
_DECIMAL, _HEX = re.compile(r"0|[1-9][0-9]{0,%d}" % (_MAX_DIGITS - 1)), re.compile(r"[0-9a-f]{0,32}_")
_MAX_STEPS = 20000  # back-references followed; each also counts against the work and the depth
_B62_DIGITS = 11  # 62**11 > 2**64: rustc-demangle reads base-62 numbers as u64 and refuses more
_MAX_PUNYCODE = 1024  # characters of one punycode identifier (Python's decoder is quadratic)


def _demangle_v0(s):
    """Rust's v0 mangling (RFC 2603), printed as rustc-demangle's alternate form: no crate hashes."""
    if not s.isascii() or s[:1].isdigit():
        raise _Bad  # an encoding version we do not know
    s, dot, suffix = s.partition(".")
    p = _V0(s)
    out = p.path(True)
    if p.i < len(s):
        p.path(True)  # the instantiating crate, not printed
    if p.i != len(s) or len(out) > MAX_OUTPUT:
        raise _Bad
    return out + dot + suffix


def _nested(parse):
    """`parse` of one nested item, counted against MAX_DEPTH, and its result and call against the work budget."""
    @functools.wraps(parse)
    def nested(self, *args):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Bad
        out = parse(self, *args)
        self.depth -= 1
        self.spend(len(out) + _PARSE_COST)
        return out
    return nested


class _V0:
    def __init__(self, s):
        self.s, self.i, self.steps, self.bound = s, 0, 0, 0
        self.depth, self.work = 0, 0

    def spend(self, n):
        self.work += n
        if self.work > _MAX_WORK:
            raise _Bad

    def next(self):
        if self.i >= len(self.s):
            raise _Bad
        self.i += 1
        return self.s[self.i - 1]

    def eat(self, c):
        if self.s.startswith(c, self.i):
            self.i += 1
            return True
        return False

    def b62(self):
        n = digits = 0
        if self.eat("_"):
            return 0
        while (c := self.next()) != "_":
            digits += 1
            if c not in _B62 or digits > _B62_DIGITS:
                raise _Bad
            n = n * 62 + _B62[c]
        return n + 1

    def opt(self, tag):
        return self.b62() + 1 if self.eat(tag) else 0

    def decimal(self):
        m = _DECIMAL.match(self.s, self.i)
        if not m:
            raise _Bad
        self.i = m.end()
        return int(m.group())

    def ident(self):
        dis, puny = self.opt("s"), self.eat("u")
        n = self.decimal()
        self.eat("_")
        name = self.s[self.i:self.i + n]
        if len(name) != n:
            raise _Bad
        self.i += n
        if puny:
            if n > _MAX_PUNYCODE:
                raise _Bad
            basic, _, ext = name.rpartition("_")
            try:
                name = (f"{basic}-{ext}" if basic else ext).encode().decode("punycode")
            except UnicodeError:
                raise _Bad from None
        return dis, name

    def back(self, parse):
        start = self.i - 1
        target = self.b62()
        self.steps += 1
        if target >= start or self.steps > _MAX_STEPS:
            raise _Bad
        saved, self.i = self.i, target
        try:
            return parse()
        finally:
            self.i = saved

    def list(self, parse):
        items = []
        while not self.eat("E"):
            items.append(parse())
        return items

    @_nested
    def path(self, value):
        c = self.next()
        if c == "C":
            return self.ident()[1]
        if c == "M":
            self.opt("s")
            self.path(False)
            return f"<{self.type()}>"
        if c == "X":
            self.opt("s")
            self.path(False)
            return f"<{self.type()} as {self.path(False)}>"
        if c == "Y":
            return f"<{self.type()} as {self.path(False)}>"
        if c == "N":
            ns, parent = self.next(), self.path(value)
            dis, name = self.ident()
            if ns.isupper():
                kind = {"C": "closure", "S": "shim"}.get(ns, ns)
                return f"{parent}::{{{kind}{':' + name if name else ''}#{dis}}}"
            if not ns.islower():
                raise _Bad
            return f"{parent}::{name}" if name else parent
        if c == "I":
            base = self.path(value)
            return f"{base}{'::' if value else ''}<{', '.join(self.list(self.generic))}>"
        if c == "B":
            return self.back(lambda: self.path(value))
        raise _Bad

    @_nested
    def generic(self):
        if self.eat("L"):
            return self.lifetime(self.b62())
        if self.eat("K"):
            return self.const()
        return self.type()

    def lifetime(self, index):
        if index == 0:
            return "'_"
        depth = self.bound - index
        if depth < 0:
            raise _Bad
        return f"'{chr(ord('a') + depth)}" if depth < 26 else f"'_{depth}"

    def binder(self):
        names, count = [], self.opt("G")
        self.spend(count * _PARSE_COST)  # checked before the loop, not after a billion names
        for _ in range(count):
            self.bound += 1
            names.append(self.lifetime(1))
        return f"for<{', '.join(names)}> " if names else ""

    @_nested
    def type(self):
        c = self.next()
        if c in _BASIC:
            return _BASIC[c]
        if c in "RQ":
            lt = self.lifetime(self.b62()) + " " if self.eat("L") else ""
            lt = "" if lt == "'_ " else lt
            return f"&{lt}{'mut ' if c == 'Q' else ''}{self.type()}"
        if c in "PO":
            return f"*{'const' if c == 'P' else 'mut'} {self.type()}"
        if c == "A":
            return f"[{self.type()}; {self.const()}]"
        if c == "S":
            return f"[{self.type()}]"
        if c == "T":
            items = self.list(self.type)
            return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
        if c == "F":
            return self.scoped(self.fn_sig)
        if c == "D":
            text = self.scoped(self.dyn_bounds)
            lt = self.lifetime(self.b62()) if self.eat("L") else None
            return f"dyn {text}" + (f" + {lt}" if lt and lt != "'_" else "")
        if c == "B":
            return self.back(self.type)
        self.i -= 1
        return self.path(False)

    def scoped(self, parse):
        saved = self.bound
        try:
            return parse(self.binder())
        finally:
            self.bound = saved

    def fn_sig(self, binder):
        unsafe = "unsafe " if self.eat("U") else ""
        abi = ""
        if self.eat("K"):
            abi = "C" if self.eat("C") else self.abi()
            abi = f'extern "{abi}" '
        args = self.list(self.type)
        ret = self.type()
        return f"{binder}{unsafe}{abi}fn({', '.join(args)})" + ("" if ret == "()" else f" -> {ret}")

    def abi(self):
        n = self.decimal()
        self.eat("_")
        text = self.s[self.i:self.i + n]
        self.i += n
        if len(text) != n:
            raise _Bad
        return text.replace("_", "-")

    def dyn_bounds(self, binder):
        traits = []
        while not self.eat("E"):
            trait, assoc = self.path(False), []
            while self.eat("p"):
                name = self.ident()[1]
                assoc.append(f"{name} = {self.type()}")
            if assoc:
                trait = f"{trait[:-1]}, {', '.join(assoc)}>" if trait.endswith(">") else f"{trait}<{', '.join(assoc)}>"
            traits.append(trait)
        return binder + " + ".join(traits)

    @_nested
    def const(self):
        if self.eat("B"):
            return self.back(self.const)
        if self.eat("p"):
            return "_"
        tag = self.next()
        if tag not in "hmyotjaslxnibc":
            raise _Bad  # str, reference, array, tuple and struct constants: rare, kept mangled
        negative = tag in "aslxni" and self.eat("n")
        m = _HEX.match(self.s, self.i)
        if not m:
            raise _Bad
        self.i = m.end()
        value = int(m.group()[:-1] or "0", 16)
        if tag == "b":
            if value > 1:
                raise _Bad
            return "true" if value else "false"
        if tag == "c":
            if value > 0x10FFFF:
                raise _Bad
            return repr(chr(value))
        return str(-value if negative else value)
