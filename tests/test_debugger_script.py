"""The part of the gdb and lldb command files they share (`vmctx_emu/debugger_script.py`), run here on a stand-in
debugger: the paths a real debugger test cannot reach here (a remote target) and the option handling."""

import ctypes
import sys
import types

import pytest

from vmctx_emu import Component, OwnedComponentInstance


@pytest.fixture(scope="module")
def shared():
    """The shared part as the command files hold it (this interpreter named), as a module."""
    module = types.ModuleType("vmctx_debugger_shared")
    exec(compile(_shared_text(), "debugger_script", "exec"), module.__dict__)
    return module


def _shared_text():
    """debugger_script.py with its placeholders filled as `vmctx_emu.gdb.command_file` fills them."""
    from importlib import resources

    from vmctx_emu.constants import VMCOMPONENT_MAGIC

    text = resources.files("vmctx_emu").joinpath("debugger_script.py").read_text()
    return text.replace('"@PYTHON@"', repr(sys.executable)).replace("@VMCOMPONENT_MAGIC@", str(VMCOMPONENT_MAGIC))


@pytest.fixture(scope="module")
def context():
    inst = OwnedComponentInstance(Component(num_lowerings=2, num_runtime_component_instances=1), (0x1000, 0x2000))
    yield inst
    inst.close()


def remote(shared, context):
    """A debugger whose target the scan cannot read (a remote one), reading this process's memory."""

    class Remote(shared.Inferior):
        why_not = "the inferior is on a remote target"

        def evaluate(self, expression):
            return {"ctx": context.vmctx}[expression.strip()]

        def read(self, address, size):
            return ctypes.string_at(address, size)

        def target(self):
            return None

    return Remote()


def test_remote_target_needs_the_counts(shared, context):
    with pytest.raises(shared.CommandError) as e:
        shared.context_command(remote(shared, context), "ctx", "usage")
    assert str(e.value) == ("vmctx: the inferior is on a remote target, so the scan cannot read the release and "
                            "shape: give the component's counts after the address, e.g. `vmctx ADDRESS --lowerings 3 "
                            "--instances 2` (absent counts are 0; `vmctx-emu versions` lists each release's count "
                            "options)")


def test_remote_target_decodes_with_the_counts_as_before(shared, context):
    notes, text = shared.context_command(remote(shared, context), "ctx --lowerings 2 --instances 1", "usage")
    assert notes == []
    assert text.startswith(f"VMComponentContext at {context.vmctx:#x}: ptr_size=8, little-endian, "
                           f"{context.offsets.size_of_vmctx()} bytes, debug\n")
    assert "VMCOMPONENT_MAGIC (ok)" in text and "flags[0]" in text and "anomalies: none" in text


def test_remote_target_scan_and_where_say_why_not(shared, context):
    for command, run in (("vmctx scan", shared.scan_command), ("vmctx where", shared.where_command)):
        with pytest.raises(shared.CommandError) as e:
            run(remote(shared, context), "ctx" if command.endswith("where") else "")
        assert str(e.value) == (f"{command}: the inferior is on a remote target; scan reads a local process or a core "
                                "file (make one with `gcore FILE`, then run `vmctx-emu scan --core FILE`)")


@pytest.mark.parametrize("arg, expression, options, counts", [
    ("ctx", "ctx", [], []),
    ("(char *)ctx + 16 --lowerings 3 --json", "(char *)ctx + 16", ["--json"], ["--lowerings", "3"]),
    ("ctx --wasmtime=50 --trampolines 1 --summary --exe /x", "ctx", ["--wasmtime=50", "--summary", "--exe", "/x"],
     ["--trampolines", "1"]),
    ("--help", "", ["--help"], []),
])
def test_the_address_is_everything_before_the_first_option(shared, context, arg, expression, options, counts):
    assert shared._split_context(remote(shared, context), arg) == (expression, options, counts)


def test_help_is_the_usage_given(shared, context):
    assert shared.context_command(remote(shared, context), "ctx --help", "the usage") == ([], "the usage")
