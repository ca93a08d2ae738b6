"""Bad input to `scan`, through the CLI and through `vmctx_emu.live.scan`: one line or a note, never a traceback.

Each bad input goes through `vmctx_emu.live.scan(...)` and `vmctx-emu scan ...`
(in-process `cli.main`, or a subprocess where it must be one: another uid, a
terminal, a FIFO that would hang). The contract checked:

* Exit status 2, and from the API an exception, only when the scan could not
  produce a result at all: the target cannot be opened or is not a 64-bit
  little-endian x86-64/aarch64 core, no such process, no permission, the
  process exited during the scan, no Wasmtime (or no supported release) in it,
  a core whose notes naming the mapped files are lost. The CLI prints exactly
  one line on stderr, `vmctx-emu scan: error: ...` (`vmctx-emu: error:
  argument --wasmtime: ...` for an unsupported `--wasmtime`), naming the target
  (pid N / the core's path) and the reason; nothing on stdout.
* A partial failure is exit status 0 with the result and notes: memory the
  core lacks is a top-level note (`0x..: truncated core file: ...`), a context
  whose shape cannot be recovered or whose bytes cannot be read is a note of
  that context; stderr stays empty. Zero contexts found is also exit 0.
* The progress line goes to stderr only, only when stderr is a terminal and
  (with --json) stdout is not one, and is erased before anything else is
  written.

One real Wasmtime process (`python -m vmctx_emu.live.example`) and one gcore
of it serve the module; the damaged cores are cut copies, or the core itself
patched in place on a scratch copy and restored after each case.
"""

import contextlib
import errno
import gzip
import io
import json
import os
import platform
import pty
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import tty
from importlib.metadata import PackageNotFoundError, version

import pytest

from vmctx_emu import cli
from vmctx_emu.errors import AccessDeniedError, CoreFileError, NoSuchProcessError, ProcessGoneError
from vmctx_emu.live import ScanError, identify, process, scan, source
from vmctx_emu.live.target import open_source

from cores import gcore, made

if sys.platform != "linux" or platform.machine() != "x86_64":
    pytest.skip("reads /proc and x86-64 cores", allow_module_level=True)

NO_SUCH_PID = 4194304 + 17  # above the largest pid_max Linux allows
NOBODY = 65534
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
PT_LOAD, PT_NOTE, NT_FILE = 1, 4, 0x46494C45
E_MACHINE = 18
CLI = os.path.join(os.path.dirname(sys.executable), "vmctx-emu")
CLI_ARGV = [CLI] if os.access(CLI, os.X_OK) else [sys.executable, "-m", "vmctx_emu"]
ERROR_LINE = re.compile(r"vmctx-emu( scan)?: error: [^\n]+\n\Z")
HANG = 60  # seconds any one case may take before it counts as a hang


def _wasmtime_50():
    try:
        return version("wasmtime").startswith("50.")
    except PackageNotFoundError:
        return False


needs_wasmtime = pytest.mark.skipif(not _wasmtime_50(), reason="the example process needs wasmtime-py 50.x")


# --------------------------------------------------------------------------- harness

@pytest.fixture(autouse=True)
def no_hang():
    """A case that blocks (a FIFO opened for reading, a read that never returns) fails instead of hanging."""

    def expired(signum, frame):
        raise TimeoutError(f"the case took more than {HANG} s: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(HANG)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def run_cli(capsys, *argv):
    """`vmctx-emu ARGV` in this process: (status, stdout, stderr)."""
    capsys.readouterr()
    try:
        status = cli.main(list(argv))
    except SystemExit as e:  # argparse
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def run_cli_process(*argv, timeout=HANG, **kwargs):
    """`vmctx-emu ARGV` as a subprocess: (status, stdout, stderr)."""
    done = subprocess.run([*CLI_ARGV, *argv], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kwargs)
    return done.returncode, done.stdout, done.stderr


def check_refused(status, out, err, *needles):
    """Exit 2, nothing on stdout, exactly one error line on stderr containing every needle (str or regex)."""
    assert status == 2, (status, out, err)
    assert out == ""
    assert "Traceback" not in err and ERROR_LINE.fullmatch(err), err
    for needle in needles:
        assert (needle.search(err) if isinstance(needle, re.Pattern) else needle in err), (needle, err)


def check_scanned(status, out, err):
    """Exit 0 and a result on stdout, nothing on stderr."""
    assert (status, err) == (0, ""), (status, err)
    assert "Traceback" not in out and out


def one_line(error):
    text = str(error)
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


def wait_for_state(pid, states, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rpartition(b")")[2].split()[0].decode() in states:
                    return
        except FileNotFoundError:
            if "gone" in states:
                return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} never reached {states}")


def start_example(seconds=300):
    proc = subprocess.Popen([sys.executable, "-m", "vmctx_emu.live.example", "--seconds", str(seconds)],
                            stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    line = proc.stdout.readline()
    assert line.startswith(f"pid {proc.pid} ready"), line
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout:
        proc.stdout.close()


def contexts_of(result):
    return sorted((c.address, tuple(sorted((c.counts or {}).items()))) for c in result.contexts)


# --------------------------------------------------------------------------- the real process and its core

@pytest.fixture(scope="module")
def example():
    if not _wasmtime_50():
        pytest.skip("the example process needs wasmtime-py 50.x")
    proc = start_example()
    yield proc
    stop(proc)


@pytest.fixture(scope="module")
def example_core(example, tmp_path_factory):
    return gcore(example.pid, tmp_path_factory.mktemp("example"), "example")


@pytest.fixture(scope="module")
def baseline(example_core):
    """The whole core's scan: what every damaged copy is compared with."""
    result = scan(example_core)
    assert result.wasmtime == "50.0.0" and len(result.contexts) == 1
    assert all(c.decoded is not None for c in result.contexts)
    return result


@pytest.fixture(scope="module")
def scratch(example_core, tmp_path_factory):
    """A copy of the core that cases patch in place (and restore): one copy of the big file, not one per case."""
    path = tmp_path_factory.mktemp("scratch") / "core.scratch"
    shutil.copyfile(example_core, path)
    yield path
    path.unlink()


@contextlib.contextmanager
def patched(path, edits):
    """`path` with `edits` ({file offset: bytes}) written over it until the block ends."""
    saved = {}
    with open(path, "r+b") as f:
        for offset, data in edits.items():
            f.seek(offset)
            saved[offset] = f.read(len(data))
            f.seek(offset)
            f.write(data)
    try:
        yield path
    finally:
        with open(path, "r+b") as f:
            for offset, data in saved.items():
                f.seek(offset)
                f.write(data)


@pytest.fixture(scope="module")
def gz_core(example_core, tmp_path_factory):
    path = tmp_path_factory.mktemp("gz") / "example.core.gz"
    made(path)
    with open(example_core, "rb") as src, gzip.open(path, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return path


class Layout:
    """The program headers of a core and where its notes (and NT_FILE in them) are in the file."""

    def __init__(self, path):
        self.path = os.fspath(path)
        with open(path, "rb") as f:
            self.header = f.read(EHDR.size)
            fields = EHDR.unpack(self.header)
            phoff, phnum = fields[5], fields[10]
            f.seek(phoff)
            table = f.read(phnum * PHDR.size)
            self.phdrs = [PHDR.unpack_from(table, i * PHDR.size) for i in range(phnum)]
            self.phoff = phoff
            notes = [p for p in self.phdrs if p[0] == PT_NOTE]
            assert len(notes) == 1
            self.notes_offset, self.notes_size = notes[0][2], notes[0][5]
            f.seek(self.notes_offset)
            data = f.read(self.notes_size)
        self.size = os.path.getsize(path)
        self.loads = [p for p in self.phdrs if p[0] == PT_LOAD]
        pos = 0
        while pos + 12 <= len(data):
            namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
            end = pos + 12 + -(-namesz // 4) * 4 + -(-descsz // 4) * 4
            if ntype == NT_FILE:
                self.nt_file = (self.notes_offset + pos, self.notes_offset + end)
            pos = end

    def load_of(self, address):
        return next(p for p in self.loads if p[3] <= address < p[3] + p[5])

    def offset_of(self, address):
        load = self.load_of(address)
        return load[2] + address - load[3]


@pytest.fixture(scope="module")
def layout(example_core):
    found = Layout(example_core)
    # gcore writes the notes last; the cases below rely on it (a kernel core has them first).
    assert found.notes_offset > max(p[2] for p in found.loads)
    return found


def prefix(src, dest, size):
    """The first `size` bytes of `src` as `dest`."""
    made(dest)
    with open(src, "rb") as f, open(dest, "wb") as g:
        left = size
        while left:
            sent = os.sendfile(g.fileno(), f.fileno(), size - left, left)
            if not sent:
                break
            left -= sent
    return dest


def notes_first_offsets(layout):
    """(program header indices in file order, {index: file offset}) with the notes first, as the kernel writes."""
    order = sorted(range(len(layout.phdrs)), key=lambda i: layout.phdrs[i][0] != PT_NOTE)
    offsets, pos = {}, layout.phoff + PHDR.size * len(layout.phdrs)
    for i in order:
        offsets[i] = pos
        pos += layout.phdrs[i][5]
    return order, offsets


def notes_first(layout, dest, size):
    """The core laid out as the Linux kernel writes one (headers, notes, then memory), cut to `size` bytes."""
    order, offsets = notes_first_offsets(layout)
    table = b"".join(PHDR.pack(*p[:2], offsets[i], *p[3:]) for i, p in enumerate(layout.phdrs))
    made(dest)
    with open(layout.path, "rb") as src, open(dest, "wb") as dst:
        dst.write(layout.header + table)
        for i in order:
            want = min(layout.phdrs[i][5], size - dst.tell())
            if want <= 0:
                break
            src.seek(layout.phdrs[i][2])
            dst.write(src.read(want))
        dst.truncate(size)


# --------------------------------------------------------------------------- core files the scanner refuses

def _write(data):
    def make(tmp_path, request):
        path = tmp_path / "core"
        path.write_bytes(data() if callable(data) else data)
        return path
    return make


def _gzip(data, cut=None, damage=None):
    def make(tmp_path, request):
        packed = bytearray(gzip.compress(data, compresslevel=6))
        if damage is not None:
            packed[damage:damage + 64] = bytes(b ^ 0x5A for b in packed[damage:damage + 64])
        path = tmp_path / "core.gz"
        path.write_bytes(bytes(packed[:cut]))
        return path
    return make


def _core_of(body):
    """A minimal x86-64 core whose one PT_LOAD holds `body`."""
    #                                              e_type e_machine e_version e_entry e_phoff e_shoff e_flags
    head = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0,
                                                                  64, 56, 1, 64, 0, 0)  # sizes, counts
    #                    p_type p_flags p_offset p_vaddr p_paddr p_filesz p_memsz p_align
    return head + struct.pack("<IIQQQQQQ", 1, 6, 120, 0x10000, 0, len(body), len(body), 4096) + body


def _header_patch(offset, data):
    """The real core (the scratch copy) with its ELF header patched; restored when the case ends."""
    def make(tmp_path, request):
        scratch = request.getfixturevalue("scratch")
        return request.getfixturevalue("exit_stack").enter_context(patched(scratch, {offset: data}))
    return make


def _real_prefix(where):
    def make(tmp_path, request):
        layout = request.getfixturevalue("layout")
        return prefix(layout.path, tmp_path / "core.cut", where(layout))
    return make


def _directory(tmp_path, request):
    (tmp_path / "dir").mkdir()
    return tmp_path / "dir"


def _fifo(tmp_path, request):
    os.mkfifo(tmp_path / "fifo")  # no writer: opening it blocking would wait forever
    return tmp_path / "fifo"


def _absent(tmp_path, request):
    return tmp_path / "absent.core"


def _an_executable(tmp_path, request):
    return os.path.realpath(sys.executable)


@pytest.fixture
def exit_stack():
    with contextlib.ExitStack() as stack:
        yield stack


ELF_TEXT = b"#!/bin/sh\necho this is no core\n"

REFUSED_CORES = [
    # id, make(tmp_path, request) -> path, error class, reason (regex)
    ("absent", _absent, CoreFileError, r"no such file"),
    ("empty", _write(b""), CoreFileError, r"not an ELF file \(it is empty\)"),
    ("not-elf", _write(ELF_TEXT), CoreFileError, r"not an ELF file$"),
    ("directory", _directory, CoreFileError, r"Is a directory"),
    ("fifo", _fifo, CoreFileError, r"a named pipe, not a core file"),
    ("elf-not-core", _an_executable, CoreFileError, r"not a core file \(ET_(EXEC|DYN)\)"),
    ("cut-in-elf-header", _real_prefix(lambda lay: 40), CoreFileError,
     r"truncated: the ELF header needs 64 bytes, file has 40$"),
    ("cut-in-program-headers", _real_prefix(lambda lay: lay.phoff + 3 * PHDR.size + 20), CoreFileError,
     r"truncated: program headers at file offset 64 need \d+ bytes, file has 252$"),
    ("elf32", _header_patch(4, b"\x01"), CoreFileError, r"a 32-bit ELF; only 64-bit cores are supported"),
    ("big-endian", _header_patch(5, b"\x02"), CoreFileError,
     r"big-endian; only little-endian cores are supported"),
    ("riscv", _header_patch(E_MACHINE, struct.pack("<H", 243)), CoreFileError,
     r"machine 243 \(RISC-V\) is not supported; only x86-64 and aarch64 are"),
    ("ppc64le", _header_patch(E_MACHINE, struct.pack("<H", 21)), CoreFileError,
     r"machine 21 \(PowerPC64\) is not supported"),
    ("gzip-of-nothing", _gzip(b""), CoreFileError, r"not an ELF file \(it is empty\)"),
    ("gzip-not-elf", _gzip(ELF_TEXT), CoreFileError, r"not an ELF file$"),
    ("gzip-cut-in-its-header", _gzip(ELF_TEXT * 100, cut=10), CoreFileError,
     r"not an ELF file \(it is empty\); the gzip stream is cut short: it ends after 0 decompressed bytes"),
    # The damage lies in bytes the core uses: only those are decompressed.
    ("gzip-corrupt", _gzip(_core_of(random.Random(0).randbytes(1 << 16) + ELF_TEXT * 1000), damage=2000),
     CoreFileError, r"damaged gzip stream: "),
    ("gzip-corrupt-not-elf", _gzip(random.Random(0).randbytes(1 << 16) + ELF_TEXT * 1000, damage=2000),
     CoreFileError, r"not an ELF file$"),
]


@pytest.mark.parametrize("make, error, reason", [r[1:] for r in REFUSED_CORES], ids=[r[0] for r in REFUSED_CORES])
def test_a_core_that_cannot_be_read_is_one_line_and_status_2(make, error, reason, tmp_path, request, capsys):
    path = os.fspath(make(tmp_path, request))
    with pytest.raises(error) as info:
        scan(path)
    text = one_line(info.value)
    assert text.startswith(f"core {path}: ") and re.search(reason, text), text
    status, out, err = run_cli(capsys, "scan", "--core", path)
    check_refused(status, out, err, f"vmctx-emu scan: error: core {path}: ", re.compile(reason))
    status, out, err = run_cli(capsys, "scan", "--core", path, "--json")
    check_refused(status, out, err, f"core {path}: ")


def test_a_fifo_does_not_hang_the_command(tmp_path):
    """The same FIFO as above, through the installed command: a hang there is a timeout, not a stuck suite."""
    path = _fifo(tmp_path, None)
    status, out, err = run_cli_process("scan", "--core", str(path), timeout=30)
    check_refused(status, out, err, f"core {path}: a named pipe")


# --------------------------------------------------------------------------- damaged cores that still scan

@needs_wasmtime
def test_aarch64_core_header_is_accepted(scratch, baseline, capsys):
    """An aarch64 core is a supported target: read and scanned (this one holds x86-64 code, which scan ignores)."""
    with patched(scratch, {E_MACHINE: struct.pack("<H", 183)}):
        with open_source(scratch) as src:
            assert src.arch == "aarch64"
        result = scan(scratch)
        assert contexts_of(result) == contexts_of(baseline)
        status, out, err = run_cli(capsys, "scan", "--core", str(scratch))
        check_scanned(status, out, err)
        assert out.startswith(f"core {scratch}: Wasmtime 50.0.0")


@needs_wasmtime
def test_gzip_core_scans_like_the_plain_one(gz_core, baseline, capsys):
    result = scan(gz_core)
    assert result.source == f"core {gz_core}" and result.wasmtime == "50.0.0"
    assert contexts_of(result) == contexts_of(baseline)
    status, out, err = run_cli(capsys, "scan", "--core", str(gz_core), "--json")
    check_scanned(status, out, err)
    doc = json.loads(out)
    assert [c["layout"]["address"] for c in doc["contexts"]] == [f"{c.address:#x}" for c in baseline.contexts]


@needs_wasmtime
def test_notes_cut_after_nt_file_still_scan(layout, baseline, tmp_path, capsys):
    """gcore writes the notes last; a cut after NT_FILE loses nothing the scan needs."""
    start, end = layout.nt_file
    assert end < layout.notes_offset + layout.notes_size, "NT_FILE is the last note: no such cut"
    path = prefix(layout.path, tmp_path / "core.cut", end + 10)
    with open_source(path) as src:
        assert src.damage() and "the notes (segment 0)" in src.damage()[0]
    assert contexts_of(scan(path)) == contexts_of(baseline)
    check_scanned(*run_cli(capsys, "scan", "--core", str(path)))


def _context_offset(layout, offsets, ctx):
    return offsets[layout.phdrs.index(layout.load_of(ctx))] + ctx - layout.load_of(ctx)[3]


KERNEL_CUTS = [
    # id, cut (file offset in the notes-first layout), what the scan then says
    ("at-the-context", lambda lay, off, ctx: _context_offset(lay, off, ctx), "lost"),
    ("inside-the-context", lambda lay, off, ctx: _context_offset(lay, off, ctx) + 48, "unreadable"),
    ("in-the-next-segment", lambda lay, off, ctx: off[lay.phdrs.index(lay.load_of(ctx)) + 1] + 0x800, "decoded"),
]
# The library's bytes lie past every cut: its version cannot be read, nor its file on disk checked against the
# core. The release is then the layouts that reproduce the stored copy (or unknown, with no context left).
RELEASE_AFTER_CUT = {"lost": None, "unreadable": "49.0.0 - 51.0.0", "decoded": "49.0.0 - 51.0.0"}


@needs_wasmtime
@pytest.mark.parametrize("cut, outcome", [r[1:] for r in KERNEL_CUTS], ids=[r[0] for r in KERNEL_CUTS])
def test_core_cut_inside_memory_is_status_0_with_notes(cut, outcome, layout, baseline, tmp_path, capsys):
    """A kernel-style core (notes first) cut inside its memory: the rest scans, what is lost is a note."""
    (ctx,) = [c.address for c in baseline.contexts]
    _, offsets = notes_first_offsets(layout)
    path = tmp_path / "core.cut"
    notes_first(layout, path, cut(layout, offsets, ctx))
    result = scan(path)
    assert result.wasmtime == RELEASE_AFTER_CUT[outcome], result.wasmtime_from
    assert any("truncated core file" in note for note in result.notes), result.notes[:3]
    found = {c.address: c for c in result.contexts}
    if outcome == "lost":
        assert ctx not in found
    elif outcome == "unreadable":
        assert found[ctx].decoded is None
        assert any("cannot be read" in n and "truncated core file" in n for n in found[ctx].notes), found[ctx].notes
    else:
        assert contexts_of(result) == contexts_of(baseline) and found[ctx].decoded is not None
    status, out, err = run_cli(capsys, "scan", "--core", str(path))
    check_scanned(status, out, err)
    assert "note: " in out and "truncated core file" in out and "address ranges (" in out
    if outcome == "unreadable":
        (whole,) = baseline.contexts
        size = whole.layout.offsets(8, **whole.counts).size_of_vmctx()
        assert f"  note: the {size} bytes of the context cannot be read" in out
    status, out, err = run_cli(capsys, "scan", "--core", str(path), "--json")
    check_scanned(status, out, err)
    assert json.loads(out)["notes"] == result.notes


# --------------------------------------------------------------------------- cores whose file names are lost

LOST_NAMES = [
    # id, make(layout, gz_core, tmp_path) -> path, what the damage says, what the scan recovers
    ("cut-in-the-notes", lambda lay, gz, tmp: prefix(lay.path, tmp / "core.cut", lay.nt_file[0] + 8),
     r"the notes .*need \d+ bytes, file has \d+", "names"),
    ("cut-in-a-segment", lambda lay, gz, tmp: prefix(lay.path, tmp / "core.cut",
                                                     next(p[2] for p in lay.loads if p[5] > 0x2000) + 0x1234),
     r"truncated core file", "nothing"),
    ("gzip-cut", lambda lay, gz, tmp: prefix(gz, tmp / "core.gz", os.path.getsize(gz) // 10),
     r"the gzip stream is cut short", "family"),
]


def _lost_names(make, request, tmp_path):
    return os.fspath(make(request.getfixturevalue("layout"), request.getfixturevalue("gz_core"), tmp_path))


@needs_wasmtime
@pytest.mark.parametrize("make, reason, recovers", [r[1:] for r in LOST_NAMES], ids=[r[0] for r in LOST_NAMES])
def test_core_without_its_file_names_says_what_it_recovered(make, reason, recovers, request, tmp_path, baseline,
                                                              capsys):
    """gcore writes NT_FILE last, so most cuts lose the names of the mapped files. With the auxiliary vector
    kept, the names come from the dynamic linker's list; without it, the release from the stored copies; with
    nothing left, the notes say so. Status 0 each time: part of the core was read."""
    path = _lost_names(make, request, tmp_path)
    with open_source(path) as src:
        damage = src.damage()
        assert not src.file_names
    assert any(re.search(reason, d) for d in damage), damage
    result = scan(path)
    if recovers == "names":
        assert contexts_of(result) == contexts_of(baseline) and result.wasmtime == "50.0.0"
        assert any("file names from its auxiliary vector and the dynamic linker's list" in n for n in result.notes)
    elif recovers == "family":
        assert contexts_of(result) == contexts_of(baseline) and result.wasmtime == "49.0.0 - 51.0.0"
        assert result.wasmtime_from.startswith("stored VMComponentOffsets copies")
    else:
        assert result.contexts == [] and result.wasmtime is None
        assert any(n.startswith("no component context: ") for n in result.notes), result.notes
    status, out, err = run_cli(capsys, "scan", "--core", path)
    check_scanned(status, out, err)
    assert re.search(reason, out)


# --------------------------------------------------------------------------- processes

@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "120"], stdin=subprocess.DEVNULL)
    yield proc
    stop(proc)


def test_no_such_pid(capsys):
    with pytest.raises(NoSuchProcessError) as info:
        scan(NO_SUCH_PID)
    assert one_line(info.value) == f"no such process: pid {NO_SUCH_PID}"
    check_refused(*run_cli(capsys, "scan", "--pid", str(NO_SUCH_PID)), f"no such process: pid {NO_SUCH_PID}")


@pytest.mark.parametrize("pid, reason", [("0", "a process id is positive, got 0"),
                                         ("-7", "a process id is positive, got -7"),
                                         ("12abc", "expected a process id, got '12abc'")])
def test_a_pid_that_is_no_pid(pid, reason, capsys):
    check_refused(*run_cli(capsys, "scan", "--pid", pid), "argument --pid", reason)


NO_WASMTIME = ("no Wasmtime in pid {pid}: no component context magic in its writable memory, and no mapped file "
               "holds Wasmtime's code")


def test_a_process_without_wasmtime(sleeper, capsys):
    with pytest.raises(ScanError) as info:
        scan(sleeper.pid)
    assert one_line(info.value) == NO_WASMTIME.format(pid=sleeper.pid)
    check_refused(*run_cli(capsys, "scan", "--pid", str(sleeper.pid)), NO_WASMTIME.format(pid=sleeper.pid))


def test_a_zombie(sleeper, capsys):
    sleeper.kill()
    wait_for_state(sleeper.pid, "Z")  # exited, not reaped: /proc/PID is there, its memory is not
    with pytest.raises(ProcessGoneError) as info:
        scan(sleeper.pid)
    assert one_line(info.value).startswith(f"pid {sleeper.pid} has exited (a zombie")
    check_refused(*run_cli(capsys, "scan", "--pid", str(sleeper.pid)), f"pid {sleeper.pid} has exited")


AS_NOBODY = f"""
import os, sys
from vmctx_emu import cli, describe  # imported while root: the interpreter's own files may be root's only
import vmctx_emu.describe.scan  # cmd_scan imports it lazily; a checkout in a 0700 directory is root's only
from vmctx_emu.live import scan, scanner
what, target = sys.argv[1:]
cli.build_parser().parse_args(["scan", "--" + what, target])  # argparse's lazy imports (gettext, locale)
os.setgroups([])
os.setgid({NOBODY})
os.setuid({NOBODY})
try:
    scan(int(target) if what == "pid" else target)
except Exception as e:
    print(type(e).__name__, e, sep="\\n", flush=True)
sys.exit(cli.main(["scan", "--" + what, target]))
"""


@needs_wasmtime
@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root; as a user, pid 1 is the "
                                                "refusal case (test_live_sources)")
@pytest.mark.parametrize("what", ["pid", "core"])
def test_permission_denied(what, example, example_core):
    """A child that drops to uid 65534 scans a root process, and a core in a directory only root may enter."""
    target = str(example.pid) if what == "pid" else os.path.abspath(example_core)
    done = subprocess.run([sys.executable, "-c", AS_NOBODY, what, target], capture_output=True, text=True,
                          timeout=HANG, stdin=subprocess.DEVNULL)
    name, message = done.stdout.rstrip("\n").split("\n")  # the API's exception, then the CLI's (nothing)
    assert name == "AccessDeniedError" and issubclass(AccessDeniedError, PermissionError)
    if what == "pid":
        assert message.startswith(f"cannot read the memory of pid {example.pid}: Permission denied "
                                  f"(it runs as uid 0, we are uid {NOBODY}); reading needs ptrace permission")
    else:
        assert message == f"core {target}: permission denied (cannot open the file for reading)"
    check_refused(done.returncode, "", done.stderr, f"vmctx-emu scan: error: {message}")


# --------------------------------------------------------------------------- the process exits mid-scan

def _kill(proc):
    proc.kill()
    proc.wait()  # reaped: /proc/PID is gone, a held /proc/PID/mem reads nothing
    wait_for_state(proc.pid, "gone")


# Where to kill the target: ("chunk", writable?) after the first chunk of such a mapping;
# ("read", predicate) at the first exact read that matches.
KILL_POINTS = [
    ("reading-the-version", ("chunk", False)),
    ("scanning-writable-memory", ("chunk", True)),
    ("reading-a-candidate-header", ("read", lambda address, size, ctx: size <= 64)),
    # One read takes the stored shape's window before a candidate and the context after it.
    ("reading-the-stored-shape-and-context", ("read", lambda address, size, ctx: address < ctx < address + size)),
]


@pytest.fixture
def doomed(monkeypatch):
    """A fresh example process, and `arm(point)`: kill it when the scan reaches `point`."""
    if not _wasmtime_50():
        pytest.skip("the example process needs wasmtime-py 50.x")
    proc = start_example()
    ctx = [c.address for c in scan(proc.pid).contexts]
    assert len(ctx) == 1
    fired = []

    def arm(point):
        kind, test = point
        if kind == "chunk":
            real = source.MemorySource._chunks

            def chunks(self, mapping, ranges, chunk):
                for item in real(self, mapping, ranges, chunk):
                    yield item
                    if not fired and mapping.writable == test:
                        fired.append(mapping)
                        _kill(proc)

            monkeypatch.setattr(source.MemorySource, "_chunks", chunks)
        else:
            real = process.ProcessSource._read

            def read(self, address, size):
                if not fired and test(address, size, ctx[0]):
                    fired.append(address)
                    _kill(proc)
                return real(self, address, size)

            monkeypatch.setattr(process.ProcessSource, "_read", read)

    yield proc, arm, fired
    stop(proc)


@needs_wasmtime
@pytest.mark.parametrize("route", ["api", "cli"])
@pytest.mark.parametrize("point", [r[1] for r in KILL_POINTS], ids=[r[0] for r in KILL_POINTS])
def test_process_exits_mid_scan(point, route, doomed, capsys):
    """The target dies while being read: one line naming it, status 2 (its memory is gone: no result to give)."""
    proc, arm, fired = doomed
    arm(point)
    if route == "api":
        with pytest.raises(ProcessGoneError) as info:
            scan(proc.pid)
        assert one_line(info.value) == f"pid {proc.pid} has exited; its memory can no longer be read"
    else:
        check_refused(*run_cli(capsys, "scan", "--pid", str(proc.pid)),
                      f"vmctx-emu scan: error: pid {proc.pid} has exited; its memory can no longer be read")
    assert fired, "the scan never reached the kill point"


@needs_wasmtime
def test_process_exits_at_the_first_progress_call(capsys):
    """The same through the API's own hook: a progress callback that kills the target."""
    proc = start_example()
    try:
        calls = []

        def progress(done, total):
            calls.append((done, total))
            if len(calls) == 1:
                _kill(proc)

        with pytest.raises(ProcessGoneError, match=f"^pid {proc.pid} has exited"):
            scan(proc.pid, progress=progress)
        assert len(calls) == 1
    finally:
        stop(proc)


# --------------------------------------------------------------------------- releases

UNSUPPORTED = [("0.39.0", "Wasmtime 0.39.0 is not a supported release (newest known release: "),
               ("banana", "not a Wasmtime version: 'banana' (newest known release: ")]


@needs_wasmtime
@pytest.mark.parametrize("given, reason", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_wasmtime_argument(given, reason, example_core, capsys):
    with pytest.raises(ScanError) as info:
        scan(example_core, wasmtime=given)
    text = one_line(info.value)
    assert text.startswith(f"core {example_core}: --wasmtime {given}: ") and reason in text, text
    check_refused(*run_cli(capsys, "scan", "--core", str(example_core), "--wasmtime", given),
                  "vmctx-emu: error: argument --wasmtime: ", reason)
    # Checked before the target is touched: an unsupported release and no such pid say the release.
    check_refused(*run_cli(capsys, "scan", "--pid", str(NO_SUCH_PID), "--wasmtime", given), reason)


LOADER = """
import ctypes, sys, time
ctypes.CDLL(sys.argv[1])
print("ready", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    """A Wasmtime library whose version string says 99.0.0, and a library named like Wasmtime with none."""
    if not _wasmtime_50():
        pytest.skip("needs wasmtime-py 50.x's library")
    import wasmtime._ffi as ffi

    real = ffi.dll._name
    folder = tmp_path_factory.mktemp("libs")
    data = bytearray(open(real, "rb").read())
    hits = list(identify._matches(bytes(data)))
    assert hits and {m.group("version") for m in hits} == {b"50.0.0"}
    for m in hits:
        data[m.start("version"):m.end("version")] = b"99.0.0"
    future = made(folder / "libwasmtime.so")
    future.write_bytes(data)
    with open_source(None) as me:
        plain = sorted({m.path for m in me.mappings() if m.path and os.path.basename(m.path).startswith(
            ("libz.so", "libffi.so", "libm.so", "libbz2.so", "liblzma.so"))})
    plain = [p for p in plain if os.path.isfile(p) and identify.wasmtime_version_in(open(p, "rb").read()) is None]
    if not plain:
        pytest.skip("no small library without a version string to copy")
    unnamed = folder / "libwasmtime-impostor.so"
    shutil.copyfile(plain[0], made(unnamed))
    return {"99.0.0": future, "none": unnamed}


@contextlib.contextmanager
def loading(library):
    proc = subprocess.Popen([sys.executable, "-c", LOADER, str(library)], stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        stop(proc)


def test_mapped_wasmtime_newer_than_the_table(libraries, capsys):
    """A library whose version literal says 99.0.0: newer than the table, said so; no context to decode."""
    with loading(libraries["99.0.0"]) as proc:
        result = scan(proc.pid)
        assert result.wasmtime == "99.0.0" and result.contexts == []
        assert result.wasmtime_from == f"version string in {libraries['99.0.0']} mapped at " + \
            result.wasmtime_from.rsplit(" ", 1)[1]
        assert "99.0.0 is newer than the table (newest 51.0.0): decoded with L11 (v49.0.0 - v51.0.0) only where " \
               "that layout reproduces every stored offset" in result.notes
        check_scanned(*run_cli(capsys, "scan", "--pid", str(proc.pid)))


def test_a_library_named_like_wasmtime_is_not_taken_for_it(libraries, capsys):
    """Wasmtime is recognised by its bytes, not its file name: a plain library called libwasmtime-impostor.so
    is no Wasmtime; given the release, the scan runs and finds no context."""
    with loading(libraries["none"]) as proc:
        with pytest.raises(ScanError) as info:
            scan(proc.pid)
        text = one_line(info.value)
        assert text.startswith(f"no Wasmtime in pid {proc.pid}: ") and text.endswith(
            "and no mapped file holds Wasmtime's code"), text
        check_refused(*run_cli(capsys, "scan", "--pid", str(proc.pid)), text)
        status, out, err = run_cli(capsys, "scan", "--pid", str(proc.pid), "--wasmtime", "50.0.0")
        check_scanned(status, out, err)
        assert out.startswith(f"pid {proc.pid}: Wasmtime 50.0.0 (given with --wasmtime), 0 component contexts")
        assert "no mapped file holds Wasmtime's code" in out


# --------------------------------------------------------------------------- contexts whose shape is not recovered

def _check_context_reported(ctx):
    """A context is decoded, or carries a note saying why not."""
    if ctx.decoded is None:
        assert ctx.notes and all(one_line(n) for n in ctx.notes)
        assert ctx.notes[0].startswith(("shape not recovered", "the ")), ctx.notes
    else:
        assert ctx.shape_from


@needs_wasmtime
@pytest.mark.parametrize("given", ["48.0.0", "45.0.0", "30.0.0", "1.0.0", "seed"])
def test_decoding_as_another_release(given, example_core, baseline, capsys):
    """Another release's layout over the v50 core: found contexts are decoded or noted, never a crash."""
    result = scan(example_core, wasmtime=given)
    assert result.wasmtime == given and result.wasmtime_from == "given with --wasmtime"
    said = [n for n in result.notes if n.startswith("_libwasmtime.so: the mapped Wasmtime says 50.0.0 (version "
                                                    "string in ")]
    assert len(said) == 1 and said[0].endswith(f"; decoding as {given} as asked"), result.notes
    assert {c.address for c in result.contexts} <= {c.address for c in baseline.contexts}
    for ctx in result.contexts:
        _check_context_reported(ctx)
    status, out, err = run_cli(capsys, "scan", "--core", str(example_core), "--wasmtime", given)
    check_scanned(status, out, err)
    assert f"note: {said[0]}\n" in out
    for ctx in result.contexts:
        for note in ctx.notes:
            assert f"  note: {note}\n" in out


@needs_wasmtime
@pytest.mark.parametrize("damage", [b"\xff" * 84, b"\0" * 84], ids=["ff", "zeros"])
def test_context_whose_stored_offsets_are_damaged(damage, scratch, layout, baseline, capsys):
    """The right release, but the stored `VMComponentOffsets` before the context overwritten: a note (or,
    with the scanner's `infer` fallback, a shape that says it was inferred), status 0."""
    (ctx,) = [c.address for c in baseline.contexts]
    # The copy is 10 counts and 11 offsets (u32) at ctx-188 (test_live_scan); the self pointer at ctx-16 stays.
    with patched(scratch, {layout.offset_of(ctx) - 188: damage}):
        result = scan(scratch)
        (found,) = result.contexts
        assert found.address == ctx
        _check_context_reported(found)
        if found.decoded is not None:
            assert not found.shape_from.startswith("VMComponentOffsets stored"), found.shape_from
        status, out, err = run_cli(capsys, "scan", "--core", str(scratch))
        check_scanned(status, out, err)
        for note in found.notes:
            assert f"  note: {note}\n" in out


# --------------------------------------------------------------------------- the progress line

def run_on_terminal(argv, *, json_to_terminal=False, timeout=HANG):
    """`vmctx-emu ARGV` with stderr on a pseudo-terminal (raw: no CR/LF rewriting).

    stdout goes to a file, or with `json_to_terminal` to the same terminal.
    Returns (status, stdout bytes, terminal bytes).
    """
    master, slave = pty.openpty()
    tty.setraw(slave)
    with open(os.devnull, "rb") as null, io.BytesIO() as seen, tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([*CLI_ARGV, *argv], stdin=null, stdout=slave if json_to_terminal else out,
                                stderr=slave)
        os.close(slave)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        data = os.read(master, 1 << 16)
                    except OSError as e:  # EIO: every writer closed the terminal
                        if e.errno != errno.EIO:
                            raise
                        break
                    if not data:
                        break
                    seen.write(data)
                elif proc.poll() is not None:
                    break
            else:
                raise AssertionError(f"{argv} did not finish in {timeout} s")
            status = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        out.seek(0)
        return status, out.read(), seen.getvalue()


PROGRESS = re.compile(rb"\rscanning (?P<what>[^:]+): +(?P<pct>\d+)% of (?P<mib>\d+) MiB writable memory")
CLEAR = b"\r\x1b[K"


def check_progress(terminal, what):
    """Progress lines for `what`, percentages rising to at most 100, then erased; returns what followed."""
    lines = list(PROGRESS.finditer(terminal))
    assert lines, terminal[:200]
    assert {m["what"] for m in lines} == {what.encode()}
    pcts = [int(m["pct"]) for m in lines]
    assert pcts == sorted(pcts) and 0 <= pcts[0] and pcts[-1] <= 100
    assert len(set(pcts)) == len(pcts), "the line is redrawn only when it changes"
    assert terminal.startswith(b"\rscanning ")
    rest = terminal[lines[-1].end():]
    assert rest.startswith(CLEAR), rest[:40]
    return rest[len(CLEAR):]


@needs_wasmtime
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_progress_line_on_a_terminal(as_json, example):
    status, out, terminal = run_on_terminal(["scan", "--pid", str(example.pid)] + ["--json"] * as_json)
    assert status == 0
    assert check_progress(terminal, f"pid {example.pid}") == b""  # erased, and nothing else on stderr
    assert b"scanning" not in out and b"\r" not in out and b"\x1b" not in out
    if as_json:
        assert json.loads(out)["source"] == f"pid {example.pid}"
    else:
        assert out.startswith(f"pid {example.pid}: Wasmtime 50.0.0".encode())


@needs_wasmtime
def test_progress_line_for_a_core(example_core):
    status, out, terminal = run_on_terminal(["scan", "--core", str(example_core)])
    assert status == 0 and check_progress(terminal, str(example_core)) == b""
    assert out.startswith(f"core {example_core}: Wasmtime 50.0.0".encode())


@needs_wasmtime
def test_progress_then_text_on_one_terminal(example):
    """stdout and stderr the same terminal: the line is erased before the output starts."""
    status, _, terminal = run_on_terminal(["scan", "--pid", str(example.pid)], json_to_terminal=True)
    assert status == 0
    assert check_progress(terminal, f"pid {example.pid}").startswith(f"pid {example.pid}: Wasmtime".encode())


@needs_wasmtime
def test_no_progress_when_the_json_goes_to_the_terminal(example):
    """--json onto the terminal stderr also shows: no progress bytes in the JSON's stream at all."""
    status, _, terminal = run_on_terminal(["scan", "--pid", str(example.pid), "--json"], json_to_terminal=True)
    assert status == 0 and b"scanning" not in terminal and CLEAR not in terminal
    assert json.loads(terminal)["source"] == f"pid {example.pid}"


@needs_wasmtime
def test_no_progress_when_stderr_is_not_a_terminal(example):
    status, out, err = run_cli_process("scan", "--pid", str(example.pid))
    assert status == 0 and err == "" and "scanning" not in out and "\r" not in out


def test_an_error_on_a_terminal_is_one_clean_line():
    """Nothing was drawn, so nothing is erased: the terminal gets exactly the error line."""
    status, out, terminal = run_on_terminal(["scan", "--pid", str(NO_SUCH_PID)])
    assert (status, out) == (2, b"")
    assert terminal == f"vmctx-emu scan: error: no such process: pid {NO_SUCH_PID}\n".encode()


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@needs_wasmtime
def test_an_error_after_progress_erases_the_line_first(doomed, monkeypatch):
    """The target dies after the whole line was drawn (reading the context): erased, then the one error line."""
    proc, arm, fired = doomed
    arm(("read", lambda address, size, ctx: address < ctx < address + size))  # the read around a context
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(["scan", "--pid", str(proc.pid)], out=io.StringIO()) == 2
    after = check_progress(terminal.getvalue().encode(), f"pid {proc.pid}")
    assert after == f"vmctx-emu scan: error: pid {proc.pid} has exited; its memory can no longer be read\n".encode()


def test_progress_callback_reports_rising_totals(tmp_path):
    """The API's hook, on a synthetic core (no Wasmtime needed past the image check): done rises to total."""
    pytest.importorskip("test_live_sources")
    from test_live_sources import elf_core, nt_file

    image = (0x7F0000000000, 5, b"\0" * 0x1000, 0x1000)
    heap = [(0x10000000 + i * 0x200000, 6, bytes(0x180000), 0x180000) for i in range(3)]
    notes = nt_file([(0x7F0000000000, 0x7F0000001000, 0, "/opt/libwasmtime.so")])
    path = tmp_path / "core"
    path.write_bytes(elf_core([image, *heap], notes))
    calls = []
    result = scan(path, wasmtime="50.0.0", progress=lambda done, total: calls.append((done, total)))
    assert result.contexts == []
    totals = {t for _, t in calls}
    assert totals == {3 * 0x180000}
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and dones[-1] == 3 * 0x180000 and len(dones) >= 3
