"""What each release's runtime does with the instance flag word, declared once per change.

Read from each release tag's `component/func.rs` (`Func::call`,
`post_return`), `component/func/host.rs` (the lowered-import path),
`environ/src/fact/trampoline.rs` (fused adapters) and `trap_encoding.rs`
(messages); checked live against wasmtime-py 39.0.0-51.0.0 (at rest, inside a
host import, after a call, after `post_return`, a second call). Every patch
release behaves as its `.0`. The bits themselves are the layout's
(`flag_bits`): only MAY_LEAVE from v42.
"""

from dataclasses import dataclass

from ..layouts.releases import release_key, release_of

__all__ = ["FlagProtocol", "PROTOCOLS", "protocol_for", "UNREACHABLE", "CANNOT_ENTER", "CANNOT_LEAVE", "DEGENERATE"]

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
