"""Hostile inputs (issue 20): cores that hide which build a mapped file was, and contexts at a mapping's edge.

Class 13: a core without a library's first page (ELF and program headers,
build-id note) cannot show that the file on disk is the one the target
mapped; code pages alone match another build that differs elsewhere. Such a
file gives no symbol names and no version, and a note says why.

Class 14: a context fewer than STORED_WINDOW bytes after the start of its
mapping keeps its shape: the read-behind stops at the mapping's start.
"""

import os
import struct
import sys
from importlib.metadata import version

import pytest

from conftest import run_cli
from cores import NT_FILE, gcore, made, rewrite_core

from vmctx_emu.live import scan
from vmctx_emu.live.images import NO_FIRST_PAGE, Images
from vmctx_emu.live.loaded import file_mappings
from vmctx_emu.live.scanner import STORED_WINDOW
from vmctx_emu.live.target import open_source

VERSION = "50.0.0"  # what wasmtime-py 50's library says
OTHER = b"48.0.0"  # the version literal of the other build planted on disk
CODE_CHANGED = 0x800000  # a file offset deep in the library's .text: the other build differs only from there
EXECUTABLE = os.path.basename(os.path.realpath(sys.executable))  # the example child's, as its mappings name it
STORED_AT = 188  # where 50's ComponentInstance keeps its VMComponentOffsets copy before the context


@pytest.fixture(scope="module")
def core(example, tmp_path_factory):
    """(a core of the example process, its mappings by file name, the context's address)."""
    pytest.importorskip("wasmtime")
    if not version("wasmtime").startswith("50."):
        pytest.skip(f"needs wasmtime 50.x, found {version('wasmtime')}")
    path = gcore(example.pid, tmp_path_factory.mktemp("images"), "example")
    with open_source(path) as src:
        mappings = src.mappings()
    files = {}
    for m in mappings:
        if m.path:
            files.setdefault(m.path, []).append(m)
    [ctx] = scan(path).contexts
    yield path, files, ctx.address
    os.unlink(path)


def first_page(files, suffix):
    """(the target's path of the file whose name ends with `suffix`, where its first page is mapped)."""
    [path] = [p for p in files if p.endswith(suffix)]
    return path, next(m.start for m in files[path] if m.offset == 0)


@pytest.fixture(scope="module")
def headless(core, tmp_path_factory):
    """The core without the first page of Wasmtime's library, of libc and of the executable."""
    path, files, _ = core
    starts = [first_page(files, name)[1] for name in ("_libwasmtime.so", "libc.so.6", EXECUTABLE)]
    rewritten = rewrite_core(path, tmp_path_factory.mktemp("headless") / "core", drop_at=starts)
    yield rewritten
    os.unlink(rewritten)


@pytest.fixture
def other_build(core, tmp_path):
    """A sysroot holding, at the library's path, another build: the same first code page, another version
    literal and other code further on."""
    _, files, _ = core
    library, _ = first_page(files, "_libwasmtime.so")
    data = bytearray(open(library, "rb").read())
    data = data.replace(VERSION.encode(), OTHER)
    data[CODE_CHANGED:CODE_CHANGED + 256] = bytes(b ^ 0xFF for b in data[CODE_CHANGED:CODE_CHANGED + 256])
    planted = tmp_path / library.lstrip("/")
    planted.parent.mkdir(parents=True)
    made(planted).write_bytes(data)
    yield tmp_path, library, planted
    planted.unlink()


def test_the_other_build_matches_the_target_where_the_old_check_looked(core, other_build):
    """The planted file is the case: the first page of its code is the target's (all the check compared without
    the file's first page), yet it is another build."""
    _, files, _ = core
    _, library, planted = other_build
    code = next(m for m in files[library] if m.executable)
    with open(library, "rb") as ours, open(planted, "rb") as theirs:
        assert os.pread(ours.fileno(), 4096, code.offset) == os.pread(theirs.fileno(), 4096, code.offset)
        assert ours.read() != theirs.read()


def test_without_its_first_page_another_build_gives_no_version_nor_names(core, headless, other_build, capsys):
    _, _, address = core
    sysroot, library, planted = other_build
    result = scan(headless, sysroot=sysroot)
    assert result.wasmtime == "49.0.0 - 51.0.0" and result.wasmtime_from.startswith("stored VMComponentOffsets")
    [ctx] = result.contexts
    assert ctx.address == address and ctx.decoded is not None
    assert ctx.points_to[8].startswith("_libwasmtime.so + 0x"), ctx.points_to[8]  # builtins: no symbol
    note = (f"the file given ({planted}) for {library} is refused: it cannot be shown to be the file the target "
            f"mapped: the target {NO_FIRST_PAGE}; 1 page of its code matches, as another build's may")
    assert note in result.notes, result.notes
    status, out, err = run_cli(["scan", "--core", headless, "--sysroot", sysroot], capsys)
    assert status == 0 and not err and f"note: {note}\n" in out
    assert OTHER.decode() not in out.splitlines()[0]


def test_without_its_first_page_even_the_right_file_is_not_trusted(core, headless):
    """The file at the path is the right one here, but the core cannot show it: the same refusal, said."""
    _, files, _ = core
    library, _ = first_page(files, "_libwasmtime.so")
    result = scan(headless)
    assert result.wasmtime == "49.0.0 - 51.0.0" and result.contexts[0].points_to[8].startswith("_libwasmtime.so + ")
    assert (f"this machine's file at {library} is refused: it cannot be shown to be the file the target mapped: "
            f"the target {NO_FIRST_PAGE}; 1 page of its code matches, as another build's may") in result.notes


def test_with_its_first_page_the_file_is_named_and_read(core):
    """The control: the whole core holds the first page, so the same file is checked and used."""
    path, _, _ = core
    result = scan(path)
    assert result.wasmtime == VERSION and not any("is refused" in n for n in result.notes), result.notes
    assert result.contexts[0].points_to[8].endswith("BUILTINS in section .data.rel.ro of _libwasmtime.so")


@pytest.mark.parametrize("name", ["libc.so.6", "executable"])
def test_any_library_without_its_first_page_is_refused_with_a_note(core, headless, name):
    """Not only Wasmtime: every file pointers are named into goes through the same check."""
    path, files, _ = core
    target_path, _ = first_page(files, EXECUTABLE if name == "executable" else name)
    for core_file, trusted in ((path, True), (headless, False)):
        with open_source(core_file) as src:
            loaded = file_mappings(src)
            images = Images(src, loaded.mappings, loaded.local, loaded.verified)
            found, why = images.trusted_file(images.images[target_path])
        if trusted:
            assert found == target_path and why.endswith("checked against the target's bytes"), why
            assert images.notes == []
        else:
            assert found is None and NO_FIRST_PAGE in why, why
            assert images.notes == [f"this machine's file at {target_path} is refused: it cannot be shown to be the "
                                    f"file the target mapped: the target {NO_FIRST_PAGE}"]


def test_an_executable_given_for_a_core_without_its_first_page_is_checked_by_its_dynamic_section(core, example,
                                                                                                  tmp_path):
    """A core with no file names and no first page of the executable (as qemu-user writes them): the file given is
    checked on its dynamic section as the loader relocated it and its entry point, and the evidence says the first
    page was not there; a copy with one dynamic entry changed is refused at that entry."""
    from vmctx_emu.errors import FileMismatchError
    from vmctx_emu.live.elf import PT_DYNAMIC, program_header_list

    path, files, _ = core
    exe = os.path.realpath(f"/proc/{example.pid}/exe")
    _, start = first_page(files, os.path.basename(exe))
    nameless = rewrite_core(path, tmp_path / "nameless", drop_notes=(NT_FILE,), drop_at=(start,))
    try:
        result = scan(nameless, exe=exe)
        assert result.wasmtime == VERSION and len(result.contexts) == 1
        assert not any("cannot be checked" in n for n in result.notes), result.notes
        with open(exe, "rb") as f:
            image = bytearray(f.read())
        phoff, phnum = struct.unpack_from("<Q", image, 0x20)[0], struct.unpack_from("<H", image, 0x38)[0]
        dynamic = next(p for p in program_header_list(bytes(image[phoff:phoff + 56 * phnum]), phnum)
                       if p.type == PT_DYNAMIC)
        image[dynamic.offset + 8] ^= 0x40  # the first entry's value
        other = tmp_path / "other-build"
        other.write_bytes(bytes(image))
        with pytest.raises(FileMismatchError) as refused:
            scan(nameless, exe=str(other))
        assert f"file offset {dynamic.offset + 8:#x} (in its dynamic section)" in str(refused.value)
    finally:
        os.unlink(nameless)


# --------------------------------------------------------------------------- class 14

@pytest.mark.parametrize("gap, shaped", [(STORED_WINDOW, True), (STORED_WINDOW // 2, True), (STORED_AT + 4, True),
                                         (STORED_AT - 12, False), (16, False)])
def test_a_context_near_its_mappings_start_keeps_its_shape(core, tmp_path, gap, shaped):
    """The mapping begins `gap` bytes before the context: the copy is found whenever it lies inside it; when it
    does not, the context is still listed, with a shape guessed from what is there (and said to be a guess) or
    none (and why)."""
    path, files, address = core
    whole = scan(path).contexts[0]
    with open_source(path) as src:
        [heap] = [m for m in src.mappings() if m.start <= address < m.end]
    # The heap's segment split in two just before the context: the rest of the heap (the store context, say)
    # stays readable, and the context's own mapping begins `gap` bytes before it.
    near = rewrite_core(path, tmp_path / "near", split_at={heap.start: address - gap})
    with open_source(near) as src:
        assert [m.start for m in src.mappings() if m.start <= address < m.end] == [address - gap]
    try:
        [ctx] = scan(near).contexts
    finally:
        os.unlink(near)
    assert ctx.address == address
    if shaped:
        assert ctx.counts == whole.counts and ctx.shape_from == whole.shape_from and ctx.decoded is not None
    else:  # the copy is not in its mapping: its shape is not stored; a guess from what is there says so
        assert ctx.shape_from != whole.shape_from
        if ctx.decoded is not None:
            assert ctx.guessed and ctx.shape_from.startswith("inferred (no copy of VMComponentOffsets in the "
                                                            f"{gap} bytes before it"), ctx.shape_from
            assert any(a.kind == "guessed_shape" for a in ctx.decoded.anomalies)
        else:
            assert ctx.notes[0].startswith(f"shape not recovered: no copy of VMComponentOffsets in the {gap} bytes "
                                           "before it"), ctx.notes