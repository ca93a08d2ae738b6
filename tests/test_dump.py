"""Dumps: atomic save, load with sidecar or arguments, round trips, and rejection of bad dumps."""

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmctx_emu import Component, OwnedComponentInstance, VMContextError, VMCtxEmuError, VMLowering
from vmctx_emu.dumps.decode import decode
from vmctx_emu.dumps.dump import DumpError, load_dump

SAMPLE = Component(num_lowerings=3, num_runtime_memories=1, num_runtime_reallocs=1,
                   num_runtime_post_returns=1, num_runtime_component_instances=2, num_always_trap=2)
STORE = (0x1000, 0x2000)


def populated(ptr=8, byte_order="little", debug=True):
    inst = OwnedComponentInstance(SAMPLE, STORE, ptr=ptr, byte_order=byte_order, debug_assertions=debug)
    inst.set_runtime_memory(0, 0xAB00)
    inst.set_lowering(1, VMLowering(0xC0, 0xD0), 0xE0, 9)
    inst.set_always_trap(0, 0xF0, 10)
    inst.instance_flags(1).may_enter = False
    return inst


GETTERS = [("store", None), ("instance_flags", 0), ("instance_flags", 1), ("runtime_memory", 0),
           ("runtime_realloc", 0), ("runtime_post_return", 0), ("lowering", 0), ("lowering", 1),
           ("lowering_anyfunc", 1), ("lowering_anyfunc", 2), ("always_trap_anyfunc", 0),
           ("always_trap_anyfunc", 1)]


def outcome(obj, name, index):
    try:
        value = getattr(obj, name)() if index is None else getattr(obj, name)(index)
    except VMContextError as e:
        return ("error", str(e))
    return ("value", value.value if name == "instance_flags" else value)


@pytest.mark.parametrize("ptr, byte_order, debug", [(8, "little", True), (4, "big", True),
                                                    (8, "big", False), (4, "little", False)])
def test_round_trip_every_getter_equal(tmp_path, ptr, byte_order, debug):
    inst = populated(ptr, byte_order, debug)
    path = inst.dump(tmp_path / "ctx.bin")
    loaded = load_dump(path)
    assert loaded.to_bytes() == inst.to_bytes()
    assert (loaded.ptr, loaded.byte_order, loaded.vmctx, loaded.debug_assertions) == (
        ptr, byte_order, inst.vmctx, debug)
    assert loaded.offsets.component == SAMPLE
    for name, index in GETTERS:
        assert outcome(loaded, name, index) == outcome(inst, name, index), (name, index)
    for region in inst.offsets.regions():
        assert loaded.view(region.name).tolist() == inst.view(region.name).tolist()


def test_sidecar_contents(tmp_path):
    inst = populated(4, "big")
    inst.dump(tmp_path / "ctx.bin")
    meta = json.loads((tmp_path / "ctx.bin.json").read_text())
    assert meta["format_version"] == 1 and meta["ptr_size"] == 4 and meta["byte_order"] == "big"
    assert meta["counts"] == SAMPLE.counts() and meta["debug_assertions"] is True
    assert meta["address"] == hex(inst.vmctx) and meta["size_of_vmctx"] == inst.offsets.size_of_vmctx()


def test_dump_is_atomic_no_half_file_on_failure(tmp_path, monkeypatch):
    inst = populated()
    target = tmp_path / "ctx.bin"
    target.write_bytes(b"old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(DumpError, match=f"cannot write dump {target}: disk full"):
        inst.dump(target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx.bin"]


def test_dumped_context_is_read_only(tmp_path):
    loaded = load_dump(populated().dump(tmp_path / "c.bin"))
    with pytest.raises(VMContextError, match="read-only"):
        loaded.instance_flags(0).may_enter = False
    with pytest.raises(ValueError):
        loaded.view("flags")[0] = 0
    assert not hasattr(loaded, "set_runtime_memory")


def test_arguments_win_over_sidecar_and_are_required_without_one(tmp_path):
    inst = populated()
    path = inst.dump(tmp_path / "c.bin")
    with pytest.raises(DumpError, match=r"needs size_of_vmctx\(\)=\d+"):
        load_dump(path, ptr=4)
    os.unlink(str(path) + ".json")
    with pytest.raises(DumpError, match="no component counts or pointer size given"):
        load_dump(path)
    with pytest.raises(DumpError, match="no pointer size given"):
        load_dump(path, component=SAMPLE)
    loaded = load_dump(path, component=SAMPLE, ptr=8, byte_order="little")
    assert loaded.vmctx is None and loaded.runtime_memory(0) == 0xAB00


@pytest.mark.parametrize("mutate, needle", [
    (lambda b: b[:-1], "255 bytes, but the layout (ptr_size=8, num_lowerings=3"),
    (lambda b: b[:10], "needs size_of_vmctx()=256: truncated"),
    (lambda b: b + b"\0", "too long (padded?)"),
    (lambda b: b"core" + b[4:], "a core module's VMContext magic"),
    (lambda b: bytes(len(b)), "all zeros"),
])
def test_bad_dumps_rejected(tmp_path, mutate, needle):
    path = populated().dump(tmp_path / "c.bin")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(mutate(data))
    with pytest.raises(VMCtxEmuError) as e:
        load_dump(path)
    assert needle in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize("sidecar, needle", [
    ("{not json", "not readable JSON"),
    ('{"format_version": 99}', "format_version 99 is not 1"),
    ('{"format_version": 1, "ptr_size": 8, "counts": {"num_bogus": 1}}', "counts must map"),
    ('{"format_version": 1, "ptr_size": 3, "counts": {}}', "pointer size 3 is not supported"),
    ('{"format_version": 1, "ptr_size": 8, "counts": {"num_lowerings": -1}}', "num_lowerings must be in"),
])
def test_bad_sidecars_rejected(tmp_path, sidecar, needle):
    path = populated().dump(tmp_path / "c.bin")
    (tmp_path / "c.bin.json").write_text(sidecar)
    with pytest.raises(DumpError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_dump(path)


def test_missing_dump_file():
    with pytest.raises(DumpError, match="cannot read dump /nonexistent/x.bin"):
        load_dump("/nonexistent/x.bin")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), ptr=st.sampled_from([4, 8]), order=st.sampled_from(["little", "big"]),
       shape=st.builds(Component, **{n: st.integers(0, 4) for n in SAMPLE.counts()}),
       force=st.booleans(), debug=st.booleans())
def test_fuzz_load_and_decode_never_crash(tmp_path, data, ptr, order, shape, force, debug):
    path = tmp_path / "fuzz.bin"
    path.write_bytes(data)
    try:
        ctx = load_dump(path, component=shape, ptr=ptr, byte_order=order, check_magic=not force,
                        debug_assertions=debug)
    except VMCtxEmuError:
        return
    decoded = decode(ctx)
    assert len(decoded.records) > 0
    assert all(isinstance(a.message, str) for a in decoded.anomalies)


# -- the memory layer knows no dump format: it calls the writer the layer above registers ----------------


def test_the_memory_layer_imports_nothing_of_the_dumps_layer():
    """The one arrow that pointed up (memory/instance.py imported dumps/dump.py) is gone."""
    import ast
    import pathlib

    import vmctx_emu.memory

    for path in pathlib.Path(vmctx_emu.memory.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            assert not any("dumps" in name for name in names), (path.name, names)


def test_instance_dump_calls_the_registered_writer(tmp_path):
    from vmctx_emu.memory import dump_writer, register_dump_writer

    seen, registered = [], dump_writer()
    register_dump_writer(lambda ctx, path: seen.append((ctx, path)) or "written")
    try:
        inst = OwnedComponentInstance(SAMPLE, STORE)
        assert inst.dump(tmp_path / "ctx.bin") == "written" and seen == [(inst, tmp_path / "ctx.bin")]
    finally:
        register_dump_writer(registered)
    assert load_dump(inst.dump(tmp_path / "ctx.bin")).to_bytes() == inst.to_bytes()


def test_an_instance_imported_alone_dumps_through_the_dumps_layer(tmp_path):
    """The top level registers the dumps layer's writer; importing the instance alone does not load it."""
    import subprocess
    import sys

    code = ("import sys\nfrom vmctx_emu.memory.instance import OwnedComponentInstance\n"
            "assert 'vmctx_emu.dumps.dump' not in sys.modules\n"
            "from vmctx_emu.layouts.releases import Component\n"
            f"OwnedComponentInstance(Component(), (1, 2)).dump({str(tmp_path / 'ctx.bin')!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert load_dump(tmp_path / "ctx.bin").store() == (1, 2)
