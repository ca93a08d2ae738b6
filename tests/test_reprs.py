"""Addresses in the reprs of the package's objects are hex (`0x7f0012340000`), as every other place prints
them (issue 19): contexts, dumps, getters' values, scan results, mappings, heap blocks, stored copies, symbols."""

import re

import pytest

from vmctx_emu import OwnedComponentInstance, load_dump
from vmctx_emu.checks import hex_repr
from vmctx_emu.layouts.releases import SEED
from vmctx_emu.layouts.types import VM_FUNC_REF_4
from vmctx_emu.live.heap import Allocation
from vmctx_emu.live.scanner import LiveContext
from vmctx_emu.live.shape import StoredCopy
from vmctx_emu.live.source import Mapping
from vmctx_emu.live.symbols import SymbolHit
from vmctx_emu.memory.geometry import element_tuple
from vmctx_emu.memory.reader import VMLowering

ADDRESS = 0x7F00_1234_5670
ADDRESS32 = 0x7F12_3450


def lowering():
    with OwnedComponentInstance({"num_lowerings": 1}, (0x1000, 0x2000)) as inst:
        inst.set_lowering(0, VMLowering(callee=ADDRESS, data=ADDRESS + 0x10), 0xCCC0, 7)
        return inst.lowering(0)


def func_ref():
    return element_tuple(VM_FUNC_REF_4)(ADDRESS, ADDRESS + 0x40, 7, ADDRESS)


def emulated():  # another target's layout: its address is the one given
    return OwnedComponentInstance({}, (1, 2), ptr=4, byte_order="big", address=ADDRESS32)


def dump(tmp_path):
    with emulated() as inst:
        return load_dump(inst.dump(tmp_path / "c.bin"))


CASES = {
    "getter value": (lambda tmp: lowering(), "VMLowering(callee=0x7f0012345670, data=0x7f0012345680)"),
    "func ref: pointers hex, type index decimal": (
        lambda tmp: func_ref(), "VMFuncRef(array_call=0x7f0012345670, wasm_call=0x7f00123456b0, type_index=7, "
                                "vmctx=0x7f0012345670)"),
    "dump with its address": (dump, "<DumpedContext {tmp}/c.bin at 0x7f123450, ptr=4, big-endian, 16 bytes>"),
    "emulated instance": (lambda tmp: emulated(), "<OwnedComponentInstance at 0x7f123450, ptr=4, big-endian, 16 bytes>"),
    "scan result context": (lambda tmp: LiveContext(ADDRESS, "50.0.0", SEED, counts={"num_lowerings": 1}),
                            "LiveContext(address=0x7f0012345670, wasmtime='50.0.0', layout='seed', state='unknown', "
                            "counts={'num_lowerings': 1}, image=None)"),
    "mapping": (lambda tmp: Mapping(ADDRESS, ADDRESS + 0x1000, "rw-p", 0x2000, "[heap]"),
                "Mapping(start=0x7f0012345670, end=0x7f0012346670, perms='rw-p', offset=0x2000, path='[heap]')"),
    "heap block": (lambda tmp: Allocation("in use", ADDRESS, 0x40, "[heap]", "in use"),
                   "Allocation(state='in use', chunk=0x7f0012345670, size=0x40, heap='[heap]', why='in use')"),
    "stored copy": (lambda tmp: StoredCopy(ADDRESS, {"num_lowerings": 3}, (("num_lowerings", ADDRESS + 8),), 12),
                    "StoredCopy(at=0x7f0012345670, counts={'num_lowerings': 3}, "
                    "clobbered=(('num_lowerings', 0x7f0012345678),), words=12)"),
    "symbol": (lambda tmp: SymbolHit("main", 0x10, ".text", 0x401000, 0x20),
               "SymbolHit(raw='main', offset=0x10, section='.text', value=0x401000, size=0x20)"),
}


@pytest.mark.parametrize("case", CASES)
def test_addresses_in_reprs_are_hex(case, tmp_path):
    make, expected = CASES[case]
    text = repr(make(tmp_path))
    assert text == expected.replace("{tmp}", str(tmp_path))
    assert not re.search(r"\b\d{5,}\b", text.replace(str(tmp_path), ""))  # no address in decimal
    assert "0x7f" in text or "0x401000" in text


def test_a_value_tuple_is_still_the_tuple_it_was():
    value = lowering()
    assert value == (ADDRESS, ADDRESS + 0x10) and value.callee == ADDRESS and isinstance(value, VMLowering)
    assert type(value._replace(data=1)) is VMLowering and repr(value._replace(data=1)).endswith("data=0x1)")


@pytest.mark.parametrize("value, shown", [(True, "True"), (None, "None"), ("x", "'x'"), (255, "0xff")])
def test_hex_repr_shows_only_ints_in_hex(value, shown):
    assert hex_repr(Mapping(0, 1, "r--p", 0, None), ("start",)) == \
        "Mapping(start=0x0, end=1, perms='r--p', offset=0, path=None)"
    assert hex_repr(SymbolHit(value, 0, None, 0, 0), ("raw",), fields=("raw",)) == f"SymbolHit(raw={shown})"


def test_an_unknown_heap_block_has_no_address_to_show():
    assert repr(Allocation("unknown", None, None, None, "no heap")) == \
        "Allocation(state='unknown', chunk=None, size=None, heap=None, why='no heap')"
