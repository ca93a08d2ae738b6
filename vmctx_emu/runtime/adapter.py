"""The flag protocol of fused adapters and of host calls, run against real emulated flag words.

`FusedAdapter.call` follows the order Wasmtime's FACT trampoline compiler
(crates/environ/src/fact/trampoline.rs at 97894bc65e) emits; `host_call` and
`host_post_return` follow `Func::call` / `Func::post_return`
(crates/wasmtime/src/component/func.rs). A trap or any exception from a
callable propagates at once and leaves every flag as it was at that point,
like a wasm trap: nothing is restored.
"""

import contextlib
from collections import namedtuple

from ..constants import FLAG_MAY_ENTER, FLAG_MAY_LEAVE, FLAG_NEEDS_POST_RETURN
from ..errors import VMCtxEmuError

__all__ = [
    "Trap",
    "HostCallError",
    "HostPanic",
    "FlagEvent",
    "FusedAdapter",
    "host_call",
    "host_post_return",
    "recording",
]

_BIT_NAMES = {FLAG_MAY_LEAVE: "MAY_LEAVE", FLAG_MAY_ENTER: "MAY_ENTER", FLAG_NEEDS_POST_RETURN: "NEEDS_POST_RETURN"}
# Trap kinds and their Display text in fact/traps.rs.
TRAP_MESSAGES = {"cannot_leave": "cannot leave instance", "cannot_enter": "cannot enter instance"}


class Trap(VMCtxEmuError):
    """A wasm trap raised by adapter code: `.kind` is "cannot_leave", "cannot_enter" or "assert_failed"."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


class HostCallError(VMCtxEmuError):
    """An `Err` returned by `Func::call` (e.g. "cannot reenter component instance")."""


class HostPanic(VMCtxEmuError, AssertionError):
    """A Rust `assert!` / `debug_assert!` in `Func::call` or `Func::post_return` that would panic."""


FlagEvent = namedtuple("FlagEvent", "op instance bit old new")
FlagEvent.__doc__ = "One flag access: op 'read' or 'write', the instance's label, the bit's name, old and new bit."


class _Recorder:
    def __init__(self, names):
        self.events = []
        self.names = {flags.as_raw(): label for flags, label in (names or {}).items()}

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


def _core_results(results):
    """Callee results as the tuple of core values a post-return function receives."""
    if results is None:
        return ()
    return tuple(results) if isinstance(results, tuple) else (results,)


class FusedAdapter:
    """An adapter from a `canon lower` (caller: `lower_flags`) to a `canon lift` (callee: `lift_flags`)."""

    def __init__(self, lower_flags, lift_flags, *, called_as_export=True, post_return=None,
                 debug_assertions=True):
        self.lower_flags = lower_flags
        self.lift_flags = lift_flags
        self.called_as_export = bool(called_as_export)
        self.post_return = post_return
        self.debug_assertions = bool(debug_assertions)

    def call(self, callee, *args, lower_params=None, lift_results=None):
        """Run the adapter: flag checks, parameter translation, call, result translation, post-return."""
        lower, lift = self.lower_flags, self.lift_flags
        if not _test(lower, FLAG_MAY_LEAVE):
            raise Trap("cannot_leave", TRAP_MESSAGES["cannot_leave"])
        if self.called_as_export:
            if not _test(lift, FLAG_MAY_ENTER):
                raise Trap("cannot_enter", TRAP_MESSAGES["cannot_enter"])
            _set(lift, FLAG_MAY_ENTER, False)
        elif self.debug_assertions and _test(lift, FLAG_MAY_ENTER):
            raise Trap("assert_failed", "assertion failure: may_enter should be unset")

        _set(lift, FLAG_MAY_LEAVE, False)
        params = tuple(lower_params(*args)) if lower_params is not None else args
        _set(lift, FLAG_MAY_LEAVE, True)

        results = callee(*params)

        _set(lower, FLAG_MAY_LEAVE, False)
        translated = lift_results(results) if lift_results is not None else results
        _set(lower, FLAG_MAY_LEAVE, True)

        if self.post_return is not None:
            self.post_return(*_core_results(results))
        if self.called_as_export:
            _set(lift, FLAG_MAY_ENTER, True)
        return translated


# The value `Func::call` saves for `post_return` (its `post_return_arg`), per flag global.
_post_return_args = {}


def host_call(flags, callee, *args, debug_assertions=True):
    """`Func::call` on the instance owning `flags`: enter, lower, call, mark NEEDS_POST_RETURN."""
    if not _test(flags, FLAG_MAY_ENTER):
        raise HostCallError("cannot reenter component instance")
    _set(flags, FLAG_MAY_ENTER, False)
    if debug_assertions and not _test(flags, FLAG_MAY_LEAVE):
        raise HostPanic("assertion failed: flags.may_leave()")
    _set(flags, FLAG_MAY_LEAVE, False)
    _set(flags, FLAG_MAY_LEAVE, True)
    results = callee(*args)
    _set(flags, FLAG_NEEDS_POST_RETURN, True)
    _post_return_args[flags.as_raw()] = _core_results(results)
    return results


def host_post_return(flags, post_return=None):
    """`Func::post_return`: clear NEEDS_POST_RETURN, run `post_return(*results)`, then allow entry again."""
    if not _test(flags, FLAG_NEEDS_POST_RETURN):
        raise HostPanic("post_return can only be called after a function has previously been called")
    if flags.as_raw() not in _post_return_args:
        raise HostPanic("calling post_return on wrong function")
    saved = _post_return_args.pop(flags.as_raw())
    if _test(flags, FLAG_MAY_ENTER):
        raise HostPanic("assertion failed: !flags.may_enter()")
    _set(flags, FLAG_NEEDS_POST_RETURN, False)
    if post_return is not None:
        post_return(*saved)
    _set(flags, FLAG_MAY_ENTER, True)
