"""The pytest plugin (entry point `pytest11`): its fixtures here, and in a project of its own via pytester."""

import textwrap

import pytest

from vmctx_emu.errors import ArgumentTypeError, ArgumentValueError
from vmctx_emu.layouts.releases import wasmtime_layout
from vmctx_emu.pytest_plugin import ContextMismatch, WasmtimeContext, assert_same_context

pytest_plugins = ["pytester"]

# One release of every layout the presets are checked on: func refs of 3, 5, 4 pointers and repr(C), the seed.
PRESET_RELEASES = ("seed", "0.40", "8", "11", "21", "29", "31", "33", "38", "41", "45", "48", "50")


def test_vmctx_instance_builds_a_release_and_closes_it(vmctx_instance):
    inst = vmctx_instance({"num_runtime_component_instances": 2, "num_lowerings": 1}, wasmtime="41")
    assert inst.layout.name.startswith("L9") and inst.instance_flags(1).value == 3
    assert vmctx_instance().offsets.size_of_vmctx() == 32  # v50 with every count 0: header only


def test_assert_same_context_names_field_offset_and_values(vmctx_instance):
    a = vmctx_instance({"num_runtime_component_instances": 2}, wasmtime="50.0.1")
    b = vmctx_instance({"num_runtime_component_instances": 2}, wasmtime="50.0.1")
    assert_same_context(a, b)
    b.instance_flags(1).value = 0
    with pytest.raises(ContextMismatch) as e:
        assert_same_context(a, b)
    assert str(e.value) == "may_leave[1] at offset 48: actual 0x1 != expected 0x0 (Wasmtime 50.0.1, L11)"
    assert (e.value.field, e.value.index, e.value.offset, e.value.actual, e.value.expected) == ("may_leave[1]", 1, 48,
                                                                                                 1, 0)
    assert (e.value.release, e.value.differences) == (("50.0.1", "50.0.1"), ("may_leave[1]",))
    assert_same_context(a, b, ignore=["may_leave["])
    with pytest.raises(ContextMismatch, match=r"^different shapes: L11 .*, 48 bytes vs L11 .*, 64 bytes "
                                              r"\(num_runtime_component_instances 1 vs 2\); Wasmtime 50.0.1$"):
        assert_same_context(vmctx_instance({"num_runtime_component_instances": 1}, wasmtime="50.0.1"), a)


def test_a_mismatch_names_every_other_difference_and_both_releases(vmctx_instance):
    a = vmctx_instance({"num_runtime_component_instances": 8}, wasmtime="41")
    b = vmctx_instance({"num_runtime_component_instances": 8}, wasmtime="41.0.0")
    for i in range(1, 8):
        b.instance_flags(i).value = 1
    with pytest.raises(ContextMismatch) as e:
        assert_same_context(a, b)
    assert str(e.value) == ("flags[1] at offset 48: actual 0x3 != expected 0x1 (Wasmtime 41.0.4 vs 41.0.0, L9); "
                            "6 more differ: flags[2], flags[3], flags[4], flags[5], flags[6], ...")
    assert e.value.differences == tuple(f"flags[{i}]" for i in range(1, 8))
    assert e.value.release == ("41.0.4", "41.0.0")


@pytest.mark.parametrize("release", PRESET_RELEASES)
def test_presets_come_from_the_declared_kinds_and_roles(vmctx_instance, release):
    """ignore="pointers" skips exactly the pointer-sized sub-fields and only="flags" compares exactly the flag
    words, in every layout: a difference in each sub-field of the context is caught or not accordingly."""
    layout = wasmtime_layout(release)
    counts = {name: 1 for name in layout.count_names}
    a = vmctx_instance(counts, wasmtime=release)
    a_decoded = _decode(a)
    for record in a_decoded.records:
        column = a_decoded.columns[record["column"]]
        if column.role == "magic":
            continue  # another magic is refused before any field is compared
        b = vmctx_instance(counts, wasmtime=release)
        width = 4 if column.kind in ("u32", "i32") else b.ptr
        at = int(record["offset"])
        b.memory[at : at + width] = (int(record["value"]) ^ 0x10).to_bytes(width, b.byte_order)
        label = a_decoded.label(record)
        with pytest.raises(ContextMismatch) as e:
            assert_same_context(a, b)
        assert e.value.field == label
        _caught_unless(column.kind == "ptr", label, lambda: assert_same_context(a, b, ignore="pointers"))
        _caught_unless(column.role != "flags", label, lambda: assert_same_context(a, b, only="flags"))
        _caught_unless(False, label, lambda: assert_same_context(a, b, only=column.role))
        _caught_unless(True, label, lambda: assert_same_context(a, b, ignore=[column.role]))


def _decode(ctx):
    from vmctx_emu.dumps.decode import decode

    return decode(ctx)


def _caught_unless(skipped, label, compare):
    if skipped:
        compare()
        return
    with pytest.raises(ContextMismatch) as e:
        compare()
    assert e.value.field == label


def test_selectors_combine_presets_roles_fields_and_prefixes(vmctx_instance):
    counts = {"num_runtime_component_instances": 2, "num_lowerings": 2, "num_trampolines": 1}
    a = vmctx_instance(counts, header={"builtins": 0x10, "store_context": 0x20})
    b = vmctx_instance(counts, header={"builtins": 0x30, "store_context": 0x20})
    b.instance_flags(1).value = 0
    b.set_lowering(0, (0x1000, 0x2000))
    with pytest.raises(ContextMismatch, match=r"^builtins at offset 8: .*; 3 more differ: may_leave\[1\], "
                                              r"lowerings\[0\]\.callee, lowerings\[0\]\.data$"):
        assert_same_context(a, b, ignore="type_index")
    assert_same_context(a, b, ignore=["pointers", "may_leave[1]"])
    assert_same_context(a, b, ignore=["header", "flags", "lowerings"])
    assert_same_context(a, b, only=["magic", "trampoline_func_refs[0].", "store_context"])
    assert_same_context(a, b, only="lowerings[1]")
    with pytest.raises(ContextMismatch, match=r"^may_leave\[1\] at offset 48"):
        assert_same_context(a, b, only=["flags", "lowerings"], ignore="pointers")
    with pytest.raises(ContextMismatch, match=r"^lowerings\[0\]\.callee at offset 96: actual 0x0 != expected "
                                              r"0x1000 .*; 1 more differ: lowerings\[0\]\.data$"):
        assert_same_context(a, b, only="lowerings[0].")


def test_a_selector_that_selects_nothing_is_an_error(vmctx_instance):
    a = vmctx_instance({"num_runtime_component_instances": 1})
    with pytest.raises(ArgumentValueError, match=r"^ignore: 'pointer' selects nothing in this L11 context: it is not a "
                                                 r"preset \(pointers\), a role \(magic, flags, .*\(magic, builtins, "
                                                 r"store_context, may_leave, trampoline_func_refs, .*\)$") as e:
        assert_same_context(a, a, ignore=["pointer"])
    assert (e.value.argument, e.value.value) == ("ignore", "pointer")
    with pytest.raises(ArgumentValueError, match=r"^only: 'flags\[0\]' selects nothing"):
        assert_same_context(a, a, only="flags[0]")  # v50 calls them may_leave: a role fits every release
    with pytest.raises(ArgumentValueError, match=r"^only: 'lowering' selects nothing"):
        assert_same_context(a, a, only="lowering")  # neither a role nor a field: a typo of "lowerings"
    with pytest.raises(ArgumentValueError, match=r"^only=\['callee'\] selects no field .*: nothing to compare$"):
        assert_same_context(a, a, only="callee")  # a role, but this shape has no lowering
    with pytest.raises(ArgumentTypeError, match=r"^ignore takes a selector or a list of them"):
        assert_same_context(a, a, ignore=3)
    with pytest.raises(ArgumentTypeError, match=r"^only: a selector is a non-empty str"):
        assert_same_context(a, a, only=["flags", None])


def test_wasmtime_context_is_a_live_decoded_context(wasmtime_context, vmctx_instance):
    from vmctx_emu.live.example import COMPONENT

    calls = []
    ctx = wasmtime_context(COMPONENT, host={"add": lambda x: calls.append(x) or x + 100})
    assert isinstance(ctx, WasmtimeContext) and ctx.context.address == ctx.address
    assert ctx.shape_from.startswith("VMComponentOffsets stored at") and ctx.decoded.anomalies == []
    # The emulator's release build of the same shape: equal wherever the runtime writes a constant.
    ours = vmctx_instance(ctx.counts, wasmtime=ctx.wasmtime)
    assert_same_context(ours, ctx, ignore="pointers")
    with pytest.raises(ContextMismatch, match=r"^builtins at offset 8: actual 0x1000 != expected 0x[0-9a-f]+ "):
        assert_same_context(ours, ctx)
    assert ctx.instance.get_func(ctx.store, "run")(ctx.store, 1) == 102 and calls == [1]


def test_refresh_sees_the_flags_a_call_leaves(wasmtime_context, vmctx_instance):
    """The README's pitfall: up to v41 a call leaves NEEDS_POST_RETURN set (wasmtime-py does not call
    post_return), so the context read at instantiation no longer matches; a refresh does, on every release."""
    from vmctx_emu.live.example import COMPONENT
    from vmctx_emu.runtime.adapter import host_call

    real = wasmtime_context(COMPONENT, host={"add": lambda x: x + 100})
    at_instantiation = real.context
    ours = vmctx_instance(real.counts, wasmtime=real.wasmtime)
    assert real.instance.get_func(real.store, "run")(real.store, 1) == 102
    host_call(ours.instance_flags(0), lambda: 102)
    fresh = real.refresh()
    assert real.context is fresh and real.decoded is fresh.decoded and fresh is not at_instantiation
    assert_same_context(ours, fresh, only="flags")
    assert_same_context(ours, real, ignore="pointers")
    if "NEEDS_POST_RETURN" in {name for _, name in real.layout.flag_bits}:
        with pytest.raises(ContextMismatch, match=r"^flags\[0\] at offset 32: actual 0x5 != expected 0x3 "):
            assert_same_context(ours, at_instantiation, only="flags")


def test_refresh_reads_only_the_context_bytes_at_the_address_found(wasmtime_context):
    """One read of the context's size at its address per refresh (no scan); `assert_same_context` refreshes a
    handle itself. The reads are seen, and altered, through the handle's source."""
    import ctypes

    from vmctx_emu.live.example import COMPONENT

    real = wasmtime_context(COMPONENT, host={"add": lambda x: x + 100})
    flags_at = real.decoded.ctx.offsets.region(real.layout.flags_field().name).offset
    reads = []

    class Spy:
        def __init__(self, source):
            self.source, self.flip = source, 0

        def read(self, address, size):
            reads.append((address, size))
            data = bytearray(self.source.read(address, size))
            data[flags_at] ^= self.flip
            return bytes(data)

    real._source = spy = Spy(real._source)
    fresh = real.refresh()
    assert reads == [(real.address, real.size)] and real.size == real.decoded.ctx.offsets.size_of_vmctx()
    assert fresh.data == ctypes.string_at(real.address, real.size)
    spy.flip = 0x4
    word = fresh.data[flags_at]
    with pytest.raises(ContextMismatch, match=rf"\[0\] at offset 32: actual {word:#x} != expected {word ^ 4:#x} "):
        assert_same_context(fresh, real)
    assert len(reads) == 2 and real.context.data[flags_at] == fresh.data[flags_at] ^ 0x4


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
    result.stdout.fnmatch_lines(["*ContextMismatch: may_leave[[]0[]] at offset 32: actual 0x1 != expected 0x0 "
                                 "(Wasmtime 50.*, L11)"])


def test_a_failure_points_at_the_users_line_not_the_plugin(pytester):
    """`__tracebackhide__`: the report shows the test's own call and no frame of the plugin."""
    pytester.makepyfile(test_user=textwrap.dedent("""
        def test_flags_differ(vmctx_instance, assert_same_context):
            a = vmctx_instance({"num_runtime_component_instances": 1})
            b = vmctx_instance({"num_runtime_component_instances": 1})
            b.instance_flags(0).value = 0
            assert_same_context(a, b, ignore="pointers")  # the user's line
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--tb=long")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(['>*assert_same_context(a, b, ignore="pointers")  # the user\'s line',
                                 "E*ContextMismatch: may_leave[[]0[]] at offset 32: *",
                                 "test_user.py:5: ContextMismatch"])
    result.stdout.no_fnmatch_line("*pytest_plugin.py*")


def test_the_readme_example_passes(pytester):
    """The README's plugin section: the test file its shell block writes, run in a project of its own."""
    import pathlib

    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Writing runtime tests: the pytest plugin") :]
    body = section[section.index("<<'EOF'\n") + len("<<'EOF'\n") : section.index("\nEOF\n")]
    pytester.makepyfile(test_flags=body)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_live_context_at_a_known_address_with_other_bytes_is_new():
    """Regression (a full `make test` run): a store of an earlier test, freed by the garbage collector while the
    next component was instantiated, left its block to the new context; its address was known from the scan
    before, so no new context was found. A known address holding other bytes is a new context."""
    from types import SimpleNamespace as Found

    from vmctx_emu.pytest_plugin import new_contexts

    before = [Found(address=0x10, state="live", data=b"old"), Found(address=0x20, state="live", data=b"same"),
              Found(address=0x30, state="freed", data=b"gone")]
    after = [Found(address=0x10, state="live", data=b"new"), Found(address=0x20, state="live", data=b"same"),
             Found(address=0x30, state="live", data=b"gone"), Found(address=0x40, state="freed", data=b"x"),
             Found(address=0x50, state="unknown", data=b"other")]
    # 0x30 holds the bytes it held when judged freed: the same old context, judged again. A live new one
    # is preferred to an unknown one.
    assert [c.address for c in new_contexts(before, after)] == [0x10]


def test_the_newest_context_judged_unknown_is_still_found():
    """Regression (`make test` in CI): a scan of this very process judged the new context unknown (the
    process allocates while its heap is walked), and only live ones were taken: none was found."""
    from types import SimpleNamespace as Found

    from vmctx_emu.pytest_plugin import new_contexts

    before = [Found(address=0x10, state="live", data=b"a"), Found(address=0x20, state="unknown", data=b"b")]
    after = [Found(address=0x10, state="live", data=b"a"), Found(address=0x20, state="unknown", data=b"b"),
             Found(address=0x60, state="unknown", data=b"new"), Found(address=0x70, state="freed", data=b"f")]
    assert [c.address for c in new_contexts(before, after)] == [0x60]
