"""Issue 20: names and numbers from a hostile target or command line answered in one line, never a traceback."""

import os
import subprocess
import sys
import time

import pytest

from vmctx_emu import wasmtime_layout
from vmctx_emu.errors import UnknownReleaseError

SCRIPT = r"""
import sys
import vmctx_emu.live as live
from vmctx_emu.live.scanner import ScanResult
name = "/tmp/lib\udcffwasm.so"  # a file name that is not UTF-8, as os hands it over
live.scan = lambda *a, **k: ScanResult("core /tmp/c\udcfe", "50.0.0", f"version string in {name}", [], [name], 0, False)
from vmctx_emu.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_a_file_name_that_is_not_utf8_is_printed_as_its_bytes(locale, tmp_path):
    env = {**os.environ, "LC_ALL": locale, "LANG": locale}
    env.pop("PYTHONIOENCODING", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, "scan", "--core", "x"], capture_output=True, env=env)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr
    assert b"version string in /tmp/lib\xffwasm.so" in proc.stdout and b"note: /tmp/lib\xffwasm.so" in proc.stdout
    assert proc.stdout.startswith(b"core /tmp/c\xfe: Wasmtime 50.0.0")


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_an_error_line_names_a_file_that_is_not_utf8_by_its_bytes(locale, tmp_path):
    name = os.path.join(os.fsencode(tmp_path), b"c\xff.core")
    env = {**os.environ, "LC_ALL": locale, "LANG": locale}
    env.pop("PYTHONIOENCODING", None)
    proc = subprocess.run([sys.executable, "-m", "vmctx_emu", "scan", "--core", name], capture_output=True, env=env)
    assert proc.returncode == 2 and proc.stdout == b"" and proc.stderr.count(b"\n") == 1, proc.stderr
    assert b"c\xff.core" in proc.stderr and b"\\udcff" not in proc.stderr, proc.stderr


def test_the_demo_writes_into_a_directory_named_in_any_bytes(tmp_path):
    folder = os.path.join(os.fsencode(tmp_path), b"dumps\xff")
    os.mkdir(folder)
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    proc = subprocess.run([sys.executable, "-m", "vmctx_emu", "demo", "--dump", folder], capture_output=True, env=env)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr
    assert b"dumps\xff" in proc.stdout and os.path.exists(os.path.join(folder, b"ctx.bin"))


@pytest.mark.parametrize("text", ["9" * 4400, "1" * 100_000, "1234567890.0.0", "0.40." + "7" * 5000])
def test_a_version_of_thousands_of_digits_is_refused_in_one_short_line(text):
    started = time.monotonic()
    with pytest.raises(UnknownReleaseError) as e:
        wasmtime_layout(text)
    assert time.monotonic() - started < 1 and len(str(e.value)) < 400
    assert str(e.value).startswith("not a Wasmtime version: ")
    proc = subprocess.run([sys.executable, "-m", "vmctx_emu", "layout", "--wasmtime", text], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and len(proc.stderr) < 500
    assert "not a Wasmtime version" in proc.stderr and "Traceback" not in proc.stderr


def test_a_mapping_that_ends_at_the_top_of_the_address_space_is_asked_about_without_overflow():
    import numpy as np

    from vmctx_emu.live.namer import AddressMap
    from vmctx_emu.live.source import Mapping

    top = AddressMap([Mapping(0x1000, 0x2000, "rw-p", 0, None), Mapping((1 << 64) - 0x1000, 1 << 64, "r-xp", 0, None)])
    assert top.pointers(np.array([0x1800, (1 << 64) - 0x10, 5], np.uint64), "callee").tolist() == [False, True, False]
    assert top.find((1 << 64) - 1).start == (1 << 64) - 0x1000


def test_a_pointer_near_the_top_is_unreadable_memory_not_a_bad_argument():
    from vmctx_emu.errors import ArgumentValueError, UnreadableMemoryError
    from vmctx_emu.live.process import ProcessSource

    with ProcessSource(os.getpid()) as src:
        with pytest.raises(UnreadableMemoryError) as e:
            src.read((1 << 64) - 4, 16)  # a store context pointer in a damaged context: a note, the scan goes on
        assert (e.value.address, e.value.size) == ((1 << 64) - 4, 16) and "past the end" in str(e.value)
        for address in (-1, 1 << 64):
            with pytest.raises(ArgumentValueError):
                src.read(address, 16)


@pytest.mark.parametrize("call, error, message", [
    (lambda live, src: live.scan("\0"), "ArgumentValueError", "a core file path has no NUL byte"),
    (lambda live, src: live.scan(b"core\0"), "ArgumentValueError", "a core file path has no NUL byte"),
    (lambda live, src: list(src.iter_chunks("x")), "ArgumentTypeError", "mapping must be a Mapping"),
    (lambda live, src: list(src.iter_chunks(None)), "ArgumentTypeError", "mapping must be a Mapping"),
    (lambda live, src: live.process.parse_maps(None), "ArgumentTypeError", "parse_maps takes the text of a maps file"),
    (lambda live, src: live.process.parse_maps(5), "ArgumentTypeError", "parse_maps takes the text of a maps file"),
])
def test_wrong_arguments_to_the_live_api_are_the_package_s_errors(call, error, message):
    import vmctx_emu.live as live
    from vmctx_emu.live.process import ProcessSource

    with ProcessSource(os.getpid()) as src:
        with pytest.raises(Exception) as e:
            call(live, src)
    assert type(e.value).__name__ == error and type(e.value).__module__ == "vmctx_emu.errors"
    assert message in str(e.value)


def test_the_disk_budget_counts_what_files_hold_not_what_they_claim(tmp_path):
    from conftest import disk_used

    (tmp_path / "sparse").write_bytes(b"")
    with open(tmp_path / "sparse", "r+b") as f:
        f.truncate(3 << 30)  # 3 GiB apparent, nothing held
    (tmp_path / "real").write_bytes(b"x" * (1 << 20))
    inside, outside = tmp_path / "run", tmp_path / "cache"
    inside.mkdir(), outside.mkdir()
    (outside / "binary").write_bytes(b"y" * (1 << 20))
    os.link(outside / "binary", inside / "binary")  # a hard link to a cached file: deleting the run frees nothing
    os.link(inside / "binary", inside / "again")
    (inside / "twice").write_bytes(b"z" * (1 << 20))
    os.link(inside / "twice", inside / "twice-again")  # both names in the run: counted once
    used, largest = disk_used(tmp_path)
    assert (3 << 20) <= used < (4 << 20) and largest[0][1] in (str(tmp_path / "real"), str(outside / "binary"),
                                                              str(inside / "twice"))
    run_used, _ = disk_used(inside)
    assert (1 << 20) <= run_used < (3 << 19)
    (tmp_path / "sparse").unlink()  # 3 GiB apparent: not left in pytest's kept directories


def test_files_a_target_names_are_opened_only_when_regular_and_never_waited_on(tmp_path):
    from vmctx_emu.live.source import open_regular

    fifo = tmp_path / "swapped-in"
    os.mkfifo(fifo)
    started = time.monotonic()
    for path in (fifo, "/dev/null"):
        with pytest.raises(OSError, match="is not a regular file"):
            open_regular(path)
    assert time.monotonic() - started < 1  # a FIFO with no writer would block a plain open() forever
    (tmp_path / "plain").write_bytes(b"ELF")
    with open_regular(tmp_path / "plain") as f:
        assert f.read() == b"ELF" and os.get_blocking(f.fileno())
