"""Two files written as one atomic unit, and reads bounded before they start: the dump's file protocol.

A dump is two files: `ctx.bin`, the context's bytes and nothing else (so any
hex tool reads it), and `ctx.bin.json`, the sidecar. Two renames cannot be one
atomic step, so the sidecar is the commit point and names the bytes it belongs to:

1. the bytes go to a staging file `.vmctx-ctx.bin-TOKEN.bin.tmp` beside
   `ctx.bin`, the sidecar (recording `"commit": TOKEN`) to a temp file beside
   `ctx.bin.json`; both are fsynced;
2. the sidecar is renamed over `ctx.bin.json`: from here on the new dump is the dump;
3. the staging file is renamed over `ctx.bin`.

A reader takes the bytes from the staging file its sidecar's token names while
that file exists (a writer stopped between 2 and 3), else from `ctx.bin`. So a
writer killed at any moment leaves the complete old pair (before 2) or the
complete new one (from 2 on), never a mix; a failure before 2 removes every temp
file and leaves the old pair untouched. What a SIGKILL leaves behind (staging
files no sidecar names) is removed by the next dump to that path, once older
than `STALE_AFTER` seconds (younger ones may belong to a writer still running).
Writing goes through symlinks (the link's target is replaced, the link kept).

A directory of files (a capture: `write_directory`) is one unit too: its
total size is bounded before anything is written, the files go to a staging
directory `.vmctx-DIR-TOKEN.dir.tmp` beside it, are synced (one `sync(2)`),
and one rename makes it DIR.
DIR may not exist yet or be empty; one that holds anything is refused, so a
reader finds no DIR, an empty one, or the whole capture.

Reading checks before it reads: the file must be a regular file (unless
`allow_special`: a device, a FIFO) no larger than what is asked for. What the
files mean is `sidecar.py`'s and `dump.py`'s; nothing here knows a layout.
"""

import os
import re
import secrets
import shutil
import stat
import time

from ..checks import check_int
from ..errors import ArgumentTypeError, ArgumentValueError, CaptureError, DumpError

__all__ = ["MAX_DUMP_BYTES", "STALE_AFTER", "TOKEN", "check_path", "sidecar_path", "write_pair", "write_file",
           "write_directory",
           "check_free_directory",
           "open_checked", "read_bounded", "read_dump_bytes", "read_committed"]

# What `read_dump_bytes` reads at most unless told otherwise (a 1M-lowering dump is tens of MB).
MAX_DUMP_BYTES = 1 << 30
# Leftover staging files younger than this may belong to a writer still running.
STALE_AFTER = 60.0
# A commit token, as the sidecar records it.
TOKEN = re.compile(r"[0-9a-f]{16}")

# A writer's temp files: `.vmctx-NAME-TOKEN` + one of these, beside NAME (`_remove_stale` finds them so).
_STAGING, _TEMP_SIDECAR = ".bin.tmp", ".tmp"


def sidecar_path(path):
    return os.fspath(path) + ".json"


def _temp_path(real_path, token, suffix):
    directory, name = os.path.split(real_path)
    return os.path.join(directory, f".vmctx-{name}-{token}{suffix}")


def check_path(path, what="path"):
    """`path` as a str naming a file, or an error naming `what`."""
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"{what} must be a str or os.PathLike, got {type(path).__name__} {path!r}")
    path = os.fspath(path)
    if not isinstance(path, str):
        raise ArgumentTypeError(f"{what} must name a file as str, got {type(path).__name__} {path!r}")
    if not path or "\0" in path:
        raise ArgumentValueError(f"{what} must be a non-empty file name without NUL, got {path!r}")
    return path


# -- writing ---------------------------------------------------------------


def _write_file(path, data, *, made=None, sync=False):
    """Create `path` (mode 0666 less the umask) and write `data` (bytes, or an iterable of bytes pieces); `made`
    gets the path once it exists; fsync only with `sync` (a directory's writer syncs once for all its files).
    Returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    if made is not None:
        made.append(path)
    try:
        f = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        for piece in (data,) if isinstance(data, (bytes, bytearray, memoryview)) else data:
            f.write(piece)
        if sync:
            f.flush()
            os.fsync(f.fileno())
        return f.tell()


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _refuse_directory(path, real):
    if os.path.isdir(real):
        raise DumpError(f"cannot write dump {path}: it is a directory")


def _remove_stale(real_bin, real_side, keep):
    """Staging and temp files of this dump that no sidecar names any more (a killed writer's)."""
    _remove_stale_of(real_bin, _STAGING, keep)
    _remove_stale_of(real_side, _TEMP_SIDECAR, keep)


def _remove_stale_of(real, suffix, keep):
    """The temp files `real`'s writers name with `suffix` and a token other than `keep`, once stale."""
    directory, prefix = os.path.split(_temp_path(real, "", ""))
    for full in _stale(directory or ".", prefix, suffix, keep):
        try:
            os.unlink(full)
        except OSError:
            pass


def _stale(directory, prefix, suffix, keep):
    """The paths in `directory` named `prefix + TOKEN + suffix` (a token other than `keep`), older than
    STALE_AFTER: what a killed writer left."""
    now = time.time()
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for name in names:
        token = name[len(prefix):-len(suffix)] if name.startswith(prefix) and name.endswith(suffix) else ""
        if not TOKEN.fullmatch(token) or token == keep:
            continue
        full = os.path.join(directory, name)
        try:
            if now - os.lstat(full).st_mtime >= STALE_AFTER:
                found.append(full)
        except OSError:
            pass
    return found


def write_pair(path, data, sidecar):
    """Write `data` to `path` and `sidecar(token)` (bytes naming `token` as its commit) to `path + '.json'`,
    as one atomic unit (module doc). Errors are `DumpError`s naming the file; no temp file survives one."""
    path = check_path(path)
    real_bin = os.path.realpath(path)
    real_side = os.path.realpath(sidecar_path(path))
    _refuse_directory(path, real_bin)
    _refuse_directory(sidecar_path(path), real_side)
    token = secrets.token_hex(8)
    staging = _temp_path(real_bin, token, _STAGING)
    temp_side = _temp_path(real_side, token, _TEMP_SIDECAR)
    text = sidecar(token)
    made, committed, where = [], False, path  # `where`: the user's name of the file being written
    try:
        _write_file(staging, data, made=made, sync=True)
        where = sidecar_path(path)
        _write_file(temp_side, text, made=made, sync=True)
        os.replace(temp_side, real_side)  # the commit point
        made.remove(temp_side)
        committed, where = True, path
        os.replace(staging, real_bin)
        made.remove(staging)
        for directory in {os.path.dirname(real_bin), os.path.dirname(real_side)}:
            _fsync_dir(directory)
    except OSError as e:
        done = (f"; the new dump is complete (its sidecar names its bytes in {staging}), "
                f"but {path} still holds the old bytes") if committed else "; the previous dump is unchanged"
        raise DumpError(f"cannot write dump {where}: {e.strerror or e}{done}") from None
    finally:
        for tmp in made:
            if not (committed and tmp == staging):  # committed: the staging file is the dump's bytes
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
    _remove_stale(real_bin, real_side, token)
    return path


def write_file(path, pieces):
    """Write the bytes `pieces` yields to `path` through a staging file beside it, synced and renamed over it:
    a reader finds the old file or the whole new one, and a failure leaves no part of it (a killed writer's
    staging file is removed by the next write to `path`). Returns the bytes written; `DumpError` names the file."""
    path = check_path(path)
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise DumpError(f"cannot write {path}: it is a directory")
    token = secrets.token_hex(8)
    staging = _temp_path(real, token, _TEMP_SIDECAR)
    made = []
    try:
        size = _write_file(staging, pieces, made=made, sync=True)
        os.replace(staging, real)
        made.remove(staging)
        _fsync_dir(os.path.dirname(real))
    except OSError as e:
        raise DumpError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        for tmp in made:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _remove_stale_of(real, _TEMP_SIDECAR, token)
    return size


def _refuse_occupied(path, real):
    """A CaptureError unless `real` does not exist or is an empty directory."""
    if not os.path.lexists(real):
        return
    if not os.path.isdir(real):
        raise CaptureError(f"cannot write {path}: it exists and is not a directory; name a new or empty directory",
                           directory=path, reason="not a directory")
    try:
        entries = os.listdir(real)
    except OSError as e:
        raise CaptureError(f"cannot write {path}: {e.strerror or e}", directory=path, reason=e.strerror) from None
    if entries:
        raise CaptureError(f"cannot write {path}: it exists and is not empty ({len(entries)} entries); name a new "
                           "or empty directory", directory=path, reason="not empty")


def check_free_directory(path):
    """`path` if a capture may be written there (it does not exist, or is an empty directory), else the
    `CaptureError` `write_directory` would raise: a caller can ask before work that takes long."""
    path = check_path(path, "directory")
    _refuse_occupied(path, os.path.realpath(path))
    return path


def _remove_stale_directories(parent, prefix, keep):
    """Staging directories of a killed writer to the same directory, older than STALE_AFTER."""
    for full in _stale(parent, prefix, ".dir.tmp", keep):
        try:
            shutil.rmtree(full)
        except OSError:
            pass


def write_directory(path, files, limit, before=None):
    """Write `files` ((file name, bytes) each) into the directory `path` as one unit (module doc); returns
    the bytes written.

    Their total must be at most `limit` bytes, checked before anything is
    written; then `before(total, count)` is called (to say what is about to be
    written). `path` must not exist or be an empty directory (a symlink is
    followed). Errors are `CaptureError`s naming `path`; no staging file or
    directory survives one.
    """
    path = check_path(path, "directory")
    files = list(files)
    for name, _ in files:
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise ArgumentValueError(f"file name {name!r} is not a plain file name", argument="files", value=name)
    total = sum(len(data) for _, data in files)
    if total > limit:
        raise CaptureError(f"cannot write {path}: its {len(files)} files are {total:,} bytes, more than the "
                           f"{limit:,} bytes allowed", directory=path, size=total, limit=limit, reason="too large")
    real = os.path.realpath(path)
    _refuse_occupied(path, real)
    if before is not None:
        before(total, len(files))
    parent, base = os.path.split(real)
    token = secrets.token_hex(8)
    prefix = f".vmctx-{base}-"
    staging = os.path.join(parent, f"{prefix}{token}.dir.tmp")
    try:
        os.mkdir(staging, 0o777)
        try:
            for name, data in files:
                _write_file(os.path.join(staging, name), data)
            # One sync(2) for them all, before the commit: an fsync per file costs thousands of journal
            # commits (2,000 contexts: 4,000 files, 14 s here against 2 s).
            os.sync()
            os.rename(staging, real)  # onto nothing or an empty directory: the commit point
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except OSError as e:
        if os.path.isdir(real) and os.listdir(real):
            _refuse_occupied(path, real)  # filled by someone else meanwhile
        raise CaptureError(f"cannot write {path}: {e.strerror or e}; nothing was written", directory=path,
                           reason=e.strerror) from None
    _fsync_dir(parent)
    _remove_stale_directories(parent, prefix, token)
    return total


# -- reading -----------------------------------------------------------------


def open_checked(path, what, allow_special):
    """(file object, size or None) after checking it is a regular file (or `allow_special`)."""
    try:
        # O_NONBLOCK: a plain open of a FIFO waits for a writer, forever; the mode is known only after it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except IsADirectoryError:
        raise DumpError(f"cannot read {what} {path}: it is a directory") from None
    except OSError as e:
        raise DumpError(f"cannot read {what} {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        raise DumpError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if stat.S_ISREG(st.st_mode):
        os.set_blocking(fd, True)  # no effect on a regular file's reads; set back so the fd is ordinary
        return open(fd, "rb"), st.st_size
    os.close(fd)
    if stat.S_ISDIR(st.st_mode):
        raise DumpError(f"cannot read {what} {path}: it is a directory")
    if not allow_special:
        hint = " (in Python: allow_special=True)" if what == "dump" else ""  # a sidecar is always a regular file
        raise DumpError(f"cannot read {what} {path}: not a regular file (a device, FIFO or socket); "
                        f"copy it to a regular file first{hint}")
    return open(path, "rb"), None  # asked for: a special file is read as it comes, a FIFO waits for its writer


def read_bounded(path, limit, what="dump", allow_special=False, why=None):
    """(bytes, size): at most `limit` bytes of `path`, or a `DumpError` naming its size and the limit.

    `size` is the file's size (stat), or what was read from a special file.
    """
    f, size = open_checked(path, what, allow_special)
    reason = f" ({why})" if why else ""
    with f:
        if size is not None and limit is not None and size > limit:
            raise DumpError(f"{what} {path} is {size:,} bytes, more than the {limit:,} bytes it may have{reason}")
        try:
            data = f.read() if limit is None else f.read(limit + 1)
        except OSError as e:
            raise DumpError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if limit is not None and len(data) > limit:
        raise DumpError(f"{what} {path} has more than the {limit:,} bytes it may have{reason}")
    return data, len(data) if size is None else size


def read_dump_bytes(path, limit=MAX_DUMP_BYTES, *, allow_special=False):
    """The raw bytes of a dump, at most `limit` of them (None: no limit), checked before reading.

    A file that is not regular (a device such as /dev/zero, a FIFO) is refused
    unless `allow_special`; a larger file is refused from its size alone, so a
    sparse or endless file costs nothing. Errors are `DumpError`s naming the
    file, its size and the limit.
    """
    path = check_path(path)
    if limit is not None:
        check_int("limit", limit, 0, kind="an int or None")
    return read_bounded(path, limit, allow_special=bool(allow_special))[0]


def read_committed(path, commit, expected, allow_special=False):
    """(bytes, size): the bytes the sidecar's `commit` names (its staging file while the writer has not
    renamed it yet, else `path`), at most `expected + 1` read; `size` the file's own (stat)."""
    source = path
    if commit is not None:
        staging = _temp_path(os.path.realpath(path), commit, _STAGING)
        if os.path.isfile(staging):
            source = staging
    try:
        f, size = open_checked(source, "dump", allow_special)
    except DumpError:
        if source == path:
            raise
        f, size = open_checked(path, "dump", allow_special)  # the writer finished its rename meanwhile
    with f:
        try:
            data = f.read(expected + 1)
        except OSError as e:
            raise DumpError(f"cannot read dump {path}: {e.strerror or e}") from None
    return data, len(data) if size is None else max(size, len(data))
