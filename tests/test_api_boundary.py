"""The public API of emulated instances answers bad arguments with the package's own errors, naming them.

Table-driven over every release's setters and getters (wrong types, out of
range), the flag handles, `from_opaque`, `view`/`subview`, construction and the
runtime helpers; then a bounded hypothesis fuzz of API call sequences in which
only package errors may escape, a refused call changes no byte, and nothing
hands out the address of a closed context.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmctx_emu import (
    ArgumentTypeError,
    ArgumentValueError,
    ClosedError,
    ComponentIndexError,
    OwnedComponentInstance,
    VMComponentContext,
    VMContextError,
    VMCtxEmuError,
)
from vmctx_emu.errors import UnknownRegionError
from vmctx_emu.layouts.releases import LAYOUTS
from vmctx_emu.runtime.adapter import FusedAdapter, host_call, host_post_return, recording

PTR, U32 = 0x1000, 7


def version_of(layout):
    return "seed" if layout.id == "seed" else layout.first


def header_for(layout):
    return {name: (0x1000, 0x2000) if name == "store" else 0x3000 for name in layout.header_names()}


def fresh(layout, count=2, **kwargs):
    return OwnedComponentInstance(dict.fromkeys(layout.count_names, count), wasmtime=version_of(layout),
                                  header=header_for(layout), **kwargs)


def kinds(layout, arg):
    etype = layout.field(arg.field).elem_type
    return [etype.sub(s).kind for s in arg.subs]


def good_value(layout, arg):
    values = [PTR if kind == "ptr" else U32 for kind in kinds(layout, arg)]
    return values[0] if len(values) == 1 else tuple(values)


def good_args(layout, spec):
    return [good_value(layout, arg) for arg in spec.args]


# (bad value, error class) for one scalar sub-field of each kind; None is allowed for a nullable pointer.
WRONG = {
    "ptr": [("x", ArgumentTypeError), (1.5, ArgumentTypeError), (b"\x00", ArgumentTypeError),
            (True, ArgumentTypeError), (np.float64(2.0), ArgumentTypeError), (object(), ArgumentTypeError),
            (-1, ArgumentValueError), (1 << 64, ArgumentValueError)],
    "u32": [("7", ArgumentTypeError), (7.0, ArgumentTypeError), (None, ArgumentTypeError),
            (False, ArgumentTypeError), ([7], ArgumentTypeError), (-1, ArgumentValueError),
            (1 << 32, ArgumentValueError)],
}


def distinct_setters():
    """Each setter signature once, in the first release that has it (most releases share theirs)."""
    seen = set()
    for layout in LAYOUTS:
        for spec in layout.setters:
            key = (spec, tuple(tuple(kinds(layout, a)) for a in spec.args))
            if key not in seen:
                seen.add(key)
                yield layout, spec


def setter_cases():
    for layout, spec in distinct_setters():
        for position, arg in enumerate(spec.args):
            for part, kind in enumerate(kinds(layout, arg)):
                for bad, error in WRONG["ptr" if kind == "ptr" else "u32"]:
                    yield pytest.param(layout, spec.name, position, part, bad, error,
                                       id=f"{version_of(layout)}-{spec.name}-{arg.name}{part}-{bad!r:.12}")
            if len(arg.subs) > 1:
                for bad in ("ab", 5, None, {"callee": 1}, (1,) * (len(arg.subs) + 1)):
                    yield pytest.param(layout, spec.name, position, None, bad, ArgumentTypeError,
                                       id=f"{version_of(layout)}-{spec.name}-{arg.name}-{bad!r:.12}")


@pytest.mark.parametrize("layout, setter, position, part, bad, error", list(setter_cases()))
def test_every_setter_refuses_wrong_arguments_by_name_and_writes_nothing(layout, setter, position, part, bad, error):
    # v32-v38 debug builds cannot set a table at all (test_runtime_setters): check the release build there.
    inst = fresh(layout, debug_assertions=not (setter == "set_runtime_table" and layout.id in ("L7", "L8")))
    spec = layout.setter(setter)
    args = good_args(layout, spec)
    if part is None:
        args[position] = bad
    elif len(spec.args[position].subs) == 1:
        args[position] = bad
    else:
        value = list(args[position])
        value[part] = bad
        args[position] = tuple(value)
    before = inst.to_bytes()
    with pytest.raises(error) as e:
        getattr(inst, setter)(1, *args)
    assert spec.args[position].name.rstrip("_") in str(e.value) and f"{setter}(1)" in str(e.value)
    assert inst.to_bytes() == before
    getattr(inst, setter)(1, *good_args(layout, spec))  # the good call still works afterwards


BAD_INDEXES = [("0", ArgumentTypeError), (1.0, ArgumentTypeError), (None, ArgumentTypeError),
               (True, ArgumentTypeError), (-1, ComponentIndexError), (2, ComponentIndexError),
               (1 << 64, ComponentIndexError)]


def accessor_cases():
    seen = set()
    for layout, spec in distinct_setters():
        getters = [layout.field(f).runtime_getter for f in spec.fields]
        for name in [spec.name, *getters, "instance_flags"]:
            if (layout.id, name) in seen:
                continue
            seen.add((layout.id, name))
            for bad, error in BAD_INDEXES:
                yield pytest.param(layout, name, bad, error, id=f"{version_of(layout)}-{name}-{bad!r}")


@pytest.mark.parametrize("layout, method, index, error", list(accessor_cases()))
def test_every_accessor_checks_its_index(layout, method, index, error):
    inst = fresh(layout)
    spec = layout.setter(method)
    args = good_args(layout, spec) if spec else []
    before = inst.to_bytes()
    with pytest.raises(error, match=r"index"):
        getattr(inst, method)(index, *args)
    assert inst.to_bytes() == before


@pytest.mark.parametrize("layout", LAYOUTS, ids=version_of)
def test_setter_with_too_few_or_many_arguments_names_the_signature(layout):
    inst = fresh(layout)
    for spec in layout.setters:
        for args in (good_args(layout, spec)[:-1], good_args(layout, spec) + [1]):
            with pytest.raises(ArgumentTypeError, match=rf"has {spec.name}\(index, "):
                getattr(inst, spec.name)(0, *args)


def test_set_lowering_takes_a_plain_tuple():
    """Once an AttributeError: a 2-tuple is as good as a VMLowering."""
    seed = LAYOUTS[0]
    inst = fresh(seed)
    inst.set_lowering(0, (1, 2), 3, 4)
    assert tuple(inst.lowering(0)) == (1, 2)


# -- flags ------------------------------------------------------------------

@pytest.mark.parametrize("bad, error", [
    ("no", ArgumentTypeError), ("", ArgumentTypeError), (None, ArgumentTypeError), (1.0, ArgumentTypeError),
    (np.bool_(True), ArgumentTypeError), ([], ArgumentTypeError), (2, ArgumentValueError), (-1, ArgumentValueError),
])
@pytest.mark.parametrize("bit", ["may_leave", "may_enter", "needs_post_return"])
def test_flag_bit_refuses_anything_but_bool_or_0_1_and_keeps_the_word(bit, bad, error):
    """Once `flags.may_enter = "no"` set the bit (a non-empty string is truthy)."""
    flags = fresh(LAYOUTS[0]).instance_flags(0)
    flags.value = 0 if bit == "may_enter" else -1  # so a truthy write would be seen on every bit
    before = flags.value
    with pytest.raises(error, match=rf"instance_flags\(0\)\.{bit} must be a bool \(or 0/1\)"):
        setattr(flags, bit, bad)
    assert flags.value == before


@pytest.mark.parametrize("bit", ["may_leave", "may_enter", "needs_post_return"])
def test_flag_bit_accepts_bool_and_0_1(bit):
    flags = fresh(LAYOUTS[0]).instance_flags(1)
    for value in (1, 0, True, False, 1):
        setattr(flags, bit, value)
        assert getattr(flags, bit) is bool(value)


@pytest.mark.parametrize("bad, error", [
    (1.5, ArgumentTypeError), ("3", ArgumentTypeError), (None, ArgumentTypeError), (True, ArgumentTypeError),
    (np.int32(3), ArgumentTypeError), (1 << 31, ArgumentValueError), (-(1 << 31) - 1, ArgumentValueError),
])
def test_flag_word_refuses_non_i32(bad, error):
    """Once `flags.value = 1.5` was a struct.error."""
    flags = fresh(LAYOUTS[0]).instance_flags(0)
    with pytest.raises(error, match="flag word must be an"):
        flags.value = bad
    assert flags.value == 3


# -- from_opaque, view, construction, runtime helpers -------------------------

@pytest.mark.parametrize("address, error", [
    ("x", ArgumentTypeError), (None, ArgumentTypeError), (1.5, ArgumentTypeError), (b"\x10", ArgumentTypeError),
    (True, ArgumentTypeError), (-1, ArgumentValueError), (1 << 64, ArgumentValueError),
    (0, VMContextError), (8, VMContextError),
])
def test_from_opaque_refuses_what_is_not_an_address(address, error):
    """Once `from_opaque("x")` was a TypeError from a comparison."""
    with pytest.raises(error, match="address|not the address"):
        VMComponentContext.from_opaque(address)


@pytest.mark.parametrize("layout", LAYOUTS, ids=version_of)
def test_view_of_an_unknown_region_names_it_and_the_known_ones(layout):
    inst = fresh(layout)
    with pytest.raises(UnknownRegionError) as e:
        inst.view("no_such_region")
    message = str(e.value)
    assert isinstance(e.value, KeyError) and "'no_such_region'" in message
    assert all(r.name in message for r in inst.offsets.regions())
    with pytest.raises(UnknownRegionError, match="'no_such_region'"):
        inst.subview("no_such_region", "x")


@pytest.mark.parametrize("call, error, needle", [
    (lambda i: i.view(5), ArgumentTypeError, "region name must be a str, got int 5"),
    (lambda i: i.view(["flags"]), ArgumentTypeError, "region name must be a str"),
    (lambda i: i.subview("lowerings", "nope"), ArgumentValueError, "no sub-field 'nope'; .* have callee, data"),
    (lambda i: i.subview("lowerings", 0), ArgumentTypeError, "no sub-field 0"),
    (lambda i: i.dump(None), ArgumentTypeError, "dump path must be a str or path-like"),
    (lambda i: i.dump(5), ArgumentTypeError, "dump path must be a str or path-like"),
])
def test_reader_arguments_are_checked(call, error, needle):
    with pytest.raises(error, match=needle):
        call(fresh(LAYOUTS[0]))


@pytest.mark.parametrize("kwargs, error, needle", [
    (dict(header=5), ArgumentTypeError, "header must be a mapping"),
    (dict(header="store"), ArgumentTypeError, "header must be a mapping"),
    (dict(header={5: 1}), ArgumentValueError, "header 5 is not written"),
    (dict(component={5: 1}), VMCtxEmuError, "5 is not a count"),
    (dict(store="x"), ArgumentTypeError, "store must be a"),
    (dict(store=(1, 1.5)), ArgumentTypeError, "store vtable pointer must be an int"),
    (dict(ptr="8"), VMCtxEmuError, "pointer size must be an int"),
    (dict(debug_assertions="yes"), ArgumentTypeError, "debug_assertions must be a bool"),
    (dict(ptr=4, address="0x10"), ArgumentTypeError, "address must be an int"),
    (dict(wasmtime="no such"), VMCtxEmuError, "not a Wasmtime version"),
])
def test_construction_arguments_are_checked(kwargs, error, needle):
    args = dict(component={"num_lowerings": 1}, store=(1, 2))
    args.update(kwargs)
    with pytest.raises(error, match=needle):
        OwnedComponentInstance(args.pop("component"), args.pop("store"), **args)


@pytest.mark.parametrize("call, needle", [
    (lambda f: host_call(f, 5), "host_call callee must be callable"),
    (lambda f: host_call(f, lambda: None, post_return=5), "host_call post_return must be callable or None"),
    (lambda f: host_post_return(f, "x"), "host_post_return post_return must be callable or None"),
    (lambda f: FusedAdapter(f, f, post_return=1), "FusedAdapter post_return must be callable or None"),
    (lambda f: FusedAdapter(f, f).call(None), "FusedAdapter.call callee must be callable"),
    (lambda f: FusedAdapter(f, f).call(print, lower_params=3), "lower_params must be callable or None"),
    (lambda f: FusedAdapter(f, f, called_as_export="no"), "FusedAdapter called_as_export must be a bool"),
    (lambda f: FusedAdapter(f, f, debug_assertions=None), "FusedAdapter debug_assertions must be a bool"),
    (lambda f: host_call(f, print, debug_assertions="no"), "host_call debug_assertions must be a bool"),
    (lambda f: recording(5).__enter__(), r"recording\(names=...\) must map InstanceFlags"),
    (lambda f: recording({5: "a"}).__enter__(), "keys must be InstanceFlags"),
])
def test_runtime_helpers_check_their_callables(call, needle):
    flags = fresh(LAYOUTS[0]).instance_flags(0)
    before = flags.value
    with pytest.raises(ArgumentTypeError, match=needle):
        call(flags)
    assert flags.value == before


# -- after close ------------------------------------------------------------------

@pytest.mark.parametrize("layout", [LAYOUTS[0], LAYOUTS[-1]], ids=version_of)
@pytest.mark.parametrize("target", [{}, {"ptr": 4, "byte_order": "big"}], ids=["host", "ptr4-big"])
def test_closed_instance_hands_out_no_address(layout, target):
    """Once `inst.vmctx` and `flags.as_raw()` still gave the freed memory's address after close()."""
    inst = fresh(layout, **target)
    flags = inst.instance_flags(0)
    view = inst.view(layout.flags_field().name)
    address, words = inst.vmctx, view.tolist()
    inst.close()
    for call in (lambda: inst.vmctx, flags.as_raw, lambda: inst.instance_flags(0), inst.layout_parameters,
                 lambda: inst.instance_flags(0).value, lambda: flags.value, inst.to_bytes,
                 lambda: inst.view("magic"), lambda: inst.dump("never-written.bin")):
        with pytest.raises(ClosedError, match="closed"):
            call()
    with pytest.raises(VMContextError, match="not the address of a live"):
        VMComponentContext.from_opaque(address)
    assert view.tolist() == words  # the view keeps its own reference to the memory
    assert "closed" in repr(inst) and "closed" in repr(flags)


# -- API call sequences ---------------------------------------------------------------

FUZZ_LAYOUTS = [LAYOUTS[0], LAYOUTS[1], LAYOUTS[3], LAYOUTS[4], LAYOUTS[-1]]
ANY_VALUE = st.one_of(
    st.integers(-2, 3), st.integers(0, (1 << 64) + 1), st.just(0xDEADDEADBEEFBEEF), st.none(), st.booleans(),
    st.floats(allow_nan=False, width=32), st.text(max_size=3), st.binary(max_size=2),
    st.tuples(st.integers(0, 1 << 33), st.integers(0, 1 << 33)),
)


def _step(draw, live, closed, views, addresses):
    """One API call on a live or closed instance with good or random arguments."""
    op = draw(st.sampled_from(["new", "close", "set", "get", "flag", "word", "view", "opaque", "opaque", "set"]))
    if op == "new" or not live + closed:
        layout = draw(st.sampled_from(FUZZ_LAYOUTS))
        target = draw(st.sampled_from([{}, {"ptr": 4, "byte_order": "big"}, {"ptr": 8, "byte_order": "big"}]))
        inst = fresh(layout, count=draw(st.integers(0, 3)), debug_assertions=draw(st.booleans()), **target)
        live.append(inst)
        addresses[id(inst)] = inst.vmctx
        return None
    inst = draw(st.sampled_from(live + closed))
    layout = inst.layout
    count = draw(st.integers(-1, 3))
    if op == "close":
        if inst in live:
            view = inst.view(layout.flags_field().name)
            views.append((view, view.tolist()))
            live.remove(inst)
            closed.append(inst)
        return lambda: inst.close()
    if op == "set":
        spec = draw(st.sampled_from(layout.setters))
        args = [draw(st.one_of(st.just(good_value(layout, a)), ANY_VALUE)) for a in spec.args]
        return lambda: getattr(inst, spec.name)(count, *args)
    if op == "get":
        getter = layout.field(draw(st.sampled_from(layout.setters)).fields[0]).runtime_getter
        return lambda: getattr(inst, getter)(draw(st.one_of(st.just(count), ANY_VALUE)))
    if op == "flag":
        bit = draw(st.sampled_from([name.lower() for _, name in layout.flag_bits]))
        value = draw(st.one_of(st.booleans(), ANY_VALUE))
        return lambda: setattr(inst.instance_flags(count), bit, value)
    if op == "word":
        value = draw(st.one_of(st.integers(-(1 << 31), (1 << 31) - 1), ANY_VALUE))
        return lambda: setattr(inst.instance_flags(count), "value", value)
    if op == "view":
        name = draw(st.sampled_from([r.name for r in inst.offsets.regions()] + ["no_such_region", 5]))
        return lambda: inst.view(name)
    address = addresses[id(inst)] + draw(st.sampled_from([0, 8, 16, inst.offsets.size_of_vmctx()]))
    return lambda: VMComponentContext.from_opaque(draw(st.one_of(st.just(address), ANY_VALUE)))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_api_call_sequences_raise_only_package_errors_and_never_touch_closed_memory(data):
    live, closed, views, addresses = [], [], [], {}
    for _ in range(30):
        call = _step(data.draw, live, closed, views, addresses)
        if call is None:
            continue
        snapshots = {id(i): bytes(i.memory) for i in live}
        try:
            call()
        except VMCtxEmuError:
            # A refused call writes nothing, anywhere.
            assert {id(i): bytes(i.memory) for i in live} == snapshots
        for inst in closed:
            with pytest.raises(ClosedError):
                inst.vmctx
            with pytest.raises(ClosedError):
                inst.instance_flags(0)
        for view, words in views:
            assert view.tolist() == words  # still readable and unchanged: the view owns its memory
    for inst in live:
        assert VMComponentContext.from_opaque(inst.vmctx) is inst
        inst.close()


@pytest.mark.parametrize("layout", [layout for layout in LAYOUTS if len(layout.flag_bits) == 1], ids=version_of)
@pytest.mark.parametrize("bit", ["may_enter", "needs_post_return"])
def test_a_bit_the_release_lacks_is_refused_on_write_too(layout, bit):
    """Reading said "has no FLAG_MAY_ENTER"; writing was a bare AttributeError."""
    flags = fresh(layout).instance_flags(0)
    before = flags.value
    for access in (lambda: getattr(flags, bit), lambda: setattr(flags, bit, True)):
        with pytest.raises(VMContextError, match=rf"has no FLAG_{bit.upper()}: its flag word holds only MAY_LEAVE"):
            access()
    assert flags.value == before


@pytest.mark.parametrize("args, error, needle", [
    ((5, 16, 0, "little"), ArgumentTypeError, "owner must be a context"),
    ((None, 16, 0, "little"), ArgumentTypeError, "owner must be a context"),
    (("ctx", 10**9, 0, "little"), ArgumentValueError, r"offset must be an int in \[0, \d+\], got 1000000000"),
    (("ctx", -4, 0, "little"), ArgumentValueError, "offset must be an int"),
    (("ctx", "16", 0, "little"), ArgumentValueError, "offset must be an int"),
    (("ctx", 16, 0, "middle"), ArgumentValueError, "byte_order must be 'little' or 'big'"),
])
def test_instance_flags_built_by_hand_are_checked(args, error, needle):
    """`InstanceFlags` is exported: built directly, it must not reach memory through a bad offset."""
    from vmctx_emu import InstanceFlags

    inst = fresh(LAYOUTS[0])
    args = tuple(inst if a == "ctx" else a for a in args)
    with pytest.raises(error, match=needle):
        InstanceFlags(*args)
