"""The package's errors: every class in `errors.py`, carrying its facts; library messages speak Python."""

import ast
import importlib
import inspect
import pathlib
import re

import pytest

import vmctx_emu
from vmctx_emu import VMComponentOffsets, errors
from vmctx_emu.checks import check_ptr, check_u32
from vmctx_emu.errors import ArgumentTypeError, ArgumentValueError, ComponentIndexError, ComponentValueError

PACKAGE = pathlib.Path(vmctx_emu.__file__).parent
# The lead's live/ keeps its own (ScanError) until its rewrite; the CLI, gdb and the renderers speak CLI.
NOT_LIBRARY = ("live", "cli.py", "gdb.py", "gdb_script.py", "lldb.py", "lldb_script.py", "debugger_script.py", "demo.py",
               "pytest_plugin.py")


def modules(skip=("live",)):
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in skip or path.name == "__main__.py":
            continue
        yield path, ".".join(("vmctx_emu", *rel.with_suffix("").parts)).removesuffix(".__init__")


@pytest.mark.parametrize("path, name", list(modules()), ids=lambda x: str(x).rsplit("/", 1)[-1])
def test_every_exception_class_is_in_errors_py(path, name):
    if name.endswith(("_native", "_script")):  # compiled, or run inside gdb or lldb (which cannot import errors.py)
        return
    module = importlib.import_module(name)
    own = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
           if cls.__module__ == name and issubclass(cls, BaseException)]
    assert own == [] or name == "vmctx_emu.errors", [cls.__name__ for cls in own]


def test_errors_carry_their_facts():
    offsets = VMComponentOffsets(8, vmctx_emu.Component(num_lowerings=3))
    with pytest.raises(ComponentIndexError) as e:
        offsets.lowering(5)
    assert (e.value.accessor, e.value.index, e.value.count, e.value.count_name) == ("lowering", 5, 3, "num_lowerings")
    with pytest.raises(ArgumentValueError) as e:
        check_ptr("address", 1 << 32, 4)
    assert (e.value.argument, e.value.value, e.value.bound) == ("address", 1 << 32,
                                                                "an int in [0, 2**32) for pointer size 4")
    with pytest.raises(ArgumentTypeError) as e:
        check_ptr("address", "0x10", 8)
    assert (e.value.argument, e.value.value) == ("address", "0x10")
    with pytest.raises(ComponentValueError) as e:
        check_u32("num_lowerings", -1)
    assert (e.value.argument, e.value.value) == ("num_lowerings", -1)
    with pytest.raises(TypeError, match="has no fact"):
        ComponentIndexError("x", bound=1)
    assert all(issubclass(cls, errors.VMCtxEmuError) or cls is errors.ContextMismatch
               for cls in vars(errors).values() if inspect.isclass(cls) and issubclass(cls, BaseException))


@pytest.mark.parametrize("path, name", [m for m in modules() if not m[1].split(".")[-1].startswith(("cli", "gdb", "lldb", "debugger"))
                                        and not m[1].startswith("vmctx_emu.describe")
                                        and m[0].name not in NOT_LIBRARY], ids=lambda x: str(x).rsplit("/", 1)[-1])
def test_library_messages_name_no_cli_option(path, name):
    """A message said "--ptr-size and the count options", "--instances N", "--force": the CLI words those.
    (`describe/` renders the text the CLI prints, its options included: `infer`'s candidates, `versions`.)"""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert not re.search(r"(?<![\w-])--[a-z]", node.value), (name, node.value)
