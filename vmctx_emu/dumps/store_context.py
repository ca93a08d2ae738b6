"""Decode the bytes of a `VMRuntimeLimits` / `VMStoreContext` (what a component context's header points at).

Plain data out: each field with its value and what it means, and a verdict on
where the store's thread is (in wasm, in a host call from wasm, not in wasm)
from the entry and exit values as that release maintains them. Nothing is
dereferenced; rendering is `describe/`'s job.
"""

from ..checks import check_byte_order
from ..errors import ArgumentTypeError, StoreContextError
from ..layouts.record import Record
from ..layouts.releases import release_of
from ..layouts.store_context import ROLES, STACK_CHAIN_VARIANTS, store_context_layout

__all__ = ["StoreValue", "Verdict", "DecodedStoreContext", "decode_store_context",
           "NOT_IN_WASM", "INSIDE_WASM", "IN_HOST_CALL", "UNKNOWN"]

NOT_IN_WASM = "not in wasm"
INSIDE_WASM = "inside wasm now"
IN_HOST_CALL = "in a host call from wasm"
UNKNOWN = "unknown"

EXIT_FP_ROLES = ("last_wasm_exit_fp", "last_wasm_exit_trampoline_fp")
ENTRY_ROLES = ("last_wasm_entry_sp", "last_wasm_entry_fp")


class StoreValue(Record):
    """One field as read: `value` is an int, or a dict of its parts (`gc_heap`: base, current_length; ...);
    `note` reads this particular value where it has a known meaning (None otherwise)."""

    name: str
    role: str
    rust_type: str
    offset: int
    size: int
    value: object
    meaning: str
    note: str = None


class Verdict(Record):
    """Where the store's thread is: `state` (one of NOT_IN_WASM, INSIDE_WASM, IN_HOST_CALL, UNKNOWN);
    `sure` False where the bytes allow another reading (given in `why`); `evidence` the other fields'
    agreement or disagreement, one sentence each."""

    state: str
    sure: bool
    why: str
    evidence: tuple = ()


class DecodedStoreContext(Record):
    """A decoded store context: the release decoded as, its layout, the fields in order, the verdict."""

    release: str
    layout: object
    ptr: int
    byte_order: str
    address: int
    fields: tuple
    verdict: Verdict

    def __getitem__(self, role):
        """The `StoreValue` of a role (`ctx["stack_limit"]`); KeyError when the release has none."""
        for f in self.fields:
            if f.role == role:
                return f
        raise KeyError(role)

    def get(self, role, default=None):
        try:
            return self[role].value
        except KeyError:
            return default


def decode_store_context(data, wasmtime, *, ptr=8, byte_order="little", address=None):
    """The fields and verdict of `data`, the bytes of release `wasmtime`'s store context.

    `data` must hold at least the bytes its fields span for pointer size
    `ptr` (more are ignored); `address` is where they were read, for the
    record only.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArgumentTypeError(f"data must be bytes, got {type(data).__name__}", argument="data", value=data)
    check_byte_order(byte_order)
    release = release_of(wasmtime)
    layout = store_context_layout(release)
    placed = layout.placed(ptr)
    needed = placed[-1].offset + placed[-1].size
    data = bytes(data)
    if len(data) < needed:
        raise StoreContextError(f"{layout.rust_struct} of Wasmtime {release} spans {needed} bytes for pointer "
                                f"size {ptr}, got {len(data)}", release=release, needed=needed, got=len(data))
    umax = (1 << (8 * ptr)) - 1
    fields = []
    for p in placed:
        parts = {}
        for name, kind, at in p.parts:
            width = ptr if kind == "usize" else (4 if kind == "u32" else 8)
            parts[name] = int.from_bytes(data[at : at + width], byte_order, signed=(kind == "i64"))
        value = parts["value"] if tuple(parts) == ("value",) else parts
        fields.append(StoreValue(p.name, p.role, p.field.type.rust_name, p.offset, p.size, value, ROLES[p.role],
                                 _note(p.role, value, umax, layout)))
    fields = tuple(fields)
    return DecodedStoreContext(release, layout, ptr, byte_order, address, fields, _verdict(layout, fields, umax))


def _note(role, value, umax, layout):
    """What this value says, where a value has a known meaning."""
    if role == "stack_limit" and value == umax:
        return "usize::MAX: no limit set, no wasm running on this store"
    if role == "stack_chain":
        variant = STACK_CHAIN_VARIANTS.get(value["discriminant"])
        if variant == "InitialStack" and layout.stack_chain_left_set:
            return "InitialStack (this release leaves it set after a call returns)"
        return variant or f"discriminant {value['discriminant']} is no VMStackChain variant"
    if role == "gc_heap" and value["base"] == 1 and value["current_length"] == 0:
        return "dangling (0x1), length 0: no GC heap"
    if role == "last_wasm_entry_sp" and layout.entry_sentinel and value == umax:
        return "usize::MAX: the host called a host function through the host-to-wasm trampoline"
    if role == "current_thread":
        if value == 0:
            return "none"
        return "forced" if value & 1 else f"deferred thread at {value:#x}"
    if role in ENTRY_ROLES + EXIT_FP_ROLES + ("last_wasm_exit_pc",) and value == 0:
        return "0: none recorded"
    return None


def _verdict(layout, fields, umax):
    by_role = {f.role: f.value for f in fields}
    entry = {r: by_role[r] for r in ENTRY_ROLES if r in by_role}
    exit_ = {r: by_role[r] for r in EXIT_FP_ROLES + ("last_wasm_exit_pc",) if r in by_role}
    entered = [v != 0 for v in entry.values()]
    exited = [v != 0 for v in exit_.values()]
    if layout.entry_sentinel and entry.get("last_wasm_entry_sp") == umax:
        state, sure = NOT_IN_WASM, False
        why = ("entry SP is usize::MAX: the innermost call from the host is to a host function, "
               "not wasm (wasm frames may still be further up the stack)")
    elif not any(entered) and not any(exited):
        state, sure, why = NOT_IN_WASM, True, "no entry into wasm and no exit from it recorded"
    elif all(entered) and not any(exited):
        state, sure, why = INSIDE_WASM, True, "entered from the host, and wasm has not called the host since"
    elif all(entered) and all(exited):
        state, sure = IN_HOST_CALL, False
        why = ("entered, and wasm called the host at the recorded exit PC; the exit FP/PC are not cleared when "
               "that call returns, so wasm may have resumed since")
    elif all(exited) and not any(entered):
        state, sure, why = UNKNOWN, False, "an exit from wasm is recorded but no entry into it"
    else:
        state, sure = UNKNOWN, False
        why = "the entry and exit fields disagree among themselves (some zero, some not)"
    evidence, disagree = _evidence(state, by_role, umax, layout)
    return Verdict(state, sure and not disagree, why, tuple(evidence))


def _evidence(state, by_role, umax, layout):
    """(sentences, whether any disagrees with `state`) from stack_limit and stack_chain."""
    in_a_call = state in (INSIDE_WASM, IN_HOST_CALL)
    evidence, disagree = [], False
    if state in (UNKNOWN,):
        return evidence, disagree
    limit = by_role.get("stack_limit")
    if limit is not None:
        at_rest = limit == umax
        agrees = at_rest != in_a_call
        disagree |= not agrees
        evidence.append(f"stack_limit {'is' if at_rest else 'is not'} usize::MAX: "
                        f"{'agrees' if agrees else 'disagrees (an async store swaps it per fiber)'}")
    chain = by_role.get("stack_chain")
    if chain is not None:
        variant = STACK_CHAIN_VARIANTS.get(chain["discriminant"], f"discriminant {chain['discriminant']}")
        if variant == "InitialStack" and not in_a_call and layout.stack_chain_left_set:
            evidence.append("stack_chain is InitialStack: says nothing (this release leaves it set after a call)")
        else:
            agrees = (variant == "Absent") != in_a_call
            disagree |= not agrees
            evidence.append(f"stack_chain is {variant}: {'agrees' if agrees else 'disagrees'}")
    return evidence, disagree
