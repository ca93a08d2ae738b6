"""The fast paths of issue 12 give the answers of the plain ones: decode's views and padding check,
the streamed table, cached getters/setters/flag bits, small-fill initialisation, lazy imports."""

import io
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vmctx_emu.describe.records as records
import vmctx_emu.memory.instance as instance_module
from vmctx_emu import (ArgumentTypeError, ClosedError, Component, ComponentIndexError, OwnedComponentInstance,
                       VMContextError, VMLowering, load_dump, wasmtime_layout)
from vmctx_emu.cli import main
from vmctx_emu.describe import decoded_table, decoded_table_chunks, hex_value, interpretation
from vmctx_emu.dumps.decode import Anomaly, Interp, _covered, _runs, _where, decode
from vmctx_emu.dumps.dump import DumpedContext

SHAPE = dict(num_lowerings=12, num_runtime_component_instances=3, num_always_trap=2, num_runtime_memories=11,
             num_runtime_reallocs=1, num_runtime_post_returns=1)


def _instance(ptr=8, byte_order="little", debug=True, n=12):
    return OwnedComponentInstance(Component(**dict(SHAPE, num_lowerings=n)), (1, 2), ptr=ptr, byte_order=byte_order,
                                  debug_assertions=debug)


def _dumped(inst, data=None):
    return DumpedContext(inst.to_bytes() if data is None else data, inst.offsets.component, inst.ptr,
                         inst.byte_order, address=inst.vmctx, debug_assertions=inst.debug_assertions)


def _reference_table(decoded, points_to=None):
    """The table line by line from the materialised records, as `decoded_table` always printed it."""
    ctx = decoded.ctx
    points_to = points_to or {}
    lines = [f"VMComponentContext at {ctx.vmctx:#x}: ptr_size={int(ctx.ptr)}, {ctx.byte_order}-endian, "
             f"{ctx.offsets.size_of_vmctx()} bytes, {'debug' if ctx.debug_assertions else 'release'}",
             (f"{'address':>18}  " if points_to else "") + f"{'offset':>8}  {'field':<34} {'raw':<18}  interpretation"]
    for r in decoded.records:
        column, value, offset, code = decoded.columns[r["column"]], int(r["value"]), int(r["offset"]), int(r["interp"])
        text = interpretation(code, value, ctx)
        if offset in points_to:
            text = points_to[offset] if code == Interp.POINTER else f"{text}: {points_to[offset]}"
        lines.append((f"{ctx.vmctx + offset:#018x}  " if points_to else "")
                     + f"{offset:8d}  {column.label(int(r['index'])):<34} {hex_value(column, value, ctx):<18}  {text}")
    lines.append("anomalies: none" if not decoded.anomalies else f"anomalies: {len(decoded.anomalies)}")
    lines += [f"  @{a.offset}: {a.message}" for a in decoded.anomalies]
    return "\n".join(lines)


def test_decode_keeps_views_of_the_dump_and_builds_records_on_first_use():
    inst = _instance()
    inst.set_lowering(3, VMLowering(0x10, 0x20), 0x30, 7)
    ctx = _dumped(inst)
    decoded = decode(ctx)
    memory = np.frombuffer(ctx.memory, np.uint8)
    assert all(np.shares_memory(v, memory) for (region, sub), v in decoded.values.items() if sub != "flags")
    assert decoded._records is None and decoded._covered is None
    chunks = np.concatenate(list(decoded.chunks(size=7)))
    assert len(decoded.records) == len(decoded) == len(chunks)
    for name in decoded.records.dtype.names:
        assert decoded.records[name].tolist() == chunks[name].tolist()


def _padding_reference(ctx):
    data = np.frombuffer(ctx.memory, np.uint8)
    decoded = decode(ctx)
    runs = _runs((data != 0) & ~_covered(ctx, decoded.blocks))[:8]
    return [Anomaly("padding", a, f"non-zero padding bytes at offsets {a}..{b - 1} (in {_where(ctx, a)}): "
                                  f"{bytes(ctx.memory[a:b]).hex(' ')}") for a, b in runs]


@settings(max_examples=60, deadline=None)
@given(ptr=st.sampled_from([4, 8]), order=st.sampled_from(["little", "big"]),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=12))
def test_padding_anomalies_match_the_full_byte_mask(ptr, order, flips):
    inst = _instance(ptr, order)
    data = bytearray(inst.to_bytes())
    covered = _covered(inst, decode(inst).blocks)
    holes = np.flatnonzero(~covered)
    for at, value in flips:
        data[int(holes[at % len(holes)])] = value
    ctx = _dumped(inst, bytes(data))
    assert [a for a in decode(ctx).anomalies if a.kind == "padding"] == _padding_reference(ctx)


@pytest.mark.parametrize("min_run", [0, records.MIN_RUN, 10**9])
@pytest.mark.parametrize("ptr,order,debug", [(8, "little", True), (4, "big", True), (8, "little", False)])
def test_table_chunks_match_the_line_by_line_table(monkeypatch, min_run, ptr, order, debug):
    monkeypatch.setattr(records, "MIN_RUN", min_run)
    inst = _instance(ptr, order, debug, n=1203)  # indices gain digits at 10, 100 and 1000
    limit = 1 << (8 * ptr)
    for i in range(0, 1203, 3):
        inst.set_lowering(i, VMLowering((i * 7919) % (limit - 1) + 1, 1 + i), 0x1000 + i,
                          [0, 9, 12345, 4294967295][i % 4])
    for i in range(0, 11, 2):
        inst.set_runtime_memory(i, 0x2000 * (i + 1))
    decoded = decode(_dumped(inst))
    text = "".join(decoded_table_chunks(decoded, rows=256))
    assert text == _reference_table(decoded) + "\n"
    assert decoded_table(decoded) == text[:-1]
    assert b"".join(bytes(c) for c in decoded_table_chunks(decoded, rows=256, binary=True)) == text.encode()


def test_table_with_points_to_keeps_the_address_column_and_pointer_texts():
    inst = _instance()
    inst.set_lowering(4, VMLowering(0x10, 0x20), 0x30, 7)
    decoded = decode(_dumped(inst))
    points_to = {inst.offsets.lowering_callee(4): "callee in .text", inst.offsets.lowering_anyfunc(4) + 16: "self"}
    assert decoded_table(decoded, points_to) == _reference_table(decoded, points_to)
    assert "callee in .text" in decoded_table(decoded, points_to)


class _BinaryOut(io.StringIO):
    """A text stream with a binary `buffer`, recording each write to it."""

    def __init__(self):
        super().__init__()
        self.buffer = self
        self.writes = []

    def write(self, data):
        self.writes.append(bytes(data) if not isinstance(data, str) else data.encode())
        return len(data)


def test_cli_decode_streams_the_table_in_chunks(tmp_path):
    inst = _instance(n=40_000)
    path = tmp_path / "big.bin"
    inst.dump(path)
    out = _BinaryOut()
    assert main(["decode", str(path)], out=out) == 0
    text = decoded_table(decode(load_dump(path))) + "\n"
    assert len(out.writes) > 2 and max(map(len, out.writes)) < len(text) // 2
    assert b"".join(out.writes) == text.encode()
    plain = io.StringIO()
    assert main(["decode", str(path)], out=plain) == 0
    assert plain.getvalue() == text


@pytest.mark.parametrize("ptr,order", [(8, "little"), (4, "little"), (8, "big"), (4, "big")])
@pytest.mark.parametrize("debug", [True, False])
def test_cached_getters_and_setters_agree_with_the_bytes(ptr, order, debug):
    inst = _instance(ptr, order, debug)
    fmt = ("<" if order == "little" else ">") + ("Q" if ptr == 8 else "I")

    for i, m in ((0, 0), (5, 5), (11, 10)):
        inst.set_lowering(i, VMLowering(0x100 + i, 0x200 + i), 0x300 + i, i)
        inst.set_runtime_memory(np.int64(m), 0x400 + i)  # a numpy index takes the checked path
        assert inst.lowering(i) == VMLowering(0x100 + i, 0x200 + i)
        assert inst.runtime_memory(m) == 0x400 + i
        at = inst.offsets.lowering(i)
        assert struct.unpack_from(fmt + fmt[1], inst.memory, at) == (0x100 + i, 0x200 + i)
        assert struct.unpack_from(fmt, inst.memory, inst.offsets.lowering_anyfunc(i) + 2 * ptr)[0] == inst.vmctx
    if debug:
        with pytest.raises(VMContextError, match="already holds"):
            inst.set_lowering(5, VMLowering(1, 2), 3, 4)
        with pytest.raises(VMContextError, match="read before it was set"):
            inst.lowering(1)
    with pytest.raises(ComponentIndexError):
        inst.lowering(12)
    with pytest.raises(ArgumentTypeError):
        inst.runtime_memory(True)
    with pytest.raises(ArgumentTypeError):
        inst.set_lowering(1, VMLowering(1, 2), 3)
    with pytest.raises(ArgumentTypeError):
        inst.set_lowering(1, VMLowering(1, 2), 3, 4, 5)
    flags = inst.instance_flags(2)
    flags.may_enter = False
    assert not flags.may_enter and flags.may_leave
    flags.may_enter = True
    assert flags.may_enter
    inst.close()
    assert inst.words == {}  # every typed view the short paths read is dropped
    for call in (lambda: inst.lowering(0), lambda: inst.runtime_memory(0),
                 lambda: inst.set_runtime_memory(1, 5), lambda: flags.may_enter):
        with pytest.raises(ClosedError):
            call()


def test_a_dump_reads_its_flags_and_getters_through_the_cached_views(tmp_path):
    inst = _instance()
    inst.set_lowering(2, VMLowering(5, 6), 7, 8)
    inst.instance_flags(1).may_enter = False
    ctx = _dumped(inst)
    assert ctx.lowering(2) == VMLowering(5, 6)
    assert not ctx.instance_flags(1).may_enter and ctx.instance_flags(0).may_enter
    with pytest.raises(VMContextError, match="read-only"):
        ctx.instance_flags(0).may_enter = False


@pytest.mark.parametrize("release", ["seed", "39.0.0", "50.0.1"])
@pytest.mark.parametrize("ptr,order", [(8, "little"), (4, "big")])
def test_small_fill_initialisation_writes_the_numpy_bytes(monkeypatch, release, ptr, order):
    layout = wasmtime_layout(release)
    counts = {name: 3 for name in layout.count_names}
    kwargs = dict(ptr=ptr, byte_order=order)
    if release == "seed":
        kwargs["store"] = (1, 2)
    else:
        kwargs["wasmtime"] = release
        kwargs["header"] = {n: (0x10, 0x20) if n == "store" else 0x1000 * (k + 1)
                            for k, n in enumerate(layout.header_names())}
    fast = OwnedComponentInstance(counts, **kwargs).to_bytes()
    monkeypatch.setattr(instance_module, "_SMALL_FILL", 0)
    assert OwnedComponentInstance(counts, **kwargs).to_bytes() == fast


def test_import_vmctx_emu_does_not_import_numpy():
    code = ("import sys, vmctx_emu; assert 'numpy' not in sys.modules, 'numpy imported'; "
            "assert set(vmctx_emu.__all__) <= set(dir(vmctx_emu)); "
            "from vmctx_emu import OwnedComponentInstance, VMComponentOffsets; "
            "assert 'numpy' in sys.modules; print('ok')")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "ok\n"
    import vmctx_emu

    with pytest.raises(AttributeError, match="no_such_name"):
        vmctx_emu.no_such_name  # noqa: B018
