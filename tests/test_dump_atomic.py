"""A dump and its sidecar are one unit: old or new pair after any kill or failure, no temp files left."""

import json
import os
import random
import signal
import time

import pytest

from vmctx_emu import Component, OwnedComponentInstance
from vmctx_emu.dumps import files as files_module
from vmctx_emu.dumps.dump import DumpError, load_dump, write_dump

OLD = OwnedComponentInstance(Component(num_lowerings=1), (0x1000, 0x2000), ptr=8)
NEW = OwnedComponentInstance(Component(num_lowerings=40, num_runtime_memories=3), (0x3000, 0x4000), ptr=8)
NEW.set_runtime_memory(2, 0xABC0)


def pair(path):
    """(bytes, counts) of the dump at `path`, as `load_dump` reads it."""
    ctx = load_dump(path)
    return ctx.to_bytes(), ctx.offsets.component.counts()


def expected(inst):
    return inst.to_bytes(), inst.offsets.component.counts()


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".vmctx-"))


def test_dump_killed_at_random_moments_leaves_old_or_new_pair(tmp_path):
    """40 SIGKILLs of a writer alternating two dumps of different layouts: always one whole pair loads."""
    path = tmp_path / "ctx.bin"
    write_dump(OLD, path)
    start = time.perf_counter()
    write_dump(NEW, path)
    write_dump(OLD, path)
    cycle = time.perf_counter() - start  # kills land anywhere in the writer's loop, however slow the disk
    rng = random.Random(12)
    seen = set()
    for _ in range(40):
        pid = os.fork()
        if pid == 0:  # the writer: dump the two shapes in turn until killed
            try:
                while True:
                    write_dump(NEW, path)
                    write_dump(OLD, path)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0, 3 * cycle))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        got = pair(path)
        assert got in (expected(OLD), expected(NEW))
        seen.add(got == expected(NEW))
    assert seen == {False, True}  # both states were caught, so the kills landed mid-loop
    stale_after = files_module.STALE_AFTER
    try:
        files_module.STALE_AFTER = 0.0
        write_dump(OLD, path)  # the next dump clears what the killed writers left
    finally:
        files_module.STALE_AFTER = stale_after
    assert leftovers(tmp_path) == [] and pair(path) == expected(OLD)


def test_dump_interrupted_between_the_renames_loads_the_new_pair(tmp_path, monkeypatch):
    """The sidecar is the commit point: stopped before the bytes' rename, the new dump still loads whole."""
    path = tmp_path / "ctx.bin"
    write_dump(OLD, path)
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        write_dump(NEW, path)
    monkeypatch.undo()
    assert path.read_bytes() == OLD.to_bytes()  # the bytes' rename never happened ...
    assert pair(path) == expected(NEW)  # ... yet the pair is the new one, from the staging file
    write_dump(OLD, path)
    assert pair(path) == expected(OLD)


@pytest.mark.parametrize("fail_at", ["fsync", "sidecar rename", "interrupt in write"])
def test_dump_failure_keeps_old_pair_and_leaves_no_temp_files(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "ctx.bin"
    write_dump(OLD, path)
    real_replace = os.replace

    def fsync(fd):
        raise OSError(28, "No space left on device")

    def replace(src, dst):
        raise PermissionError(13, "Permission denied", src, None, dst)  # as os.replace: the temp file first

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    if fail_at == "fsync":
        monkeypatch.setattr(os, "fsync", fsync)
        error, needle = DumpError, f"cannot write dump {path}: No space left on device"
    elif fail_at == "sidecar rename":
        monkeypatch.setattr(os, "replace", replace)
        error, needle = DumpError, f"cannot write dump {path}.json: Permission denied; the previous dump is unchanged"
    else:
        monkeypatch.setattr(files_module.os, "fdopen", interrupted)
        error, needle = KeyboardInterrupt, ""
    with pytest.raises(error) as e:
        write_dump(NEW, path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert needle in str(e.value) and ".tmp" not in str(e.value)
    assert leftovers(tmp_path) == []
    assert pair(path) == expected(OLD)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_dump_files_created_with_the_users_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_dump(OLD, tmp_path / "ctx.bin")
    finally:
        os.umask(old)
    assert oct((tmp_path / "ctx.bin").stat().st_mode & 0o777) == oct(mode)
    assert oct((tmp_path / "ctx.bin.json").stat().st_mode & 0o777) == oct(mode)


def test_dump_onto_symlink_writes_through_to_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "target.bin"
    write_dump(OLD, target)
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    (tmp_path / "link.bin.json").symlink_to(tmp_path / "real" / "target.bin.json")
    write_dump(NEW, link)
    assert link.is_symlink() and (tmp_path / "link.bin.json").is_symlink()
    assert pair(target) == expected(NEW) and pair(link) == expected(NEW)
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "real") == []


def test_dump_onto_a_directory_names_it(tmp_path):
    (tmp_path / "ctx.bin").mkdir()
    with pytest.raises(DumpError, match=f"cannot write dump {tmp_path / 'ctx.bin'}: it is a directory"):
        write_dump(OLD, tmp_path / "ctx.bin")
    assert leftovers(tmp_path) == []


def test_dump_to_a_missing_directory_names_the_users_path(tmp_path):
    path = tmp_path / "no" / "ctx.bin"
    with pytest.raises(DumpError, match=f"cannot write dump {path}: No such file or directory") as e:
        write_dump(OLD, path)
    assert ".tmp" not in str(e.value)


def test_sidecar_records_its_commit_and_older_sidecars_still_load(tmp_path):
    path = tmp_path / "ctx.bin"
    write_dump(NEW, path)
    meta = json.loads((tmp_path / "ctx.bin.json").read_text())
    assert len(meta["commit"]) == 16
    del meta["commit"]  # as written before the commit protocol
    (tmp_path / "ctx.bin.json").write_text(json.dumps(meta))
    assert pair(path) == expected(NEW)


@pytest.mark.parametrize("path", [5, None, b"ctx.bin", ""])
def test_dump_path_checked_at_the_boundary(path):
    with pytest.raises((TypeError, ValueError), match="path must"):
        write_dump(OLD, path)


def test_dump_whose_bytes_rename_fails_after_the_commit_still_loads_whole(tmp_path, monkeypatch):
    """Past the commit point nothing is rolled back: the error says so and the new pair loads."""
    path = tmp_path / "ctx.bin"
    write_dump(OLD, path)
    real_replace = os.replace

    def replace(src, dst):
        if str(dst) == str(path):
            raise OSError(5, "Input/output error", src, None, dst)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(DumpError, match=f"cannot write dump {path}: Input/output error; the new dump is complete"):
        write_dump(NEW, path)
    monkeypatch.undo()
    assert len(leftovers(tmp_path)) == 1 and pair(path) == expected(NEW)
    write_dump(NEW, path)
    assert pair(path) == expected(NEW)


def test_write_file_replaces_whole_leaves_no_staging_and_clears_a_killed_writers(tmp_path):
    """One file (a report page) written as the dump pair's bytes are: staged beside, synced, renamed over."""
    page = tmp_path / "report.html"
    page.write_bytes(b"old")
    killed = tmp_path / f".vmctx-report.html-{'0' * 16}.tmp"  # what a writer killed midway leaves
    killed.write_bytes(b"half")
    os.utime(killed, (0, 0))  # older than STALE_AFTER
    assert files_module.write_file(page, (b"new ", b"page")) == 8
    assert page.read_bytes() == b"new page" and sorted(os.listdir(tmp_path)) == ["report.html"]
    with pytest.raises(DumpError, match=r"cannot write .*/no-such-folder/p.html: No such file or directory"):
        files_module.write_file(tmp_path / "no-such-folder" / "p.html", (b"x",))
    with pytest.raises(DumpError, match="it is a directory"):
        files_module.write_file(tmp_path, (b"x",))

    def broken():
        yield b"part"
        raise OSError(28, "No space left on device")

    with pytest.raises(DumpError, match="No space left on device"):
        files_module.write_file(page, broken())
    assert page.read_bytes() == b"new page" and sorted(os.listdir(tmp_path)) == ["report.html"]
