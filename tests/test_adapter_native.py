"""Differential test: the Python adapter and the C one in native/ end with the same flags and trap."""

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu import Component, OwnedComponentInstance
from vmctx_emu.runtime.adapter import FusedAdapter, Trap
from vmctx_emu.layouts.releases import wasmtime_layout
from vmctx_emu.runtime.protocols import protocol_for
from vmctx_emu.memory.native import ffi, lib

OUTCOME_CODES = {"ok": lib.VMCTX_ADAPTER_OK, "cannot_leave": lib.VMCTX_ADAPTER_CANNOT_LEAVE,
                 "cannot_enter": lib.VMCTX_ADAPTER_CANNOT_ENTER, "same_instance": lib.VMCTX_ADAPTER_SAME_INSTANCE,
                 "assert_failed": lib.VMCTX_ADAPTER_ASSERT_FAILED, "raised": lib.VMCTX_ADAPTER_RAISED}
# One release per flag protocol an adapter can tell apart (MAY_ENTER steps up to v41; saved MAY_LEAVE from v47).
RELEASES = ["seed", "41.0.0", "42.0.0", "50.0.1"]


class Boom(Exception):
    """An exception from user code (a trap in a callee, translation or post-return)."""


@dataclass(frozen=True)
class Spec:
    lower: int
    lift: int
    called_as_export: bool
    has_post_return: bool
    debug: bool


@dataclass(frozen=True)
class Call:
    adapter: int
    raise_at: object  # None, or the stage that raises: 0 params, 1 callee, 2 results, 3 post-return
    nested: tuple     # calls the callee makes (re-entrant ones included) before it returns or raises


def calls(n_adapters):
    leaf = st.builds(Call, st.integers(0, n_adapters - 1), st.sampled_from([None, None, 0, 1, 2, 3]), st.just(()))
    return st.recursive(leaf, lambda inner: st.builds(
        Call, st.integers(0, n_adapters - 1), st.sampled_from([None, None, None, 1, 3]),
        st.lists(inner, max_size=2).map(tuple)), max_leaves=6)


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 4))
    specs = draw(st.lists(st.builds(Spec, st.integers(0, n - 1), st.integers(0, n - 1), st.booleans(),
                                    st.booleans(), st.booleans()), min_size=1, max_size=4))
    initial = draw(st.lists(st.integers(0, 7) | st.just(3), min_size=n, max_size=n))
    program = draw(calls(len(specs)))
    return n, specs, initial, program


def run_python(flags, specs, call):
    spec = specs[call.adapter]

    def stage(n):
        if call.raise_at == n:
            raise Boom

    def callee():
        for sub in call.nested:
            run_python(flags, specs, sub)
        stage(1)
        return 1

    # One adapter object per call: its post-return belongs to this call's behaviour.
    adapter = FusedAdapter(flags[spec.lower], flags[spec.lift], called_as_export=spec.called_as_export,
                           post_return=(lambda *r: stage(3)) if spec.has_post_return else None,
                           debug_assertions=spec.debug)
    adapter.call(callee, lower_params=lambda: (stage(0), ())[1], lift_results=lambda r: (stage(2), r)[1])


def outcome_python(flags, specs, program):
    try:
        run_python(flags, specs, program)
    except Trap as e:
        return e.kind
    except Boom:
        return "raised"
    return "ok"


def run_c(flags, specs, call):
    spec = specs[call.adapter]

    @ffi.callback("int(void *, int)")
    def stage(env, n):
        if n == 1:
            for sub in call.nested:
                rc = run_c(flags, specs, sub)
                if rc:
                    return rc
        return lib.VMCTX_ADAPTER_RAISED if call.raise_at == n else lib.VMCTX_ADAPTER_OK

    def word(i):
        return ffi.cast("int32_t *", flags[i].as_raw())

    layout = flags[0].context.layout
    bits = {name: bit for bit, name in layout.flag_bits}
    return lib.vmctx_fused_adapter_call(word(spec.lower), word(spec.lift), bits["MAY_LEAVE"], bits.get("MAY_ENTER", 0),
                                        protocol_for(flags[0].context.release).restores_saved_may_leave,
                                        spec.called_as_export, spec.has_post_return, spec.debug, stage, ffi.NULL)


def release_instance(n, release):
    """A context of `release` with `n` component instances (plausible header pointers)."""
    if release == "seed":
        return OwnedComponentInstance(Component(num_runtime_component_instances=n), (1, 2))
    names = wasmtime_layout(release).header_names()
    return OwnedComponentInstance({"num_runtime_component_instances": n}, wasmtime=release,
                                  header={name: (0x1000 * (k + 1), 0x8000) if name == "store" else 0x1000 * (k + 1)
                                          for k, name in enumerate(names)})


@settings(max_examples=400, deadline=None)
@given(scenarios(), st.sampled_from(RELEASES))
def test_python_and_c_adapters_agree(scenario, release):
    n, specs, initial, program = scenario
    with release_instance(n, release) as inst:
        flags = [inst.instance_flags(i) for i in range(n)]
        for f, w in zip(flags, initial):
            f.value = w
        py_outcome = OUTCOME_CODES[outcome_python(flags, specs, program)]
        py_words = [f.value for f in flags]
        for f, w in zip(flags, initial):
            f.value = w
        c_outcome = run_c(flags, specs, program)
        c_words = [f.value for f in flags]
    assert (py_outcome, py_words) == (c_outcome, c_words)


def test_known_reentrant_scenario_traps_the_same_in_both():
    # A -> B (export), B's callee re-enters B through the same adapter: cannot_enter.
    specs = [Spec(0, 1, True, False, True)]
    program = Call(0, None, (Call(0, None, ()),))
    with OwnedComponentInstance(Component(num_runtime_component_instances=2), (1, 2)) as inst:
        flags = [inst.instance_flags(i) for i in range(2)]
        assert outcome_python(flags, specs, program) == "cannot_enter"
        py_words = [f.value for f in flags]
        for f in flags:
            f.value = 3
        assert run_c(flags, specs, program) == lib.VMCTX_ADAPTER_CANNOT_ENTER
        assert [f.value for f in flags] == py_words == [3, 1]
