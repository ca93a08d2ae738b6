"""`flag_state`: every word the emulated runtime writes, phase by phase, named as that phase for its release.

The words come from running the emulator's `host_call`, `host_post_return` and
`FusedAdapter` (each release's protocol), not from a table typed here: a word
the protocol writes that `flag_state` calls "not_written", or a phase named
wrongly, fails.
"""

import warnings

import pytest

from vmctx_emu.runtime.adapter import FusedAdapter, Trap, host_call, host_post_return
from vmctx_emu.runtime.protocols import flag_state, protocol_for

from test_flag_protocols import context

RELEASES = ["seed", "11.0.2", "12.0.0", "35.0.0", "36.0.0", "37.0.0", "38.0.1", "41.0.0", "42.0.0", "46.0.0",
            "47.0.0", "51.0.0"]


def phases(release):
    """{phase: the flag word of the instance in that phase} as the emulated runtime leaves it."""
    seen = {}
    with context(release, n=2) as ctx:
        f, g = ctx.instance_flags(0), ctx.instance_flags(1)
        seen["fresh"] = f.value
        v42 = not protocol_for(release).has_may_enter
        host_call(f, lambda: seen.setdefault("host call, callee running", f.value),
                  **({"post_return": lambda *_: seen.setdefault("post-return running", f.value)} if v42 else {}))
        if not v42:
            seen["returned, before post_return"] = f.value
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                host_post_return(f, lambda *_: seen.setdefault("post-return running", f.value))
        seen["after post_return"] = f.value
        # The caller's wasm runs inside a call from the host, and calls instance 1 through a fused adapter.
        adapter = FusedAdapter(f, g)
        host_call(f, lambda: adapter.call(lambda: seen.setdefault("adapter callee running", g.value),
                                          lift_results=lambda r: seen.setdefault("adapter lifting, caller", f.value)))
        seen["after the adapter, callee"] = g.value
        with pytest.raises(Trap):
            FusedAdapter(f, g).call(lambda: (_ for _ in ()).throw(Trap("unreachable", "trap")))
        seen["after a trap in the callee, callee"] = g.value
    return seen


def expected(release, phase):
    p = protocol_for(release)
    if not p.has_may_enter:
        return {"adapter lifting, caller": "cannot_leave",
                "post-return running": "cannot_leave"}.get(phase, "may_leave")
    early = not p.needs_post_return_before_call
    return {
        "fresh": "at_rest",
        "host call, callee running": "in_call" if early else "in_call_or_post_return",
        "returned, before post_return": "post_return_pending" if early else "in_call_or_post_return",
        "post-return running": "cannot_leave" if p.post_return_clears_may_leave else "in_call",
        "after post_return": "at_rest",
        "adapter callee running": "in_call",
        "adapter lifting, caller": "cannot_leave",
        "after the adapter, callee": "at_rest",
        "after a trap in the callee, callee": "in_call",
    }[phase]


@pytest.mark.parametrize("release", RELEASES)
def test_every_phase_is_named_as_the_runtime_is_in_it(release):
    seen = phases(release)
    assert len(seen) >= 8
    got = {phase: flag_state(release, word).key for phase, word in seen.items()}
    assert got == {phase: expected(release, phase) for phase in seen}


@pytest.mark.parametrize("release, word", [("seed", 2), ("41.0.0", 7), ("42.0.0", 3), ("50.0.0", 5),
                                           ("50.0.0", 0x100)])
def test_a_word_no_runtime_writes_is_not_given_a_state(release, word):
    state = flag_state(release, word)
    assert (state.key, state.consequence) == ("not_written", "unknown")
    assert f"{word:#x}" in state.state


def test_a_pending_post_return_says_the_next_call_traps_with_that_release_s_message():
    # The v41 instance: MAY_LEAVE|NEEDS_POST_RETURN while idle.
    assert "cannot enter component instance" in flag_state("41.0.0", 5).consequence
    assert "cannot reenter component instance" in flag_state("seed", 5).consequence


@pytest.mark.parametrize("release, word, with_no_wasm", [
    ("41.0.0", 5, "post_return_pending"),  # the idle v41 instance: its next call traps
    ("35.0.0", 1, "trapped"), ("41.0.0", 1, "trapped"),  # no wasm runs, yet entered: a call trapped
    ("50.0.0", 1, "at_rest"), ("42.0.0", 1, "at_rest"),
    ("41.0.0", 3, "at_rest"), ("41.0.0", 0, "cannot_leave"), ("50.0.0", 0, "cannot_leave"),
    ("35.0.0", 5, "post_return_pending"), ("41.0.0", 7, "not_written"),
])
def test_a_store_not_in_wasm_leaves_one_reading(release, word, with_no_wasm):
    assert flag_state(release, word, in_wasm=False).key == with_no_wasm
    plain = flag_state(release, word)
    assert flag_state(release, word, in_wasm=None) == plain
    assert flag_state(release, word, in_wasm=False).consequence == plain.consequence
