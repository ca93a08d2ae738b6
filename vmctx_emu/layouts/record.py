"""`Record`: a frozen value declared like a dataclass, for the declaration's vocabulary.

The layouts are the first thing every CLI command imports, and
`dataclasses` (with the `inspect` it imports, and the source each
`@dataclass` compiles) was a third of the start-up. A `Record` subclass
declares its fields as annotations with optional defaults, in order, as a
dataclass does; instances take them by position or keyword, cannot be
assigned to, compare and hash by their fields (and only with their own
class), and print as `Name(field=value, ...)`.
"""

__all__ = ["Record"]


class Record:
    """A frozen value whose fields are its class's annotations (inherited ones first), with defaults."""

    _fields = ()
    _defaults = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = [name for name in cls.__dict__.get("__annotations__", {}) if name not in cls._fields]
        cls._fields = cls._fields + tuple(own)
        cls._defaults = {**cls._defaults, **{name: cls.__dict__[name] for name in own if name in cls.__dict__}}

    def __init__(self, *args, **kwargs):
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} fields, got {len(args)}")
        values = dict(zip(fields, args))
        for name, value in kwargs.items():
            if name not in fields or name in values:
                raise TypeError(f"{type(self).__name__} got an unexpected or repeated field {name!r}")
            values[name] = value
        for name in fields:
            if name not in values:
                if name not in self._defaults:
                    raise TypeError(f"{type(self).__name__} is missing field {name!r}")
                values[name] = self._defaults[name]
        self.__dict__.update(values)
        self.__post_init__()

    def __post_init__(self):
        """Check or normalise the fields (in `self.__dict__`, as assignment is refused)."""

    def __setattr__(self, name, value):
        raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")

    def __delattr__(self, name):
        raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")

    def _values(self):
        """The fields' values, in declaration order."""
        return tuple(self.__dict__[name] for name in self._fields)

    def replace(self, **changes):
        """A copy with `changes` (field -> value)."""
        return type(self)(**{**dict(zip(self._fields, self._values())), **changes})

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self is other or self._values() == other._values()

    def __hash__(self):
        # Frozen, so hashed once: records are the keys of the layout caches, looked up per offset.
        try:
            return self.__dict__["_hash"]
        except KeyError:
            h = self.__dict__["_hash"] = hash(self._values())
            return h

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{n}={v!r}' for n, v in zip(self._fields, self._values()))})"
