"""The flag protocol of fused adapters and of host calls, run against real emulated flag words.

Each call follows the release of the instance whose flags it is given
(`runtime.protocols`): `FusedAdapter.call` the order Wasmtime's FACT
trampoline compiler emits (`fact/trampoline.rs`), `host_call` and
`host_post_return` those of `Func::call` / `Func::post_return`
(`component/func.rs`). A trap or any exception from a callable propagates at
once and leaves every flag as it was at that point, like a wasm trap: nothing
is restored.
"""

import contextlib
from collections.abc import Mapping
import warnings
import weakref
from collections import namedtuple

from ..constants import FLAG_MAY_ENTER, FLAG_MAY_LEAVE, FLAG_NEEDS_POST_RETURN
from ..checks import check_bool
from ..errors import ArgumentTypeError, ArgumentValueError, HostCallError, HostPanic, Trap
from ..memory.flags import InstanceFlags
from .protocols import CANNOT_ENTER, protocol_for

__all__ = [
    "Trap",
    "HostCallError",
    "HostPanic",
    "FlagEvent",
    "FusedAdapter",
    "host_call",
    "host_post_return",
    "recording",
    "protocol_of",
]

_BIT_NAMES = {FLAG_MAY_LEAVE: "MAY_LEAVE", FLAG_MAY_ENTER: "MAY_ENTER", FLAG_NEEDS_POST_RETURN: "NEEDS_POST_RETURN"}


FlagEvent = namedtuple("FlagEvent", "op instance bit old new")
FlagEvent.__doc__ = "One flag access: op 'read' or 'write', the instance's label, the bit's name, old and new bit."


def _callable(what, f, *, optional=False):
    """`f` if it can be called (or is None where `optional`), else an error naming the argument."""
    if (f is None and optional) or callable(f):
        return f
    raise ArgumentTypeError(f"{what} must be callable{' or None' if optional else ''}, got {type(f).__name__} {f!r}")


class _Recorder:
    def __init__(self, names):
        self.events = []
        if names is not None and not isinstance(names, Mapping):
            raise ArgumentTypeError(f"recording(names=...) must map InstanceFlags to labels, got "
                                    f"{type(names).__name__} {names!r}")
        for flags in names or {}:
            if not isinstance(flags, InstanceFlags):
                raise ArgumentTypeError(f"recording(names=...): keys must be InstanceFlags "
                                        f"(ctx.instance_flags(i)), got {type(flags).__name__} {flags!r}")
        self.names = {flags.as_raw(): str(label) for flags, label in (names or {}).items()}

    def label(self, flags):
        address = flags.as_raw()
        return self.names.get(address, f"{address:#x}")


_recorders = []


@contextlib.contextmanager
def recording(names=None):
    """Collect every flag read and write made by adapters and host calls inside the block.

    `names` maps `InstanceFlags` to labels used in the events (default: the
    flag global's address in hex). Yields the list the events are appended to.
    """
    recorder = _Recorder(names)
    _recorders.append(recorder)
    try:
        yield recorder.events
    finally:
        _recorders.remove(recorder)


def _test(flags, bit):
    on = bool(flags.value & bit)
    for r in _recorders:
        r.events.append(FlagEvent("read", r.label(flags), _BIT_NAMES[bit], on, on))
    return on


def _set(flags, bit, on):
    old = flags.value
    flags.value = old | bit if on else old & ~bit
    for r in _recorders:
        r.events.append(FlagEvent("write", r.label(flags), _BIT_NAMES[bit], bool(old & bit), on))


def protocol_of(flags):
    """The flag protocol of the release of the instance owning `flags`."""
    if not isinstance(flags, InstanceFlags):
        raise ArgumentTypeError(f"expected the InstanceFlags of a context (ctx.instance_flags(i)), "
                                f"got {type(flags).__name__}")
    return protocol_for(flags.context.release)


def _core_results(results):
    """Callee results as the tuple of core values a post-return function receives."""
    if results is None:
        return ()
    return tuple(results) if isinstance(results, tuple) else (results,)


class FusedAdapter:
    """An adapter from a `canon lower` (caller: `lower_flags`) to a `canon lift` (callee: `lift_flags`).

    Both instances must be of one release; the adapter follows its protocol.
    """

    def __init__(self, lower_flags, lift_flags, *, called_as_export=True, post_return=None,
                 debug_assertions=True):
        self.protocol = protocol_of(lift_flags)
        if protocol_of(lower_flags) is not self.protocol:
            raise ArgumentValueError(f"lower_flags are of Wasmtime {lower_flags.context.wasmtime} and lift_flags of "
                                     f"{lift_flags.context.wasmtime}: one adapter joins instances of one release")
        self.lower_flags = lower_flags
        self.lift_flags = lift_flags
        self.called_as_export = check_bool("FusedAdapter called_as_export", called_as_export)
        self.post_return = _callable("FusedAdapter post_return", post_return, optional=True)
        self.debug_assertions = check_bool("FusedAdapter debug_assertions", debug_assertions)

    def call(self, callee, *args, lower_params=None, lift_results=None):
        """Run the adapter: flag checks, parameter translation, call, result translation, post-return."""
        _callable("FusedAdapter.call callee", callee)
        _callable("lower_params", lower_params, optional=True)
        _callable("lift_results", lift_results, optional=True)
        lower, lift, p = self.lower_flags, self.lift_flags, self.protocol
        if lower.context is lift.context and lower.index == lift.index:
            raise Trap("same_instance", p.adapter_same_instance)
        if not _test(lower, FLAG_MAY_LEAVE):
            raise Trap("cannot_leave", p.adapter_cannot_leave)
        enters = p.has_may_enter and self.called_as_export
        if enters:
            if not _test(lift, FLAG_MAY_ENTER):
                raise Trap("cannot_enter", p.adapter_cannot_enter)
            _set(lift, FLAG_MAY_ENTER, False)
        elif p.has_may_enter and self.debug_assertions and _test(lift, FLAG_MAY_ENTER):
            raise Trap("assert_failed", "assertion failure: may_enter should be unset")

        saved = _test(lift, FLAG_MAY_LEAVE) if p.restores_saved_may_leave else True
        _set(lift, FLAG_MAY_LEAVE, False)
        params = tuple(lower_params(*args)) if lower_params is not None else args
        _set(lift, FLAG_MAY_LEAVE, saved)

        results = callee(*params)

        saved = _test(lower, FLAG_MAY_LEAVE) if p.restores_saved_may_leave else True
        _set(lower, FLAG_MAY_LEAVE, False)
        translated = lift_results(results) if lift_results is not None else results
        _set(lower, FLAG_MAY_LEAVE, saved)

        if self.post_return is not None:
            self.post_return(*_core_results(results))
        if enters:
            _set(lift, FLAG_MAY_ENTER, True)
        return translated


# The value `Func::call` saves for `post_return` (its `post_return_arg`), per flag global.
_post_return_args = {}
# Contexts whose store has trapped (v42+ refuses every later entry; per context here, a store of one).
_trapped = weakref.WeakSet()


def host_call(flags, callee, *args, post_return=None, debug_assertions=True):
    """`Func::call` on the instance owning `flags`, as its release does it.

    Up to v41: enter (MAY_ENTER cleared), lower, call, mark NEEDS_POST_RETURN
    (before the callee from v36); `host_post_return` runs the post-return
    function. From v42 there is no MAY_ENTER: entry is refused only after a
    trap, and `call` runs `post_return(*results)` itself with MAY_LEAVE clear.
    """
    p = protocol_of(flags)
    _callable("host_call callee", callee)
    _callable("host_call post_return", post_return, optional=True)
    check_bool("host_call debug_assertions", debug_assertions)
    if not p.has_may_enter:
        return _host_call_v42(flags, callee, args, post_return)
    if post_return is not None:
        raise ArgumentValueError(f"Wasmtime {flags.context.wasmtime} runs post-return from Func::post_return: "
                                 "pass it to host_post_return")
    if not _test(flags, FLAG_MAY_ENTER):
        raise HostCallError(p.reenter)
    _set(flags, FLAG_MAY_ENTER, False)
    if debug_assertions and not _test(flags, FLAG_MAY_LEAVE):
        raise HostPanic("assertion failed: flags.may_leave()")
    _set(flags, FLAG_MAY_LEAVE, False)
    _set(flags, FLAG_MAY_LEAVE, True)
    if p.needs_post_return_before_call:
        _set(flags, FLAG_NEEDS_POST_RETURN, True)
    results = callee(*args)
    if not p.needs_post_return_before_call:
        _set(flags, FLAG_NEEDS_POST_RETURN, True)
    _post_return_args[flags.as_raw()] = _core_results(results)
    return results


def _host_call_v42(flags, callee, args, post_return):
    owner = flags.context
    if owner in _trapped:
        raise HostCallError(CANNOT_ENTER)
    _set(flags, FLAG_MAY_LEAVE, False)
    _set(flags, FLAG_MAY_LEAVE, True)
    try:
        results = callee(*args)
        if post_return is not None:
            _set(flags, FLAG_MAY_LEAVE, False)
            post_return(*_core_results(results))
            _set(flags, FLAG_MAY_LEAVE, True)
    except BaseException:
        _trapped.add(owner)
        raise
    return results


def host_post_return(flags, post_return=None):
    """`Func::post_return`: clear NEEDS_POST_RETURN, run `post_return(*results)`, then allow entry again.

    From v42 it is a deprecated no-op, as in Rust (`host_call(post_return=...)` runs it).
    """
    p = protocol_of(flags)
    _callable("host_post_return post_return", post_return, optional=True)
    if not p.has_may_enter:
        warnings.warn(f"Wasmtime {flags.context.wasmtime}: post_return has no effect (Func::call runs the "
                      "post-return function: pass it as host_call(post_return=...))", DeprecationWarning,
                      stacklevel=2)
        return
    if not _test(flags, FLAG_NEEDS_POST_RETURN):
        raise HostPanic("post_return can only be called after a function has previously been called")
    if flags.as_raw() not in _post_return_args:
        raise HostPanic("calling post_return on wrong function")
    saved = _post_return_args.pop(flags.as_raw())
    if _test(flags, FLAG_MAY_ENTER):
        raise HostPanic("assertion failed: !flags.may_enter()")
    _set(flags, FLAG_NEEDS_POST_RETURN, False)
    if p.post_return_clears_may_leave:
        _set(flags, FLAG_MAY_LEAVE, False)
    if post_return is not None:
        post_return(*saved)
    _set(flags, FLAG_MAY_ENTER, True)
    if p.post_return_clears_may_leave:
        _set(flags, FLAG_MAY_LEAVE, True)
