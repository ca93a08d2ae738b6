"""What each release's runtime does with the instance flag word, declared once per change.

Read from each release tag's `component/func.rs` (`Func::call`,
`post_return`), `component/func/host.rs` (the lowered-import path),
`environ/src/fact/trampoline.rs` (fused adapters) and `trap_encoding.rs`
(messages); checked live against wasmtime-py 39.0.0-51.0.0 (at rest, inside a
host import, after a call, after `post_return`, a second call). Every patch
release behaves as its `.0`. The bits themselves are the layout's
(`flag_bits`): only MAY_LEAVE from v42.
"""

from collections import namedtuple
from functools import lru_cache
from dataclasses import dataclass

from ..constants import FLAG_MAY_ENTER, FLAG_MAY_LEAVE, FLAG_NEEDS_POST_RETURN

from ..layouts.releases import release_key, release_of

__all__ = ["FlagProtocol", "PROTOCOLS", "protocol_for", "FlagState", "flag_state", "UNREACHABLE", "CANNOT_ENTER",
           "CANNOT_LEAVE", "DEGENERATE"]

# What the embedder sees (anyhow's Display of the error or `Trap`).
UNREACHABLE = "wasm trap: wasm `unreachable` instruction executed"
CANNOT_ENTER = "wasm trap: cannot enter component instance"
CANNOT_LEAVE = "wasm trap: cannot leave component instance"
DEGENERATE = "wasm trap: degenerate component adapter called"


@dataclass(frozen=True)
class FlagProtocol:
    """One range of releases, from `first` until the next entry's `first`."""

    first: str
    changed_by: str
    # `Func::call` on an instance whose MAY_ENTER is clear fails with this; None: there is no
    # MAY_ENTER (v42+), entry is refused only once the store has trapped, with CANNOT_ENTER.
    reenter: str = "cannot reenter component instance"
    # NEEDS_POST_RETURN set before the callee runs (v36-v41), not after it returned.
    needs_post_return_before_call: bool = False
    # `post_return` clears MAY_LEAVE while the post-return function runs (v38.0.1-v41).
    post_return_clears_may_leave: bool = False
    # A lowered import called with MAY_LEAVE clear fails with this.
    host_cannot_leave: str = "cannot leave component instance"
    # What a fused adapter's MAY_LEAVE / MAY_ENTER check traps with (v0.40-v40: a bare `unreachable`).
    adapter_cannot_leave: str = UNREACHABLE
    adapter_cannot_enter: str = UNREACHABLE
    # A `canon lower` of a function its own instance lifts compiles to an adapter that only traps.
    adapter_same_instance: str = DEGENERATE
    # Adapters put back the MAY_LEAVE they saved instead of setting it (v47+: the word is a bool).
    restores_saved_may_leave: bool = False

    @property
    def has_may_enter(self):
        """MAY_ENTER and NEEDS_POST_RETURN exist (up to v41); from v42 `call` runs post-return itself
        and `post_return` is a deprecated no-op."""
        return self.reenter is not None


PROTOCOLS = (
    FlagProtocol("seed", "97894bc65e (the seed)"),
    FlagProtocol("12.0.0", "5a6ed0fbd2 (#6691): re-entry is Trap::CannotEnterComponent", reenter=CANNOT_ENTER),
    FlagProtocol("36.0.0", "b221fca7c5 (#11123): NEEDS_POST_RETURN set before the callee", reenter=CANNOT_ENTER,
                 needs_post_return_before_call=True),
    FlagProtocol("38.0.1", "6751ea7977 (#11688): no leaving during post-return; Trap::CannotLeaveComponent",
                 reenter=CANNOT_ENTER, needs_post_return_before_call=True, post_return_clears_may_leave=True,
                 host_cannot_leave=CANNOT_LEAVE),
    FlagProtocol("41.0.0", "967f4601d0 (#12215): precise traps in adapters", reenter=CANNOT_ENTER,
                 needs_post_return_before_call=True, post_return_clears_may_leave=True,
                 host_cannot_leave=CANNOT_LEAVE, adapter_cannot_leave=CANNOT_LEAVE, adapter_cannot_enter=CANNOT_ENTER),
    FlagProtocol("42.0.0", "b856261dde (#12349), c09aa38078 (#12498): MAY_ENTER and NEEDS_POST_RETURN removed, "
                 "post_return a no-op", reenter=None, host_cannot_leave=CANNOT_LEAVE,
                 adapter_cannot_leave=CANNOT_LEAVE, adapter_cannot_enter=CANNOT_ENTER,
                 adapter_same_instance=CANNOT_ENTER),
    FlagProtocol("47.0.0", "744ae13171 (#13713): the flag word is the bool `may_leave`", reenter=None,
                 host_cannot_leave=CANNOT_LEAVE, adapter_cannot_leave=CANNOT_LEAVE, adapter_cannot_enter=CANNOT_ENTER,
                 adapter_same_instance=CANNOT_ENTER, restores_saved_may_leave=True),
)


def protocol_for(version):
    """The flag protocol of a release ("38", "v41.0.2", "seed", a layout)."""
    key = release_key(release_of(version))
    return [p for p in PROTOCOLS if release_key(p.first) <= key][-1]


FlagState = namedtuple("FlagState", "key state consequence")
FlagState.__doc__ = """An instance's flag word in words under its release's protocol.

`key`: a stable name for programs ("at_rest", "in_call", "in_call_or_post_return",
"post_return_pending", "cannot_leave", "may_leave", "trapped", "not_written"); `state`: what the
runtime is doing with the instance; `consequence`: what a call or a host import does now."""

_ME, _ML, _NPR = FLAG_MAY_ENTER, FLAG_MAY_LEAVE, FLAG_NEEDS_POST_RETURN


def _entered(p):
    """The words up to v41, from the order `Func::call`, `post_return` and the fused adapters write them."""
    trap = f"a call now fails with \"{p.reenter}\""
    cannot_leave = f"a host import called now fails with \"{p.host_cannot_leave}\"; {trap}"
    lowering = ("lowering arguments or lifting results"
                + (", or running its post-return function" if p.post_return_clears_may_leave else ""))
    post_return = "" if p.post_return_clears_may_leave else ", running its post-return function"
    if p.needs_post_return_before_call:
        entered = FlagState("in_call", "inside a call entered through a fused adapter (or a host call between "
                            f"lowering its arguments and starting){post_return}, or such a call trapped", trap)
        pending = FlagState("in_call_or_post_return", "inside a call from the host, or returned and waiting for "
                            "post_return: the same bits on this release (NEEDS_POST_RETURN is set before the callee "
                            "runs), or such a call trapped", f"{trap} until post_return is called")
    else:
        entered = FlagState("in_call", "inside a call (its export, or a host import it called, is running)"
                            f"{post_return}, or a call trapped", trap)
        pending = FlagState("post_return_pending", "returned, waiting for post_return",
                            f"{trap} until post_return is called")
    states = {_ME | _ML: FlagState("at_rest", "at rest", "can be called"),
              _ML: entered,
              _ML | _NPR: pending,
              0: FlagState("cannot_leave", f"inside the runtime's own work on it ({lowering}), or a trap there left "
                           "it so", cannot_leave)}
    if p.needs_post_return_before_call:
        states[_NPR] = FlagState("cannot_leave", "inside a call from the host and lifting the results of a call it "
                                 "made through a fused adapter, or a trap there left it so", cannot_leave)
    return states


# With no wasm running on the store, the reading of a word that is not "inside a call".
_AT_REST_READING = {
    "in_call": ("trapped", "a call into it trapped: it cannot be entered again"),
    "in_call_or_post_return": ("post_return_pending", "returned and waiting for post_return, or a call trapped"),
    "may_leave": ("at_rest", "at rest"),
}


def _may_leave_only(p):
    return {_ML: FlagState("may_leave", "may leave: at rest or inside a call (from v42 the component context "
                           "records no call; the store context shows whether wasm is running)",
                           "can be called unless its store has trapped"),
            0: FlagState("cannot_leave", "inside the runtime's own work on it (lowering arguments, lifting results "
                         "or running its post-return function), or a trap there left it so",
                         f"a host import called now fails with \"{p.host_cannot_leave}\"")}


@lru_cache(maxsize=4096)
def flag_state(version, word, in_wasm=None):
    """An instance's flag `word` under the protocol of release `version`, in words (`FlagState`).

    A word the release's runtime never leaves behind (bits it does not
    define, MAY_ENTER without MAY_LEAVE, ...) is "not_written": no state is
    guessed for it. `in_wasm` False: the store context says for sure that no
    wasm runs on the store's thread, so no call into the instance is in
    progress: a word that means "inside a call or ..." is the other reading.
    """
    p = protocol_for(version)
    states = _entered(p) if p.has_may_enter else _may_leave_only(p)
    found = states.get(word)
    if found is not None and in_wasm is False and found.key in _AT_REST_READING:
        key, state = _AT_REST_READING[found.key]
        return FlagState(key, state + "; its store is not in wasm, so no call is in progress", found.consequence)
    if found is not None:
        return found
    return FlagState("not_written", f"{word:#x} is not a word this release's runtime writes", "unknown")
