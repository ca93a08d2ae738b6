"""The pytest plugin (entry point `pytest11`): its fixtures here, and in a project of its own via pytester."""

import textwrap

import pytest

from vmctx_emu.pytest_plugin import ContextMismatch, assert_same_context

pytest_plugins = ["pytester"]


def test_vmctx_instance_builds_a_release_and_closes_it(vmctx_instance):
    inst = vmctx_instance({"num_runtime_component_instances": 2, "num_lowerings": 1}, wasmtime="41")
    assert inst.layout.name.startswith("L9") and inst.instance_flags(1).value == 3
    assert vmctx_instance().offsets.size_of_vmctx() == 32  # v50 with every count 0: header only


def test_assert_same_context_names_field_offset_and_values(vmctx_instance):
    a = vmctx_instance({"num_runtime_component_instances": 2})
    b = vmctx_instance({"num_runtime_component_instances": 2})
    assert_same_context(a, b)
    b.instance_flags(1).value = 0
    with pytest.raises(ContextMismatch) as e:
        assert_same_context(a, b)
    assert str(e.value) == "may_leave[1] at offset 48: 0x1 != 0x0 (actual != expected)"
    assert (e.value.field, e.value.offset, e.value.actual, e.value.expected) == ("may_leave[1]", 48, 1, 0)
    assert_same_context(a, b, ignore=["may_leave["])
    with pytest.raises(ContextMismatch, match=r"^different shapes: L11 .*, 48 bytes vs L11 .*, 64 bytes$"):
        assert_same_context(vmctx_instance({"num_runtime_component_instances": 1}), a)


def test_wasmtime_context_is_a_live_decoded_context(wasmtime_context, vmctx_instance):
    from vmctx_emu.live.example import COMPONENT

    calls = []
    ctx = wasmtime_context(COMPONENT, host={"add": lambda x: calls.append(x) or x + 100})
    assert ctx.instance.get_func(ctx.store, "run")(ctx.store, 1) == 102 and calls == [1]
    assert ctx.shape_from.startswith("VMComponentOffsets stored at") and ctx.decoded.anomalies == []
    # The emulator's release build of the same shape: equal wherever the runtime writes a constant.
    ours = vmctx_instance(ctx.counts, wasmtime=ctx.wasmtime)
    assert_same_context(ours, ctx, ignore=["builtins", "store_context", "trampoline_func_refs[", "lowerings["])


def test_the_plugin_loads_by_entry_point_in_another_project(pytester):
    pytester.makepyfile(test_user=textwrap.dedent("""
        def test_uses_the_fixtures(vmctx_instance, assert_same_context):
            a = vmctx_instance({"num_runtime_component_instances": 1}, wasmtime="50")
            b = vmctx_instance({"num_runtime_component_instances": 1}, wasmtime="50")
            b.instance_flags(0).value = 0
            assert_same_context(a, b)
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ContextMismatch: may_leave[[]0[]] at offset 32: 0x1 != 0x0 (actual != expected)"])


def test_the_readme_example_passes(pytester):
    """The README's plugin section: the test file its shell block writes, run in a project of its own."""
    import pathlib

    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Writing runtime tests: the pytest plugin") :]
    body = section[section.index("<<'EOF'\n") + len("<<'EOF'\n") : section.index("\nEOF\n")]
    pytester.makepyfile(test_flags=body)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
