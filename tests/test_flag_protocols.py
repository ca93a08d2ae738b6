"""Each release's flag protocol: the issue's live table, reproduced by the emulator release by release.

Live (wasmtime-py wheels, the first flag word of a real context): 39.0.0 and
41.0.0 read 3 at rest, 5 inside a host import during `Func::call`, 5 after
it, 3 after `post_return`, and a second call without `post_return` traps
"cannot enter component instance"; 42.0.0-51.0.0 read 1 throughout and the
second call succeeds. Rows before v39 are read from each release's source.
"""

import warnings

import pytest

from vmctx_emu import OwnedComponentInstance
from vmctx_emu.layouts.releases import ALL_RELEASES, release_key, wasmtime_layout
from vmctx_emu.runtime.adapter import FusedAdapter, HostCallError, Trap, host_call, host_post_return
from vmctx_emu.runtime.protocols import CANNOT_ENTER, CANNOT_LEAVE, PROTOCOLS, UNREACHABLE, protocol_for

REENTER = "cannot reenter component instance"


def context(release, n=1):
    if release == "seed":
        return OwnedComponentInstance({"num_runtime_component_instances": n}, (1, 2))
    names = wasmtime_layout(release).header_names()
    return OwnedComponentInstance({"num_runtime_component_instances": n}, wasmtime=release,
                                  header={name: (0x1000 * (k + 1), 0x8000) if name == "store" else 0x1000 * (k + 1)
                                          for k, name in enumerate(names)})


def observe(release):
    """(at rest, inside the call, after it, after post_return, the second call's error or None)."""
    with context(release) as ctx:
        f = ctx.instance_flags(0)
        rest = f.value
        inside = []
        host_call(f, lambda: inside.append(f.value))
        after = f.value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            host_post_return(f)
        after_post_return = f.value
        host_call(f, lambda: None)
        try:
            host_call(f, lambda: None)
            second = None
        except HostCallError as e:
            second = str(e)
        return rest, inside[0], after, after_post_return, second


V42_ON = [v for v in ALL_RELEASES if release_key(v) >= (42,)]
TABLE = [
    ("seed", (3, 1, 5, 3, REENTER)),            # source only (97894bc65e)
    ("11.0.2", (3, 1, 5, 3, REENTER)),          # source only
    ("12.0.0", (3, 1, 5, 3, CANNOT_ENTER)),     # source only
    ("35.0.0", (3, 1, 5, 3, CANNOT_ENTER)),     # source only: b221fca7c5 was reverted on the 35 branch
    ("36.0.0", (3, 5, 5, 3, CANNOT_ENTER)),     # source only
    ("39.0.0", (3, 5, 5, 3, CANNOT_ENTER)),     # live
    ("41.0.0", (3, 5, 5, 3, CANNOT_ENTER)),     # live
] + [(v, (1, 1, 1, 1, None)) for v in V42_ON]   # live: 42.0.0 - 51.0.0


@pytest.mark.parametrize("release, expected", TABLE, ids=[t[0] for t in TABLE])
def test_the_live_table_per_release(release, expected):
    assert observe(release) == expected


def test_every_release_has_one_protocol_and_the_ranges_are_ordered():
    firsts = [p.first for p in PROTOCOLS]
    assert firsts[0] == "seed" and len(set(firsts)) == len(firsts)
    assert protocol_for("38.0.1").post_return_clears_may_leave and not protocol_for("37.0.3").post_return_clears_may_leave
    assert protocol_for("v47").restores_saved_may_leave and not protocol_for("46.0.3").restores_saved_may_leave
    # Bits exist exactly where the protocol uses them.
    for release in ["seed"] + list(ALL_RELEASES):
        names = {name for _, name in wasmtime_layout(release).flag_bits}
        assert ("MAY_ENTER" in names) == protocol_for(release).has_may_enter, release


@pytest.mark.parametrize("release, leave, enter", [
    ("seed", UNREACHABLE, UNREACHABLE), ("40.0.4", UNREACHABLE, UNREACHABLE), ("41.0.0", CANNOT_LEAVE, CANNOT_ENTER),
])
def test_adapter_trap_messages_per_release(release, leave, enter):
    with context(release, 3) as ctx:
        a, b, c = (ctx.instance_flags(i) for i in range(3))
        ab = FusedAdapter(a, b)
        with pytest.raises(Trap) as e:
            ab.call(lambda: ab.call(lambda: None))
        assert (e.value.kind, str(e.value)) == ("cannot_enter", enter)
        a.value = b.value = c.value = 3
        with pytest.raises(Trap) as e:
            ab.call(lambda: None, lower_params=lambda: FusedAdapter(b, c).call(lambda: None))
        assert (e.value.kind, str(e.value)) == ("cannot_leave", leave)


@pytest.mark.parametrize("release, message", [("41.0.4", "wasm trap: degenerate component adapter called"),
                                              ("42.0.0", CANNOT_ENTER)])
def test_lowering_a_function_of_the_same_instance_always_traps(release, message):
    with context(release) as ctx:
        f = ctx.instance_flags(0)
        with pytest.raises(Trap) as e:
            FusedAdapter(f, f).call(lambda: None)
        assert (e.value.kind, str(e.value), f.value) == ("same_instance", message, 3 if release_key(release) < (42,) else 1)


def test_v42_has_no_reentry_flag_but_a_trap_poisons_the_store():
    with context("42.0.0", 2) as ctx:
        a, b = ctx.instance_flags(0), ctx.instance_flags(1)
        assert FusedAdapter(a, b).call(lambda: FusedAdapter(a, b).call(lambda: 5)) == 5  # no MAY_ENTER to trip
        with pytest.raises(ZeroDivisionError):
            host_call(a, lambda: 1 // 0)
        with pytest.raises(HostCallError, match=f"^{CANNOT_ENTER}$"):
            host_call(b, lambda: None)


def test_post_return_runs_inside_call_from_v42_and_is_a_no_op_after():
    with context("50.0.1") as ctx:
        f = ctx.instance_flags(0)
        seen = []
        assert host_call(f, lambda: (7, 8), post_return=lambda *r: seen.append((r, f.value))) == (7, 8)
        assert seen == [((7, 8), 0)] and f.value == 1
        with pytest.warns(DeprecationWarning, match="post_return has no effect"):
            host_post_return(f, lambda: seen.append("again"))
        assert len(seen) == 1


def test_post_return_clears_may_leave_from_v38_0_1():
    for release, during in (("37.0.3", 1), ("38.0.1", 0)):
        with context(release) as ctx:
            f = ctx.instance_flags(0)
            host_call(f, lambda: None)
            seen = []
            host_post_return(f, lambda: seen.append(f.value))
            assert (seen, f.value) == ([during], 3), release


def test_before_v42_post_return_belongs_to_post_return():
    with context("41.0.0") as ctx:
        with pytest.raises(Exception, match="runs post-return from Func::post_return: pass it to host_post_return"):
            host_call(ctx.instance_flags(0), lambda: None, post_return=lambda: None)


def test_adapters_join_instances_of_one_release():
    with context("41.0.0") as old, context("42.0.0") as new:
        with pytest.raises(Exception, match="one adapter joins instances of one release"):
            FusedAdapter(old.instance_flags(0), new.instance_flags(0))


@pytest.mark.parametrize("release, bits", [("41.0.0", {"MAY_ENTER", "MAY_LEAVE", "NEEDS_POST_RETURN"}),
                                           ("42.0.0", {"MAY_LEAVE"}), ("50.0.1", {"MAY_LEAVE"}),
                                           ("51.0.0", {"MAY_LEAVE"})])
def test_recording_names_only_the_bits_of_the_release(release, bits):
    from vmctx_emu.runtime.adapter import recording

    with context(release, 2) as ctx:
        a, b = ctx.instance_flags(0), ctx.instance_flags(1)
        with recording({a: "A", b: "B"}) as events:
            host_call(a, lambda: FusedAdapter(a, b).call(lambda: None))
        assert {e.bit for e in events} == bits and {e.instance for e in events} == {"A", "B"}
