"""Files and targets that would make a blocking call wait forever (issue 20, classes 3, 4, 5 and 15; a page no one
serves through userfaultfd).

Each answers in under 2 s with one error line or a refusal; a hang shows as a subprocess timeout, never a
stuck suite.
"""

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from bounded import HOSTILE_SECONDS, run
from vmctx_emu.dumps.dump import DumpError, load_dump, read_dump_bytes
from vmctx_emu.live.images import Images
from vmctx_emu.live.process import ProcessSource
from vmctx_emu.live.symbols import ElfSymbols

BOUND = HOSTILE_SECONDS
HANG = 20  # seconds after which a subprocess counts as hung
ERROR_LINE = re.compile(r"vmctx-emu [a-z]+: error: [^\n]+\n")


def run_cli(*argv):
    """(status, stdout, stderr, seconds) of `vmctx-emu ARGV` in a subprocess (`bounded.run`; status None: hung)."""
    ran = run(argv, timeout=HANG)
    return ran.status, ran.out, ran.err, ran.seconds


def check_one_line(status, out, err, seconds, needle):
    assert seconds < BOUND, seconds
    assert (status, out) == (2, ""), (status, out, err)
    assert ERROR_LINE.fullmatch(err) and "Traceback" not in err, err
    assert needle in err, err


@pytest.fixture
def dump(tmp_path):
    """A real dump pair written by `demo --dump`: (dump path)."""
    status = subprocess.run([sys.executable, "-m", "vmctx_emu", "demo", "--dump", str(tmp_path / "d")],
                            capture_output=True, timeout=HANG, stdin=subprocess.DEVNULL).returncode
    assert status == 0
    return tmp_path / "d" / "ctx.bin"


# -- class 5: a dump or its sidecar that is a FIFO ----------------------------------------------------------

COMMANDS = [("decode",), ("hexdump",), ("infer",), ("diff", "OTHER")]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_fifo_dump_is_refused_at_once(tmp_path, dump, command):
    fifo = tmp_path / "fifo.bin"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever
    argv = [command[0], str(fifo), *(str(dump) for _ in command[1:])]
    check_one_line(*run_cli(*argv), f"cannot read dump {fifo}: not a regular file")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_fifo_sidecar_is_refused_at_once(tmp_path, dump, command):
    path = tmp_path / "s.bin"
    shutil.copy(dump, path)
    os.mkfifo(f"{path}.json")
    argv = [command[0], str(path), *(str(dump) for _ in command[1:])]
    if command[0] == "infer":  # infer reads the dump's bytes alone, so a FIFO beside it is never opened
        status, out, err, seconds = run_cli(*argv)
        assert seconds < BOUND and "Traceback" not in err
        return
    check_one_line(*run_cli(*argv), f"cannot read sidecar {path}.json: not a regular file")


def test_a_fifo_sidecar_hint_names_no_python_option(tmp_path, dump):
    """allow_special is for the dump only: the sidecar's refusal does not offer it."""
    path = tmp_path / "s.bin"
    shutil.copy(dump, path)
    os.mkfifo(f"{path}.json")
    with pytest.raises(DumpError, match="not a regular file") as caught:
        load_dump(path)
    assert "allow_special" not in str(caught.value)


def test_the_api_refuses_a_fifo_without_waiting(tmp_path):
    fifo = tmp_path / "fifo.bin"
    os.mkfifo(fifo)
    start = time.monotonic()
    for call in (lambda: read_dump_bytes(fifo), lambda: load_dump(fifo)):
        with pytest.raises(DumpError, match=r"not a regular file \(a device, FIFO or socket\)"):
            call()
    assert time.monotonic() - start < BOUND


# -- class 4: a target that swaps a FIFO in at a mapped file's path -----------------------------------------

SWAPPER = textwrap.dedent("""
    import mmap, os, shutil, sys, time
    path = sys.argv[1]
    shutil.copy(sys.argv[2], path)
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    os.unlink(path)
    os.mkfifo(path)
    print("ready", flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def swapped(tmp_path):
    """(pid, path): a child that maps a copy of an ELF file, then puts a FIFO at the file's path."""
    path = str(tmp_path / "libswapped.so")
    child = subprocess.Popen([sys.executable, "-c", SWAPPER, path, os.path.realpath(sys.executable)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        yield child.pid, path
    finally:
        child.stdin.close()
        child.wait(timeout=HANG)


def test_a_fifo_at_a_mapped_files_path_is_not_opened_blocking(swapped):
    """The same-file checks (the target's bytes against the file at its path, and its symbols) refuse the FIFO."""
    pid, path = swapped
    start = time.monotonic()
    with ProcessSource(pid) as src:
        images = Images(src, src.mappings())
        image = images.images[f"{path} (deleted)"]  # the mapped inode was unlinked: the FIFO is another file
        _, verdict = images._compare(image, path)
        assert verdict.startswith("cannot be read") and "not a regular file" in verdict, verdict
        images.trusted_file(image)  # the kernel's link to the mapped inode, or a refusal: never a wait
    assert ElfSymbols.open(path) is None
    assert time.monotonic() - start < BOUND


def test_scan_of_a_target_with_a_fifo_at_a_mapped_path_ends(swapped):
    pid, _ = swapped
    status, out, err, seconds = run_cli("scan", "--pid", str(pid))
    assert seconds < BOUND and "Traceback" not in err, (seconds, err)


# -- class 15: a kernel thread --------------------------------------------------------------------------------

def _kernel_thread():
    """The pid of a kernel thread this process can see (kthreadd is pid 2 outside a pid namespace), or None."""
    for pid in (2, *range(3, 50)):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                text = f.read()
        except OSError:
            continue
        fields = text[text.rfind(b")") + 1:].split()
        if len(fields) > 6 and int(fields[6]) & 0x00200000:
            return pid
    return None


def test_scan_of_a_kernel_thread_says_so():
    pid = _kernel_thread()
    if pid is None:
        pytest.skip("no kernel thread is visible here (a pid namespace hides them)")
    check_one_line(*run_cli("scan", "--pid", str(pid)), f"pid {pid} is a kernel thread: it has no user memory")


def test_scan_of_no_process_still_says_no_such_process():
    pid = 4_000_000  # above pid_max's ceiling (2**22)
    check_one_line(*run_cli("scan", "--pid", str(pid)), f"no such process: pid {pid}")


# -- class 3: a writable mapping of a file on a FUSE filesystem whose server never answers -------------------
# Without FUSE here, a fake /proc/PID (regular files standing for mem, maps, mountinfo and pagemap) shows the
# decision: pages of FUSE files that the target does not hold in memory are never read.

PAGE = os.sysconf("SC_PAGE_SIZE")
FUSE_AT = 0x40 * PAGE  # a 4-page writable mapping of /mnt/slow/data on FUSE device 0:77 (hex 00:4d in maps)
DISK_AT = 0x50 * PAGE  # a 2-page one of a file on an ordinary disk, device 8:1


@pytest.fixture
def fake_proc(tmp_path):
    pid = 4242
    root = tmp_path / str(pid)
    root.mkdir()
    (root / "maps").write_text(
        f"{FUSE_AT:x}-{FUSE_AT + 4 * PAGE:x} rw-p 00000000 00:4d 1234 /mnt/slow/data\n"
        f"{DISK_AT:x}-{DISK_AT + 2 * PAGE:x} rw-p 00000000 08:01 5678 /var/lib/data\n")
    (root / "mountinfo").write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "90 22 0:77 / /mnt/slow rw,nosuid,nodev shared:60 - fuse.sshfs host:/ rw,user_id=0,group_id=0\n")
    entries = [0] * (DISK_AT // PAGE + 2)
    entries[FUSE_AT // PAGE + 0] = 1 << 63  # in RAM
    entries[FUSE_AT // PAGE + 2] = 1 << 62  # in swap
    (root / "pagemap").write_bytes(b"".join(e.to_bytes(8, "little") for e in entries))
    with open(root / "mem", "wb") as f:
        f.truncate(DISK_AT + 2 * PAGE)  # every byte readable: the fake itself never blocks
    (root / "stat").write_text(f"{pid} (slow) S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n")
    return pid, str(tmp_path)


def test_fuse_pages_not_in_memory_are_skipped_by_the_scan_and_refused_by_reads(fake_proc):
    from vmctx_emu.errors import UnreadableMemoryError
    from vmctx_emu.live.process import FUSE_ABSENT
    pid, proc = fake_proc
    with ProcessSource(pid, proc=proc) as src:
        fuse, disk = src.mappings()
        got = [(a, len(d)) for a, d in src.iter_chunks(fuse)]
        assert got == [(FUSE_AT, PAGE), (FUSE_AT + 2 * PAGE, PAGE)]  # pages 1 and 3 are on the FUSE server only
        assert [(a, len(d)) for a, d in src.iter_chunks(disk)] == [(DISK_AT, 2 * PAGE)]  # another fs: as before
        assert src.read(FUSE_AT, PAGE) == bytes(PAGE)
        with pytest.raises(UnreadableMemoryError) as caught:
            src.read(FUSE_AT + PAGE - 8, 16)
        assert caught.value.reason == f"0x{FUSE_AT + PAGE:x} is {FUSE_ABSENT}"


def test_fuse_mounts_named_by_type():
    from vmctx_emu.live.process import fuse_devices
    text = ("1 0 0:5 / / rw - ext4 /dev/root rw\n"
            "2 1 0:40 / /a rw shared:2 master:3 - fuse /dev/fuse rw\n"
            "3 1 8:17 / /b rw - fuseblk /dev/sdb1 rw\n"
            "4 1 0:41 / /c rw - fuse.rclone remote: rw\n"
            "5 1 0:42 / /d rw - fusectl fusectl rw\n")
    assert fuse_devices(text) == {"0:40", "8:17", "0:41"}


# -- a target page registered with userfaultfd whose faults nobody serves -------------------------------------
# Such a page stops the target's own threads for good, but a read of /proc/PID/mem does not wait for it: the
# kernel refuses to retry a remote fault into userfaultfd and the read fails with EIO at once (measured here:
# 0.6 s for the whole scan). The mapping becomes a note; the scan goes on.

UFFD_TARGET = textwrap.dedent("""
    import ctypes, fcntl, os, struct, sys, time
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(323, os.O_CLOEXEC | os.O_NONBLOCK)  # userfaultfd, x86-64
    if fd < 0:
        print("unavailable", flush=True); time.sleep(60); sys.exit()
    fcntl.ioctl(fd, 0xc018aa3f, bytearray(struct.pack("QQQ", 0xAA, 0, 0)))  # UFFDIO_API
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    size = 1 << 20
    address = libc.mmap(None, size, 3, 0x22, -1, 0)
    fcntl.ioctl(fd, 0xc020aa00, bytearray(struct.pack("QQQQ", address, size, 1, 0)))  # UFFDIO_REGISTER, missing
    print(hex(address), flush=True)
    time.sleep(60)
""")


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the target calls userfaultfd by its x86-64 number")
def test_a_page_nobody_serves_through_userfaultfd_is_a_note_within_bounds():
    child = subprocess.Popen([sys.executable, "-c", UFFD_TARGET], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().strip()
        if not line.startswith("0x"):
            pytest.skip(f"userfaultfd is not available here ({line or 'the target ended'})")
        address = int(line, 16)
        status, out, err, seconds = run_cli("scan", "--pid", str(child.pid), "--wasmtime", "50.0.1")
        assert seconds < BOUND and status == 0 and "Traceback" not in err, (seconds, status, err)
        assert "0 component contexts listed" in out
        assert (f"mapping 0x{address:x}-0x{address + (1 << 20):x} rw-p: cannot read 1048576 bytes at 0x{address:x}: "
                f"0x{address:x} is not mapped or the kernel will not read it (EIO)") in out, out
    finally:
        child.kill()
        child.wait()
