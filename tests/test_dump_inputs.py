"""Bad dump files, sidecars and `load_dump` arguments: each refused at the boundary with one package error."""

import json
import os
import resource
import time

import pytest

from vmctx_emu import Component, OwnedComponentInstance
from vmctx_emu.dumps.decode import decode
from vmctx_emu.describe import decoded_doc, decoded_table, hexdump_lines
from vmctx_emu.dumps.dump import DumpError, load_dump, read_dump_bytes
from vmctx_emu.dumps.sidecar import MAX_SIDECAR_BYTES
from vmctx_emu.errors import ArgumentTypeError, ArgumentValueError, VMCtxEmuError

SHAPE = Component(num_lowerings=2, num_runtime_memories=1)


@pytest.fixture
def dumped(tmp_path):
    inst = OwnedComponentInstance(SHAPE, (0x1000, 0x2000), ptr=8)
    return inst, inst.dump(tmp_path / "ctx.bin")


def sidecar(path):
    with open(f"{path}.json") as f:
        return json.load(f)


def write_sidecar(path, meta):
    with open(f"{path}.json", "w") as f:
        f.write(meta if isinstance(meta, str) else json.dumps(meta))


# -- size and file type checked before reading ------------------------------


def test_read_dump_bytes_refuses_a_device_without_reading_it():
    start = time.perf_counter()
    with pytest.raises(DumpError, match="cannot read dump /dev/zero: not a regular file"):
        read_dump_bytes("/dev/zero")
    assert time.perf_counter() - start < 1


def test_read_dump_bytes_reads_a_device_when_allowed_up_to_the_limit():
    with pytest.raises(DumpError, match="dump /dev/zero has more than the 100 bytes"):
        read_dump_bytes("/dev/zero", 100, allow_special=True)


def test_load_dump_refuses_dev_zero(tmp_path):
    with pytest.raises(DumpError, match="/dev/zero: not a regular file"):
        load_dump("/dev/zero", component=SHAPE, ptr=8)


def test_sparse_huge_dump_refused_from_its_size(tmp_path, dumped):
    """A sparse 3 GB file costs neither 3 GB nor seconds: the size is checked first."""
    inst, path = dumped
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(3 << 30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(DumpError, match=f"dump {big} is 3,221,225,472 bytes, more than the 1,000 bytes"):
        read_dump_bytes(big, 1000)
    with pytest.raises(DumpError, match=r"3221225472 bytes, but the layout .* too long"):
        load_dump(big, component=SHAPE, ptr=8)
    os.replace(f"{path}.json", f"{big}.json")
    with pytest.raises(DumpError, match=r"3221225472 bytes, but the layout .* too long"):
        load_dump(big)
    assert time.perf_counter() - start < 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB
    big.unlink()  # sparse, but 3 GB apparent: not left for the next runs


def test_read_dump_bytes_reads_what_fits(dumped):
    inst, path = dumped
    assert read_dump_bytes(path) == inst.to_bytes() == read_dump_bytes(path, len(inst.to_bytes()))


@pytest.mark.parametrize("limit, error", [(-1, ArgumentValueError), (1.5, ArgumentTypeError), ("10", ArgumentTypeError)])
def test_read_dump_bytes_limit_checked(dumped, limit, error):
    with pytest.raises(error, match="limit must"):
        read_dump_bytes(dumped[1], limit)


def test_read_dump_bytes_directory_named(tmp_path):
    with pytest.raises(DumpError, match=f"cannot read dump {tmp_path}: it is a directory"):
        read_dump_bytes(tmp_path)


def test_oversized_sidecar_refused(dumped):
    inst, path = dumped
    write_sidecar(path, " " * (MAX_SIDECAR_BYTES + 1) + "{}")
    with pytest.raises(DumpError, match=f"sidecar {path}.json is {MAX_SIDECAR_BYTES + 3:,} bytes, more than"):
        load_dump(path)


# -- the sidecar's schema ------------------------------------------------------


@pytest.mark.parametrize("key, value, needle", [
    ("counts", 5, "counts 5 is not an object"),
    ("counts", [1, 2], "counts [1, 2] is not an object"),
    ("counts", {"num_lowerings": "2"}, "num_lowerings must be an int"),
    ("counts", {"num_lowerings": 2.0}, "num_lowerings must be an int"),
    ("counts", {"num_lowerings": True}, "num_lowerings must be an int"),
    ("address", "0x10zz", "address '0x10zz' is not a hex string"),
    ("address", -5, "address -0x5 is outside [0, 2**64)"),
    ("address", 1 << 64, "address 0x10000000000000000 is outside [0, 2**64)"),
    ("address", "0x10000000000000000", "is outside [0, 2**64)"),
    ("address", 1.5, "address 1.5 is not null or a hex string"),
    ("address", [16], "address [16] is not null or a hex string"),
    ("debug_assertions", "yes", 'debug_assertions "yes" is not a JSON bool'),
    ("debug_assertions", "false", 'debug_assertions "false" is not a JSON bool'),
    ("debug_assertions", 0, "debug_assertions 0 is not a JSON bool"),
    ("format_version", True, "format_version true is not 1 (a JSON integer)"),
    ("format_version", 1.0, "format_version 1.0 is not 1 (a JSON integer)"),
    ("format_version", "1", 'format_version "1" is not 1'),
    ("format", "something else", "format \"something else\" is not the string 'vmctx-emu dump'"),
    ("layout", "v0.40", "layout 'v0.40' contradicts wasmtime 'seed'"),
    ("layout", 7, "layout 7 is not a layout id string"),
    ("wasmtime", "99.0.0", "wasmtime '99.0.0'"),
    ("wasmtime", 21, "wasmtime 21 is not a release string"),
    ("size_of_vmctx", 5, "size_of_vmctx 5 contradicts its own layout"),
    ("size_of_vmctx", "5", 'size_of_vmctx "5" is not an integer'),
    ("ptr_size", True, "ptr_size true is not a pointer size"),
    ("ptr_size", "8", 'ptr_size "8" is not a pointer size'),
    ("ptr_size", 2, "ptr_size 2 is not one of the dumpable sizes (4, 8)"),
    ("ptr_size", 3, "pointer size 3 is not supported"),
    ("byte_order", "middle", 'byte_order "middle" is not "little" or "big"'),
    ("commit", "../../etc/passwd", 'commit "../../etc/passwd" is not 16 hex digits'),
    ("bogus", 1, "unknown key(s) 'bogus'"),
    ("counts", None, "'counts' is missing"),
    ("ptr_size", None, "'ptr_size' is missing"),
])
def test_sidecar_checked_against_its_schema(dumped, key, value, needle):
    inst, path = dumped
    meta = sidecar(path)
    if value is None and key in ("counts", "ptr_size"):
        del meta[key]
    else:
        meta[key] = value
    write_sidecar(path, meta)
    with pytest.raises(DumpError) as e:
        load_dump(path)
    assert needle in str(e.value) and f"{path}.json" in str(e.value)


def test_sidecar_without_a_release_whose_layout_is_another_names_the_seed(dumped):
    """A KeyError once: with "wasmtime" absent the contradiction was told with the key that was not there."""
    inst, path = dumped
    meta = sidecar(path)
    del meta["wasmtime"]
    meta["layout"] = "L1"
    write_sidecar(path, meta)
    with pytest.raises(DumpError, match="layout 'L1' contradicts wasmtime 'seed', whose layout is 'seed'"):
        load_dump(path)


def test_sidecar_without_counts_is_not_reported_as_no_sidecar(dumped):
    inst, path = dumped
    meta = sidecar(path)
    del meta["counts"]
    write_sidecar(path, meta)
    with pytest.raises(DumpError) as e:
        load_dump(path)
    assert "no sidecar" not in str(e.value) and "'counts' is missing" in str(e.value)


def test_sidecar_address_beyond_32_bits_for_4_byte_pointers(tmp_path):
    inst = OwnedComponentInstance(SHAPE, (0x1000, 0x2000), ptr=4)
    path = inst.dump(tmp_path / "ctx.bin")
    meta = sidecar(path)
    meta["address"] = "0x100000000"
    write_sidecar(path, meta)
    with pytest.raises(DumpError, match=r"address 0x100000000 is outside \[0, 2\*\*32\) for ptr_size 4"):
        load_dump(path)


@pytest.mark.parametrize("text", ["[" * 20_000 + "]" * 20_000, '{"a":' * 5_000 + "1" + "}" * 5_000])
def test_deeply_nested_sidecar_is_a_dump_error(dumped, text):
    inst, path = dumped
    write_sidecar(path, text)
    with pytest.raises(DumpError, match="not readable JSON|expected a JSON object|nested too deeply"):
        load_dump(path)


@pytest.mark.parametrize("text, needle", [("[]", "expected a JSON object, found an array"),
                                          ("null", "expected a JSON object, found null"),
                                          ("\xff", "not readable JSON")])
def test_sidecar_not_an_object(dumped, text, needle):
    inst, path = dumped
    with open(f"{path}.json", "w", encoding="latin-1") as f:
        f.write(text)
    with pytest.raises(DumpError, match=needle):
        load_dump(path)


def test_good_sidecar_values_load_and_format(dumped):
    """What the schema lets through formats everywhere (table, JSON doc, hexdump)."""
    inst, path = dumped
    meta = sidecar(path)
    meta["address"] = 4096
    write_sidecar(path, meta)
    ctx = load_dump(path)
    assert ctx.vmctx == 4096
    decoded = decode(ctx)
    assert "at 0x1000" in decoded_table(decoded)
    assert decoded_doc(decoded)["layout"]["address"] == "0x1000"
    assert list(hexdump_lines(ctx))


# -- load_dump's arguments -----------------------------------------------------


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"address": "0x10"}, ArgumentTypeError, "address must be an int"),
    ({"address": 1.5}, ArgumentTypeError, "address must be an int"),
    ({"address": True}, ArgumentTypeError, "address must be an int"),
    ({"address": -1}, ArgumentValueError, "address must be an int in [0, 2**64)"),
    ({"address": 1 << 64}, ArgumentValueError, "address must be an int in [0, 2**64) for pointer size 8"),
    ({"address": 1 << 32, "ptr": 4}, ArgumentValueError, "address must be an int in [0, 2**32) for pointer size 4"),
    ({"counts": 5}, ArgumentTypeError, "counts must be a mapping"),
    ({"counts": ["num_lowerings"]}, ArgumentTypeError, "counts must be a mapping"),
    ({"counts": {"num_lowerings": "2"}}, ArgumentTypeError, "counts['num_lowerings'] must be an int"),
    ({"counts": {"num_lowerings": -2}}, ArgumentValueError, "counts['num_lowerings'] must be in [0, 2**32)"),
    ({"counts": {3: 1}}, ArgumentTypeError, "counts: names must be str"),
    ({"debug_assertions": "false"}, ArgumentTypeError, "debug_assertions must be a bool"),
    ({"check_magic": 0}, ArgumentTypeError, "check_magic must be a bool"),
    ({"byte_order": "middle"}, ArgumentValueError, "byte_order must be 'little' or 'big'"),
    ({"wasmtime": 21}, ArgumentTypeError, "wasmtime must be a release string"),
])
def test_load_dump_arguments_checked_at_the_boundary(dumped, kwargs, error, needle):
    inst, path = dumped
    if kwargs.get("ptr") == 4:
        path = OwnedComponentInstance(SHAPE, (0x1000, 0x2000), ptr=4).dump(path)
    with pytest.raises(error) as e:
        load_dump(path, **kwargs)
    assert needle in str(e.value) and isinstance(e.value, VMCtxEmuError)


def test_load_dump_path_checked(dumped):
    with pytest.raises(ArgumentTypeError, match="path must be a str or os.PathLike, got int 5"):
        load_dump(5)


# -- fuzz-found crashes, one regression test each --------------------------------


@pytest.mark.parametrize("address", ["0x10", 1.5, [16], True])
def test_dumped_context_address_of_wrong_type_is_refused_before_any_formatting(address):
    """A str/float address reached `f"{address:#x}"` in layout_parameters, magic_mismatch_message and
    decoded_table ("Unknown format code 'x'"), and `int('0x10')` in the decoder's anomalies."""
    data = OwnedComponentInstance(SHAPE, (0x1000, 0x2000), ptr=8).to_bytes()
    from vmctx_emu.dumps.dump import DumpedContext

    with pytest.raises(ArgumentTypeError, match="address must be an int"):
        DumpedContext(data, SHAPE, 8, "little", address=address)


def test_sidecar_hex_address_is_parsed_once_and_formats_everywhere(dumped):
    inst, path = dumped
    meta = sidecar(path)
    meta["address"] = "0x10"
    write_sidecar(path, meta)
    ctx = load_dump(path, check_magic=False)
    assert ctx.vmctx == 16 and ctx.layout_parameters()["address"] == "0x10"
    decoded = decode(ctx)
    assert "foreign_vmctx" not in {a.kind for a in decoded.anomalies} or all(
        "is not this context (0x10)" in a.message for a in decoded.anomalies if a.kind == "foreign_vmctx")
    assert decoded_table(decoded).startswith("VMComponentContext at 0x10:")


def test_flags_of_a_dump_without_address_say_so(tmp_path):
    """`None + int` in InstanceFlags.as_raw: a dump without an address has no flag addresses."""
    inst = OwnedComponentInstance(Component(num_runtime_component_instances=1), (0x1000, 0x2000), ptr=8)
    path = inst.dump(tmp_path / "ctx.bin")
    meta = sidecar(path)
    meta["address"] = None
    write_sidecar(path, meta)
    flag = load_dump(path).instance_flags(0)
    with pytest.raises(VMCtxEmuError, match="address is unknown"):
        flag.as_raw()
    assert repr(flag) == "<InstanceFlags 0: MAY_LEAVE|MAY_ENTER>"


@pytest.mark.parametrize("counts", [5, "num_lowerings", [("num_lowerings", 1)]])
def test_sidecar_counts_that_are_not_an_object(dumped, counts):
    """"'int' object is not iterable" in load_dump, for counts that are not a JSON object."""
    inst, path = dumped
    meta = sidecar(path)
    meta["counts"] = counts
    write_sidecar(path, meta)
    with pytest.raises(DumpError, match="counts .* is not an object of count name -> u32"):
        load_dump(path)


def test_load_dump_reads_a_special_file_only_when_allowed_and_only_the_layouts_size(tmp_path):
    """/dev/zero never ends: with allow_special only size_of_vmctx() + 1 bytes are read, and it is too long."""
    with pytest.raises(DumpError, match=r"/dev/zero: \d+ bytes, but the layout .* too long"):
        load_dump("/dev/zero", component=SHAPE, ptr=8, allow_special=True, check_magic=False)
    with pytest.raises(ArgumentTypeError, match="allow_special must be a bool"):
        load_dump("/dev/zero", component=SHAPE, ptr=8, allow_special="yes")


def test_dump_of_a_context_made_from_a_layout_object_loads(tmp_path):
    """The sidecar named the release by the layout's repr, which no reader could resolve. It names the
    release the instance stands for (a layout's newest, as `release_of` says), whose protocol it follows."""
    from vmctx_emu.layouts.releases import LAYOUTS

    layout = LAYOUTS[3]
    inst = OwnedComponentInstance({}, ptr=8, wasmtime=layout,
                                  header={n: (1, 2) if n == "store" else 0x1000 for n in layout.header_names()})
    ctx = load_dump(inst.dump(tmp_path / "ctx.bin"))
    assert ctx.layout.id == layout.id and ctx.to_bytes() == inst.to_bytes()
    assert sidecar(tmp_path / "ctx.bin")["wasmtime"] == layout.last == inst.wasmtime == ctx.wasmtime
