"""The fused adapter and host-call flag protocol, on real emulated flag words.

Topologies follow the seed's tests/misc_testsuite/component-model/fused.wast.
"""

import pytest

from vmctx_emu import FLAG_MAY_ENTER, FLAG_MAY_LEAVE, FLAG_NEEDS_POST_RETURN, Component, OwnedComponentInstance
from vmctx_emu.runtime.adapter import (
    FlagEvent,
    FusedAdapter,
    HostCallError,
    HostPanic,
    Trap,
    host_call,
    host_post_return,
    recording,
)

INIT = FLAG_MAY_ENTER | FLAG_MAY_LEAVE


@pytest.fixture
def ctx():
    """One context with three component instances: flags(0..2) play A, B and C."""
    with OwnedComponentInstance(Component(num_runtime_component_instances=3), (1, 2)) as inst:
        yield inst


def words(*flags):
    return [f.value for f in flags]


def test_a_calls_b(ctx):
    a, b = ctx.instance_flags(0), ctx.instance_flags(1)
    seen = []

    def callee(x, y):
        seen.append(words(a, b))
        return x + y

    assert FusedAdapter(a, b).call(callee, 2, 3) == 5
    assert seen == [[INIT, FLAG_MAY_LEAVE]]  # inside: B may not be entered again, both may leave
    assert words(a, b) == [INIT, INIT]


def test_recording_gives_the_exact_sequence(ctx):
    a, b = ctx.instance_flags(0), ctx.instance_flags(1)
    with recording({a: "A", b: "B"}) as events:
        FusedAdapter(a, b).call(lambda: None)
    assert events == [
        FlagEvent("read", "A", "MAY_LEAVE", True, True),
        FlagEvent("read", "B", "MAY_ENTER", True, True),
        FlagEvent("write", "B", "MAY_ENTER", True, False),
        FlagEvent("write", "B", "MAY_LEAVE", True, False),
        FlagEvent("write", "B", "MAY_LEAVE", False, True),
        FlagEvent("write", "A", "MAY_LEAVE", True, False),
        FlagEvent("write", "A", "MAY_LEAVE", False, True),
        FlagEvent("write", "B", "MAY_ENTER", False, True),
    ]


def test_translation_points_see_the_flags_cleared(ctx):
    a, b = ctx.instance_flags(0), ctx.instance_flags(1)
    seen = {}

    def lower_params(*args):
        seen["params"] = words(a, b)
        return [x * 10 for x in args]

    def lift_results(r):
        seen["results"] = words(a, b)
        return r + 1

    assert FusedAdapter(a, b).call(lambda x: x, 4, lower_params=lower_params, lift_results=lift_results) == 41
    assert seen == {"params": [INIT, 0], "results": [FLAG_MAY_ENTER, FLAG_MAY_LEAVE]}


def test_chain_a_b_c_through_two_adapters(ctx):
    a, b, c = (ctx.instance_flags(i) for i in range(3))
    ab, bc = FusedAdapter(a, b), FusedAdapter(b, c)
    inner = []

    def b_body():
        return bc.call(lambda: inner.append(words(a, b, c)) or "from C")

    assert ab.call(b_body) == "from C"
    assert inner == [[INIT, FLAG_MAY_LEAVE, FLAG_MAY_LEAVE]]
    assert words(a, b, c) == [INIT] * 3


def test_adapter_whose_callee_is_reached_through_another_adapter(ctx):
    # fused.wast "an adapter using an adapter": B's export is itself a lowered
    # import of C, so calling it runs a second adapter inside the first.
    a, b, c = (ctx.instance_flags(i) for i in range(3))
    b_to_c = FusedAdapter(b, c)
    a_to_b = FusedAdapter(a, b)
    assert a_to_b.call(lambda v: b_to_c.call(lambda w: w * 2, v), 21) == 42
    assert words(a, b, c) == [INIT] * 3


def test_same_adapter_used_twice(ctx):
    a, b = ctx.instance_flags(0), ctx.instance_flags(1)
    adapter = FusedAdapter(a, b)
    assert [adapter.call(lambda x: x + 1, i) for i in range(2)] == [1, 2]
    assert words(a, b) == [INIT, INIT]


def test_post_return_runs_after_results_and_receives_them(ctx):
    a, b = ctx.instance_flags(0), ctx.instance_flags(1)
    order = []

    def post(value):
        order.append(("post", value, words(a, b)))

    adapter = FusedAdapter(a, b, post_return=post)
    out = adapter.call(lambda: order.append("callee") or 100, lift_results=lambda r: order.append("lift") or r)
    assert out == 100
    assert order == ["callee", "lift", ("post", 100, [INIT, FLAG_MAY_LEAVE])]
    assert words(a, b) == [INIT, INIT]


def test_reentering_mid_call_traps_cannot_enter(ctx):
    a, b = ctx.instance_flags(0), ctx.instance_flags(1)
    ab, ba = FusedAdapter(a, b), FusedAdapter(b, a)

    def b_calls_back_into_a():
        return ba.call(lambda: ab.call(lambda: None))  # A -> B -> A -> B again

    with pytest.raises(Trap) as e:
        ab.call(b_calls_back_into_a)
    # The seed's adapters trap with a bare `unreachable` (precise trap messages came in v41).
    assert e.value.kind == "cannot_enter" and str(e.value) == "wasm trap: wasm `unreachable` instruction executed"
    # Frozen at the trap: A and B both entered, nothing restored.
    assert words(a, b) == [FLAG_MAY_LEAVE, FLAG_MAY_LEAVE]


def test_leaving_while_may_leave_clear_traps_cannot_leave(ctx):
    a, b, c = (ctx.instance_flags(i) for i in range(3))
    ab, bc = FusedAdapter(a, b), FusedAdapter(b, c)
    # B calls out while its parameters are still being translated (MAY_LEAVE clear).
    with pytest.raises(Trap) as e:
        ab.call(lambda: None, lower_params=lambda: bc.call(lambda: None))
    assert e.value.kind == "cannot_leave" and e.value.message == "wasm trap: wasm `unreachable` instruction executed"
    assert words(a, b, c) == [INIT, 0, INIT]


def test_poisoned_instance_cannot_be_entered_again(ctx):
    a, b = ctx.instance_flags(0), ctx.instance_flags(1)
    adapter = FusedAdapter(a, b)

    class Boom(Exception):
        pass

    def trapping():
        raise Boom

    with pytest.raises(Boom):
        adapter.call(trapping)
    assert words(a, b) == [INIT, FLAG_MAY_LEAVE]
    with pytest.raises(Trap) as e:
        adapter.call(lambda: None)
    assert e.value.kind == "cannot_enter"
    with pytest.raises(HostCallError, match="^cannot reenter component instance$"):
        host_call(b, lambda: None)


def test_not_called_as_export_asserts_may_enter_clear_in_debug(ctx):
    a, b = ctx.instance_flags(0), ctx.instance_flags(1)
    with pytest.raises(Trap) as e:
        FusedAdapter(a, b, called_as_export=False).call(lambda: None)
    assert e.value.kind == "assert_failed"
    assert str(e.value) == "assertion failure: may_enter should be unset"
    assert FusedAdapter(a, b, called_as_export=False, debug_assertions=False).call(lambda: 7) == 7
    b.may_enter = False
    assert FusedAdapter(a, b, called_as_export=False).call(lambda: 8) == 8
    assert words(a, b) == [INIT, FLAG_MAY_LEAVE]  # MAY_ENTER is not touched when not an export


def test_host_call_then_post_return_restores_may_enter(ctx):
    f = ctx.instance_flags(0)
    received = []
    assert host_call(f, lambda x: x * 2, 21) == 42
    assert f.value == FLAG_MAY_LEAVE | FLAG_NEEDS_POST_RETURN
    with pytest.raises(HostCallError, match="cannot reenter component instance"):
        host_call(f, lambda: None)
    host_post_return(f, lambda r: received.append((r, f.value)))
    assert received == [(42, FLAG_MAY_LEAVE)]
    assert f.value == INIT


def test_post_return_without_a_call_fails(ctx):
    f = ctx.instance_flags(0)
    with pytest.raises(HostPanic, match="^post_return can only be called after a function has previously been called$"):
        host_post_return(f)
    assert f.value == INIT


def test_trapping_post_return_poisons(ctx):
    f = ctx.instance_flags(0)
    host_call(f, lambda: None)

    def bad():
        raise RuntimeError("trap in post-return")

    with pytest.raises(RuntimeError):
        host_post_return(f, bad)
    assert f.value == FLAG_MAY_LEAVE  # NEEDS_POST_RETURN cleared, MAY_ENTER stays clear
    with pytest.raises(HostCallError):
        host_call(f, lambda: None)
    with pytest.raises(HostPanic, match="post_return can only be called"):
        host_post_return(f)


def test_host_call_records_its_flag_accesses(ctx):
    f = ctx.instance_flags(2)
    with recording({f: "C"}) as events:
        host_call(f, lambda: 1)
        host_post_return(f)
    assert [(e.op, e.bit, e.old, e.new) for e in events] == [
        ("read", "MAY_ENTER", True, True), ("write", "MAY_ENTER", True, False),
        ("read", "MAY_LEAVE", True, True), ("write", "MAY_LEAVE", True, False),
        ("write", "MAY_LEAVE", False, True), ("write", "NEEDS_POST_RETURN", False, True),
        ("read", "NEEDS_POST_RETURN", True, True), ("read", "MAY_ENTER", False, False),
        ("write", "NEEDS_POST_RETURN", True, False), ("write", "MAY_ENTER", False, True),
    ]
    assert {e.instance for e in events} == {"C"}


def test_adapters_across_contexts_and_byte_orders():
    with OwnedComponentInstance(Component(num_runtime_component_instances=1), (1, 2), ptr=4,
                                byte_order="big") as x, \
         OwnedComponentInstance(Component(num_runtime_component_instances=1), (1, 2)) as y:
        a, b = x.instance_flags(0), y.instance_flags(0)
        seen = []
        FusedAdapter(a, b).call(lambda: seen.append(bytes(x.memory[16:20])))
        assert seen == [bytes([0, 0, 0, 3])]  # A's flag word, big-endian, untouched while inside
        assert words(a, b) == [INIT, INIT]
