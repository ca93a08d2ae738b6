"""Names a package imports on first use (PEP 562), so importing the package stays cheap."""

import sys
from importlib import import_module

__all__ = ["lazy_names"]


def lazy_names(package, where):
    """`__getattr__` and `__dir__` for the package named `package`: each name in `where` (name -> the
    submodule that defines it, relative: "dumps.dump") is imported from there when first asked for, then kept."""

    def __getattr__(name):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f".{module}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
