"""The store context (`VMRuntimeLimits` / `VMStoreContext`) per release: declaration, decoder, real Wasmtime.

The offsets below are the numbers each release's `crates/environ/src/vmoffsets.rs` gives
(`vmruntime_limits_*` to v30, `vmstore_context_*` after; v48's from its `for_each_vm_type!`
`#[repr(C, align(8))]` rules), evaluated for pointer sizes 8 and 4: facts read off the
release tags, not computed by the code under test. The field orders are the Rust structs'
(`vmcontext.rs`), which name fields `vmoffsets.rs` has no function for (`async_guard_range`
before v45).
"""

import os
import platform
import struct
import sys
from importlib.metadata import version

import pytest

from vmctx_emu.dumps.store_context import (IN_HOST_CALL, INSIDE_WASM, NOT_IN_WASM, UNKNOWN,
                                           decode_store_context)
from vmctx_emu.errors import ArgumentValueError, InvalidPtrSizeError, StoreContextError, UnknownReleaseError
from vmctx_emu.layouts.releases import ALL_RELEASES, release_key
from vmctx_emu.layouts.store_context import ROLES, STORE_CONTEXT_LAYOUTS, store_context_layout

# release tag -> field -> (offset for ptr 8, offset for ptr 4), from that tag's vmoffsets.rs.
VMOFFSETS = {
    "0.40.0": {"stack_limit": (0, 0), "fuel_consumed": (8, 4), "epoch_deadline": (16, 12),
               "last_wasm_exit_fp": (24, 20), "last_wasm_exit_pc": (32, 24), "last_wasm_entry_sp": (40, 28)},
    "8.0.0": {"stack_limit": (0, 0), "fuel_consumed": (8, 4), "epoch_deadline": (16, 12),
              "last_wasm_exit_fp": (24, 20), "last_wasm_exit_pc": (32, 24), "last_wasm_entry_sp": (40, 28)},
    "9.0.0": {"stack_limit": (0, 0), "fuel_consumed": (8, 4), "epoch_deadline": (16, 12),
              "last_wasm_exit_fp": (24, 20), "last_wasm_exit_pc": (32, 24), "last_wasm_entry_sp": (40, 28)},
    "26.0.0": {"stack_limit": (0, 0), "fuel_consumed": (8, 4), "epoch_deadline": (16, 12),
               "last_wasm_exit_fp": (24, 20), "last_wasm_exit_pc": (32, 24), "last_wasm_entry_sp": (40, 28)},
    "27.0.0": {"stack_limit": (0, 0), "fuel_consumed": (8, 4), "epoch_deadline": (16, 12),
               "last_wasm_exit_fp": (24, 20), "last_wasm_exit_pc": (32, 24), "last_wasm_entry_fp": (40, 28)},
    "28.0.0": {"stack_limit": (0, 0), "fuel_consumed": (8, 4), "epoch_deadline": (16, 12),
               "last_wasm_exit_fp": (24, 20), "last_wasm_exit_pc": (32, 24), "last_wasm_entry_fp": (40, 28)},
    "29.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "stack_limit": (16, 16),
               "last_wasm_exit_fp": (24, 20), "last_wasm_exit_pc": (32, 24), "last_wasm_entry_fp": (40, 28)},
    "30.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "stack_limit": (16, 16),
               "last_wasm_exit_fp": (24, 20), "last_wasm_exit_pc": (32, 24), "last_wasm_entry_fp": (40, 28)},
    "31.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "stack_limit": (16, 16),
               "last_wasm_exit_fp": (24, 20), "last_wasm_exit_pc": (32, 24), "last_wasm_entry_fp": (40, 28)},
    "32.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "stack_limit": (16, 16),
               "last_wasm_exit_fp": (24, 20), "last_wasm_exit_pc": (32, 24), "last_wasm_entry_fp": (40, 28)},
    "33.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "stack_limit": (16, 16), "gc_heap": (24, 20),
               "last_wasm_exit_fp": (40, 28), "last_wasm_exit_pc": (48, 32), "last_wasm_entry_fp": (56, 36)},
    "34.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "stack_limit": (16, 16), "gc_heap": (24, 20),
               "last_wasm_exit_fp": (40, 28), "last_wasm_exit_pc": (48, 32), "last_wasm_entry_fp": (56, 36)},
    "35.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "stack_limit": (16, 16), "gc_heap": (24, 20),
               "last_wasm_exit_fp": (40, 28), "last_wasm_exit_pc": (48, 32), "last_wasm_entry_fp": (56, 36),
               "stack_chain": (64, 40)},
    "36.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "stack_limit": (16, 16), "gc_heap": (24, 20),
               "last_wasm_exit_fp": (40, 28), "last_wasm_exit_pc": (48, 32), "last_wasm_entry_fp": (56, 36),
               "stack_chain": (64, 40)},
    "37.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "stack_limit": (16, 16), "gc_heap": (24, 20),
               "last_wasm_exit_trampoline_fp": (40, 28), "last_wasm_exit_pc": (48, 32),
               "last_wasm_entry_fp": (56, 36), "stack_chain": (64, 40)},
    "38.0.1": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "stack_limit": (16, 16), "gc_heap": (24, 20),
               "last_wasm_exit_trampoline_fp": (40, 28), "last_wasm_exit_pc": (48, 32),
               "last_wasm_entry_sp": (56, 36), "last_wasm_entry_fp": (64, 40),
               "last_wasm_entry_trap_handler": (72, 44), "stack_chain": (80, 48)},
    "39.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "stack_limit": (16, 16), "gc_heap": (24, 20),
               "last_wasm_exit_trampoline_fp": (40, 28), "last_wasm_exit_pc": (48, 32),
               "last_wasm_entry_sp": (56, 36), "last_wasm_entry_fp": (64, 40),
               "last_wasm_entry_trap_handler": (72, 44), "stack_chain": (80, 48), "store_data": (96, 56)},
    "42.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "stack_limit": (16, 16), "gc_heap": (24, 20),
               "last_wasm_exit_trampoline_fp": (40, 28), "last_wasm_exit_pc": (48, 32),
               "last_wasm_entry_sp": (56, 36), "last_wasm_entry_fp": (64, 40),
               "last_wasm_entry_trap_handler": (72, 44), "stack_chain": (80, 48), "store_data": (96, 56)},
    "43.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "execution_version": (16, 16),
               "stack_limit": (24, 24), "gc_heap": (32, 28), "last_wasm_exit_trampoline_fp": (48, 36),
               "last_wasm_exit_pc": (56, 40), "last_wasm_entry_sp": (64, 44), "last_wasm_entry_fp": (72, 48),
               "last_wasm_entry_trap_handler": (80, 52), "stack_chain": (88, 56), "store_data": (104, 64)},
    "44.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "execution_version": (16, 16),
               "stack_limit": (24, 24), "gc_heap": (32, 28), "last_wasm_exit_trampoline_fp": (48, 36),
               "last_wasm_exit_pc": (56, 40), "last_wasm_entry_sp": (64, 44), "last_wasm_entry_fp": (72, 48),
               "last_wasm_entry_trap_handler": (80, 52), "stack_chain": (88, 56), "store_data": (104, 64)},
    # From v45 `vmstore_context_component_context_slot(0)` and `vmstore_context_async_guard_range`.
    "45.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "execution_version": (16, 16),
               "stack_limit": (24, 24), "gc_heap": (32, 28), "last_wasm_exit_trampoline_fp": (48, 36),
               "last_wasm_exit_pc": (56, 40), "last_wasm_entry_sp": (64, 44), "last_wasm_entry_fp": (72, 48),
               "last_wasm_entry_trap_handler": (80, 52), "stack_chain": (88, 56), "store_data": (104, 64),
               "async_guard_range": (112, 68), "component_context": (128, 76)},
    "46.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "execution_version": (16, 16),
               "stack_limit": (24, 24), "gc_heap": (32, 28), "last_wasm_exit_trampoline_fp": (48, 36),
               "last_wasm_exit_pc": (56, 40), "last_wasm_entry_sp": (64, 44), "last_wasm_entry_fp": (72, 48),
               "last_wasm_entry_trap_handler": (80, 52), "stack_chain": (88, 56), "store_data": (104, 64),
               "async_guard_range": (112, 68), "component_context": (128, 76)},
    "47.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "execution_version": (16, 16),
               "stack_limit": (24, 24), "gc_heap": (32, 28), "last_wasm_exit_trampoline_fp": (48, 36),
               "last_wasm_exit_pc": (56, 40), "last_wasm_entry_sp": (64, 44), "last_wasm_entry_fp": (72, 48),
               "last_wasm_entry_trap_handler": (80, 52), "stack_chain": (88, 56), "store_data": (104, 64),
               "async_guard_range": (112, 68), "component_context": (128, 76), "current_thread": (136, 84)},
    # v48: `offsets::VMStoreContext` generated from `for_each_vm_type!` (u64 8-aligned, usize P-aligned).
    "48.0.0": {"fuel_consumed": (0, 0), "epoch_deadline": (8, 8), "execution_version": (16, 16),
               "stack_limit": (24, 24), "gc_heap": (32, 28), "last_wasm_exit_trampoline_fp": (48, 36),
               "last_wasm_exit_pc": (56, 40), "last_wasm_entry_sp": (64, 44), "last_wasm_entry_fp": (72, 48),
               "last_wasm_entry_trap_handler": (80, 52), "stack_chain": (88, 56), "store_data": (104, 64),
               "async_guard_range": (112, 68), "component_context": (128, 76), "current_thread": (136, 84)},
}

# Struct -> fields in Rust order, from vmcontext.rs (environ's vmtypes.rs from v48) at each first tag.
STRUCTS = {
    "0.40.0": ("VMRuntimeLimits", "stack_limit fuel_consumed epoch_deadline last_wasm_exit_fp last_wasm_exit_pc "
                                  "last_wasm_entry_sp"),
    "27.0.0": ("VMRuntimeLimits", "stack_limit fuel_consumed epoch_deadline last_wasm_exit_fp last_wasm_exit_pc "
                                  "last_wasm_entry_fp"),
    "29.0.0": ("VMRuntimeLimits", "fuel_consumed epoch_deadline stack_limit last_wasm_exit_fp last_wasm_exit_pc "
                                  "last_wasm_entry_fp"),
    "31.0.0": ("VMStoreContext", "fuel_consumed epoch_deadline stack_limit last_wasm_exit_fp last_wasm_exit_pc "
                                 "last_wasm_entry_fp"),
    "33.0.0": ("VMStoreContext", "fuel_consumed epoch_deadline stack_limit gc_heap last_wasm_exit_fp "
                                 "last_wasm_exit_pc last_wasm_entry_fp"),
    "35.0.0": ("VMStoreContext", "fuel_consumed epoch_deadline stack_limit gc_heap last_wasm_exit_fp "
                                 "last_wasm_exit_pc last_wasm_entry_fp stack_chain async_guard_range"),
    "37.0.0": ("VMStoreContext", "fuel_consumed epoch_deadline stack_limit gc_heap last_wasm_exit_trampoline_fp "
                                 "last_wasm_exit_pc last_wasm_entry_fp stack_chain async_guard_range"),
    "38.0.1": ("VMStoreContext", "fuel_consumed epoch_deadline stack_limit gc_heap last_wasm_exit_trampoline_fp "
                                 "last_wasm_exit_pc last_wasm_entry_sp last_wasm_entry_fp "
                                 "last_wasm_entry_trap_handler stack_chain async_guard_range"),
    "39.0.0": ("VMStoreContext", "fuel_consumed epoch_deadline stack_limit gc_heap last_wasm_exit_trampoline_fp "
                                 "last_wasm_exit_pc last_wasm_entry_sp last_wasm_entry_fp "
                                 "last_wasm_entry_trap_handler stack_chain store_data async_guard_range"),
    "43.0.0": ("VMStoreContext", "fuel_consumed epoch_deadline execution_version stack_limit gc_heap "
                                 "last_wasm_exit_trampoline_fp last_wasm_exit_pc last_wasm_entry_sp "
                                 "last_wasm_entry_fp last_wasm_entry_trap_handler stack_chain store_data "
                                 "async_guard_range"),
    "45.0.0": ("VMStoreContext", "fuel_consumed epoch_deadline execution_version stack_limit gc_heap "
                                 "last_wasm_exit_trampoline_fp last_wasm_exit_pc last_wasm_entry_sp "
                                 "last_wasm_entry_fp last_wasm_entry_trap_handler stack_chain store_data "
                                 "async_guard_range component_context"),
    "47.0.0": ("VMStoreContext", "fuel_consumed epoch_deadline execution_version stack_limit gc_heap "
                                 "last_wasm_exit_trampoline_fp last_wasm_exit_pc last_wasm_entry_sp "
                                 "last_wasm_entry_fp last_wasm_entry_trap_handler stack_chain store_data "
                                 "async_guard_range component_context current_thread"),
}

OFFSET_CASES = [(release, name, ptr, offsets[i])
                for release, fields in VMOFFSETS.items() for name, offsets in fields.items()
                for i, ptr in enumerate((8, 4))]


@pytest.mark.parametrize("release, name, ptr, offset", OFFSET_CASES,
                         ids=[f"{r}-{n}-ptr{p}" for r, n, p, _ in OFFSET_CASES])
def test_offset_is_the_one_vmoffsets_gives(release, name, ptr, offset):
    layout = store_context_layout(release)
    [placed] = [p for p in layout.placed(ptr) if p.name == name]
    assert placed.offset == offset


@pytest.mark.parametrize("release", sorted(STRUCTS, key=release_key))
def test_field_order_is_the_rust_struct(release):
    rust_struct, names = STRUCTS[release]
    layout = store_context_layout(release)
    assert (layout.rust_struct, tuple(f.name for f in layout.fields)) == (rust_struct, tuple(names.split()))


def test_every_release_from_v0_40_has_one_store_context_and_ranges_are_contiguous():
    released = [r for r in ALL_RELEASES if release_key(r) >= (0, 40, 0)]
    owners = {r: [layout for layout in STORE_CONTEXT_LAYOUTS
                  if release_key(layout.first) <= release_key(r) <= release_key(layout.last)] for r in released}
    assert all(len(found) == 1 for found in owners.values()), {r: f for r, f in owners.items() if len(f) != 1}
    assert STORE_CONTEXT_LAYOUTS[0].first == "0.40.0" and STORE_CONTEXT_LAYOUTS[-1].last == released[-1]
    for layout in STORE_CONTEXT_LAYOUTS:
        assert layout.first in ALL_RELEASES and layout.last in ALL_RELEASES, layout


def test_a_patch_release_takes_its_major_minor_struct():
    assert store_context_layout("36.0.22") is store_context_layout("35.0.0")
    assert store_context_layout("v21") is store_context_layout("9.0.0")
    assert store_context_layout("48.0.10").placement == "repr_c"


@pytest.mark.parametrize("ptr, size", [(8, 144), (4, 88)])
def test_v48_size_is_rounded_to_align_8(ptr, size):
    assert store_context_layout("48.0.0").size(ptr) == size


def test_every_role_has_a_meaning_and_exit_entry_roles_exist_everywhere():
    for layout in STORE_CONTEXT_LAYOUTS:
        roles = layout.roles()
        assert all(r in ROLES for r in roles)
        assert "last_wasm_exit_pc" in roles and {"stack_limit", "fuel_consumed", "epoch_deadline"} <= set(roles)
        assert {"last_wasm_exit_fp", "last_wasm_exit_trampoline_fp"} & set(roles)
        assert {"last_wasm_entry_sp", "last_wasm_entry_fp"} & set(roles)


def test_the_seed_has_no_store_context():
    with pytest.raises(UnknownReleaseError) as e:
        store_context_layout("seed")
    assert e.value.version == "seed"


def test_a_pointer_size_whose_offsets_pass_u8_is_refused():
    with pytest.raises(InvalidPtrSizeError):
        store_context_layout("50.0.1").placed(64)
    with pytest.raises(InvalidPtrSizeError):
        store_context_layout("50.0.1").placed(3)


# -- the decoder ----------------------------------------------------------------------------------

def build(release, ptr, byte_order, **values):
    """The bytes of `release`'s store context with `values` (role -> int, or part -> int for aggregates)."""
    layout = store_context_layout(release)
    data = bytearray(layout.size(ptr))
    for p in layout.placed(ptr):
        value = values.get(p.role, 0)
        for name, kind, at in p.parts:
            width = ptr if kind == "usize" else (4 if kind == "u32" else 8)
            v = value.get(name, 0) if isinstance(value, dict) else value
            data[at : at + width] = v.to_bytes(width, byte_order, signed=kind == "i64")
    return bytes(data)


@pytest.mark.parametrize("release", ["0.40.0", "20.0.0", "27.0.0", "30.0.0", "36.0.0", "38.0.1", "50.0.1"])
@pytest.mark.parametrize("ptr, byte_order", [(8, "little"), (4, "big")])
def test_values_round_trip(release, ptr, byte_order):
    umax = (1 << (8 * ptr)) - 1
    data = build(release, ptr, byte_order, stack_limit=umax, fuel_consumed=-1000, epoch_deadline=5)
    d = decode_store_context(data, release, ptr=ptr, byte_order=byte_order)
    assert (d.get("stack_limit"), d.get("fuel_consumed"), d.get("epoch_deadline")) == (umax, -1000, 5)
    assert d["stack_limit"].note.startswith("usize::MAX")
    assert d.verdict.state == NOT_IN_WASM and d.verdict.sure


ENTRY = 0x7FFE_0000_1000
EXIT = {"last_wasm_exit_fp": 0x7FFE_0000_0F00, "last_wasm_exit_trampoline_fp": 0x7FFE_0000_0F00,
        "last_wasm_exit_pc": 0x7F00_0000_1234}
LIMIT = 0x7FFD_FFF8_1000
VERDICTS = [
    # release, values, state, sure
    ("50.0.1", {}, NOT_IN_WASM, True),
    ("50.0.1", {"last_wasm_entry_sp": ENTRY, "last_wasm_entry_fp": ENTRY + 64, "stack_limit": LIMIT,
                "stack_chain": {"discriminant": 1, "pointer": ENTRY + 256}}, INSIDE_WASM, True),
    ("50.0.1", {"last_wasm_entry_sp": ENTRY, "last_wasm_entry_fp": ENTRY + 64, "stack_limit": LIMIT,
                "stack_chain": {"discriminant": 1, "pointer": ENTRY + 256}, **EXIT}, IN_HOST_CALL, False),
    ("50.0.1", EXIT, UNKNOWN, False),  # an exit without an entry
    ("50.0.1", {"last_wasm_entry_sp": ENTRY}, UNKNOWN, False),  # entry SP without entry FP
    # stack_limit still usize::MAX although an entry is recorded: the state stands, not sure.
    ("50.0.1", {"last_wasm_entry_sp": ENTRY, "last_wasm_entry_fp": ENTRY + 64, "stack_limit": None,
                "stack_chain": {"discriminant": 1}}, INSIDE_WASM, False),
    ("20.0.0", {"last_wasm_entry_sp": ENTRY, "stack_limit": LIMIT}, INSIDE_WASM, True),
    ("20.0.0", {"last_wasm_entry_sp": ENTRY, "stack_limit": LIMIT, **EXIT}, IN_HOST_CALL, False),
    ("5.0.0", {"last_wasm_entry_sp": None}, NOT_IN_WASM, False),  # the v0.40-v8 host-callee sentinel
    ("20.0.0", {"last_wasm_entry_sp": None}, INSIDE_WASM, False),  # no sentinel from v9: an entry
]


@pytest.mark.parametrize("release, values, state, sure", VERDICTS, ids=range(len(VERDICTS)))
def test_verdict(release, values, state, sure):
    umax = (1 << 64) - 1
    values = {k: umax if v is None else v for k, v in values.items()}
    values.setdefault("stack_limit", umax)
    d = decode_store_context(build(release, 8, "little", **values), release)
    assert (d.verdict.state, d.verdict.sure) == (state, sure), d.verdict


def test_short_bytes_are_refused_with_the_facts():
    with pytest.raises(StoreContextError) as e:
        decode_store_context(bytes(100), "50.0.1")
    assert (e.value.release, e.value.needed, e.value.got) == ("50.0.1", 144, 100)
    with pytest.raises(ArgumentValueError):
        decode_store_context(bytes(144), "50.0.1", byte_order="middle")


# -- real Wasmtime 50, in this process ----------------------------------------------------------------

def _real_wasmtime():
    wasmtime = pytest.importorskip("wasmtime")
    if not version("wasmtime").startswith("50."):
        pytest.skip(f"needs wasmtime 50.x, found {version('wasmtime')}")
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("reads /proc/self/mem")
    return wasmtime


MAX_WASM_STACK = 512 * 1024  # Config::max_wasm_stack's default


def test_real_wasmtime_50_at_rest_inside_a_host_import_and_after():
    wasmtime = _real_wasmtime()
    from wasmtime.component import Component, Linker

    from vmctx_emu.live import scan
    from vmctx_emu.live.process import ProcessSource
    from vmctx_emu.live.store_context import store_context_of, store_context_pointer
    from vmctx_emu.live.example import COMPONENT

    from vmctx_emu.pytest_plugin import new_contexts

    before = scan(decode=False, include_freed=True).contexts
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    store.set_fuel(1000)
    store.set_epoch_deadline(5)
    linker = Linker(engine)
    seen = {}
    with ProcessSource(os.getpid()) as source:
        with linker.root() as root:
            root.add_func("add", lambda s, x: (seen.setdefault("inside", store_context_of(source, ctx)), x + 100)[1])
        instance = linker.instantiate(store, Component(engine, COMPONENT))
        [ctx] = new_contexts(before, scan(include_freed=True).contexts)  # a reused block is no new context
        name, pointer = store_context_pointer(ctx)
        rest = store_context_of(source, ctx)
        assert instance.get_func(store, "run")(store, 1) == 102
        after = store_context_of(source, ctx)
        code = [m for m in source.mappings() if m.executable]
    inside = seen["inside"]
    umax = (1 << 64) - 1

    assert name == "store_context" and rest.address == pointer and rest.layout.id == "S13"
    for d in (rest, after):
        assert (d.verdict.state, d.verdict.sure) == (NOT_IN_WASM, True), d.verdict
        assert d.get("stack_limit") == umax and d.get("last_wasm_exit_pc") == 0 and d.get("last_wasm_entry_fp") == 0
        assert d.get("stack_chain")["discriminant"] == 0
    assert (inside.verdict.state, inside.verdict.sure) == (IN_HOST_CALL, False), inside.verdict
    assert inside.verdict.evidence == ("stack_limit is not usize::MAX: agrees", "stack_chain is InitialStack: agrees")
    # The stack, growing down: limit < the trampoline's exit FP < entry SP < entry FP < the InitialStack record.
    limit, exit_fp = inside.get("stack_limit"), inside.get("last_wasm_exit_trampoline_fp")
    entry_sp, entry_fp = inside.get("last_wasm_entry_sp"), inside.get("last_wasm_entry_fp")
    assert limit < exit_fp < entry_sp < entry_fp < inside.get("stack_chain")["pointer"]
    assert 0 < entry_sp - limit <= MAX_WASM_STACK  # limit = host SP at entry - max_wasm_stack
    for role in ("last_wasm_exit_pc", "last_wasm_entry_trap_handler"):  # both in compiled code
        assert any(m.start <= inside.get(role) < m.end for m in code), (role, hex(inside.get(role)))
    # Fuel is kept as minus what is left; the epoch deadline is the current epoch (0) plus the delta.
    assert rest.get("fuel_consumed") == -1000 and rest.get("epoch_deadline") == 5
    assert rest.get("fuel_consumed") < inside.get("fuel_consumed") < after.get("fuel_consumed") < 0
    assert after.get("fuel_consumed") == -store.get_fuel()
    assert rest["gc_heap"].value == {"base": 1, "current_length": 0}
    assert rest.get("store_data") == inside.get("store_data") != 0


@pytest.mark.parametrize("release, left_set", [("37.0.0", False), ("38.0.1", True), ("45.0.0", True),
                                               ("47.0.4", True), ("48.0.0", False), ("50.0.1", False)])
def test_a_stack_chain_left_set_after_a_call_does_not_disagree_where_the_release_leaves_it(release, left_set):
    """v38.0.1 - v47 save the chain for the exit after overwriting it: InitialStack stays after the call."""
    d = decode_store_context(build(release, 8, "little", stack_limit=(1 << 64) - 1,
                                   stack_chain={"discriminant": 1, "pointer": ENTRY}), release)
    assert (d.verdict.state, d.verdict.sure) == (NOT_IN_WASM, left_set), d.verdict
