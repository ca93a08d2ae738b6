"""Shared test helpers."""

import importlib.util
import os

import pytest
from cffi import FFI

from cores import delete_made

from vmctx_emu import OwnedComponentInstance
from vmctx_emu.demo import SAMPLE_COMPONENT as SAMPLE  # the README's sample shape: a little of everything


# `make fuzz`: VMCTX_FUZZ_EXAMPLES=N runs every hypothesis fuzzer of the suite with N examples, each run drawing
# new ones (the suite's own counts are a few seconds each, derandomized so a run is repeatable).
FUZZ_EXAMPLES = int(os.environ.get("VMCTX_FUZZ_EXAMPLES") or 0)
FUZZING = FUZZ_EXAMPLES > 0


def fuzz_examples(default):
    """A fuzzer's max_examples: its own `default` in the suite, VMCTX_FUZZ_EXAMPLES under `make fuzz`."""
    return FUZZ_EXAMPLES or default


# What a whole run may leave in its temp directory (pytest keeps the last three runs' directories).
DISK_BUDGET = 500 << 20


def disk_used(root):
    """Bytes `root`'s files take on disk (blocks, so a sparse file counts what it holds), and the largest few.

    A file counts once however many of its names are under `root`, and not at all when it has names outside
    (a hard link to a cached binary): deleting `root` would free none of its blocks."""
    inodes = {}
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            seen = inodes.setdefault((st.st_dev, st.st_ino), [st.st_blocks * 512, st.st_nlink, 0,
                                                               os.path.join(folder, name)])
            seen[2] += 1
    sizes = sorted(((size, path) for size, links, found, path in inodes.values() if found >= links), reverse=True)
    return sum(size for size, _ in sizes), sizes[:5]


@pytest.fixture(scope="session", autouse=True)
def _delete_made_cores(tmp_path_factory):
    """The disk is shared: every core and library copy the suite wrote is deleted at its end, and what is
    left in the run's temp directory is asserted to stay within DISK_BUDGET."""
    yield
    delete_made()
    used, largest = disk_used(tmp_path_factory.getbasetemp())
    assert used <= DISK_BUDGET, (f"this run leaves {used >> 20} MiB in {tmp_path_factory.getbasetemp()}, more than "
                                 f"{DISK_BUDGET >> 20} MiB; the largest: "
                                 + ", ".join(f"{path} ({size >> 20} MiB)" for size, path in largest))


def compile_c(module_name, source, cdefs, tmpdir):
    """Compile `source` through cffi into `tmpdir` and return its `lib`."""
    ffi = FFI()
    for cdef in cdefs:
        ffi.cdef(cdef)
    ffi.set_source(module_name, source)
    path = ffi.compile(tmpdir=str(tmpdir))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lib


def cli_text(*argv):
    """What `vmctx-emu ARGV` prints when it succeeds, run in-process: the engine every front end runs."""
    import io

    from vmctx_emu.cli import main

    out = io.StringIO()
    assert main([str(a) for a in argv], out=out) == 0
    return out.getvalue()


def run_cli(argv, capsys, out=None):
    """(exit status, stdout, stderr) of `vmctx-emu ARGV` run in-process; argparse's SystemExit is a status."""
    from vmctx_emu.cli import main

    try:
        status = main([str(a) for a in argv], out=out)
    except SystemExit as e:
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def dumps(tmp_path):
    """(instance, a.bin, b.bin) of the README's sample shape, 8-byte pointers, with sidecars: b has one memory
    set and a flag cleared after a was written."""
    inst = OwnedComponentInstance(SAMPLE, (0x1000, 0x2000), ptr=8, byte_order="little")
    a = inst.dump(tmp_path / "a.bin")
    inst.set_runtime_memory(0, 0xBEE0)
    inst.instance_flags(0).may_enter = False
    b = inst.dump(tmp_path / "b.bin")
    return inst, a, b


@pytest.fixture(scope="module")
def example():
    """A real Wasmtime process with one component context (`python -m vmctx_emu.live.example`), for a
    module's tests; killed after them. Tests using it skip themselves without wasmtime or off x86-64 Linux."""
    from test_scan_inputs import start_example, stop

    proc = start_example(seconds=300)
    try:
        yield proc
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def example_context(example):
    """The address of the example's one context (v50: one lowering, one instance, one trampoline)."""
    from vmctx_emu.live import scan

    [ctx] = scan(example.pid, decode=False).contexts
    return ctx.address
