"""Every shell block of the README runs as written (issue 12).

The blocks run in README order, each in its own `bash -e -o pipefail`, in one scratch directory that
looks like the repository's top level (its files linked in, `.venv` the interpreter running these
tests), with that venv's bin first on PATH and TMPDIR inside the scratch directory. A block preceded
by `<!-- readme-test: skip REASON -->` is skipped with that reason; only the entry points (`make
demo`, `make test`, which runs this test) and a block that needs the network are marked so.
"""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SHELL_LANGUAGES = ("sh", "bash", "console")
SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip\s+(.+?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")
TIMEOUT = 180


def shell_blocks(text):
    """(first line number, language, code, skip reason or None) of every shell block, in order."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        language, start = match.group(1), i + 1
        end = next(j for j in range(start, len(lines)) if lines[j].startswith("```"))
        if language in SHELL_LANGUAGES:
            previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            skip = SKIP_MARK.search(previous)
            code = "\n".join(lines[start:end])
            if language == "console":  # only the `$ ` lines are commands
                code = "\n".join(line[2:] for line in lines[start:end] if line.startswith("$ "))
            blocks.append((start + 1, language, code, skip.group(1) if skip else None))
        i = end + 1
    return blocks


BLOCKS = shell_blocks(README.read_text())


def test_readme_has_shell_blocks_and_few_skips():
    assert len(BLOCKS) >= 6
    skipped = [(line, reason) for line, _, _, reason in BLOCKS if reason]
    assert len(skipped) <= 2, skipped
    first = BLOCKS[0]
    assert "make demo" in first[2] and "make test" in first[2] and "entry points" in first[3]


@pytest.mark.parametrize("line, language, code, skip", [b for b in BLOCKS if not b[3]],
                         ids=[f"line{b[0]}" for b in BLOCKS if not b[3]])
def test_shell_blocks_are_not_placeholders(line, language, code, skip):
    """Regression: `[--json]` was pasted into a command line literally."""
    for command in code.splitlines():
        command = command.split("  #", 1)[0]
        assert not re.search(r"\s\[--?\w", command), f"README line {line}: optional syntax in {command!r}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch copy of the repository's top level: links to its files, `.venv` this interpreter's."""
    work = tmp_path_factory.mktemp("readme")
    for entry in ROOT.iterdir():
        if entry.name not in (".git", ".venv", ".hypothesis", ".pytest_cache"):
            (work / entry.name).symlink_to(entry)
    (work / ".venv").symlink_to(sys.prefix)
    (work / "tmp").mkdir()
    return work


def _needs(code):
    if re.search(r"(^|\s)(gdb|gcore)\s", code) and shutil.which("gdb") is None:
        return "gdb is not installed (make test installs the Debian package gdb)"
    if "gcc " in code and shutil.which("gcc") is None:
        return "gcc is not installed"
    return None


@pytest.mark.parametrize("line, language, code, skip", BLOCKS, ids=[f"line{b[0]}" for b in BLOCKS])
def test_readme_shell_block_runs(workdir, line, language, code, skip):
    if skip:
        pytest.skip(f"README line {line}: {skip}")
    missing = _needs(code)
    if not (pathlib.Path(sys.prefix) / "bin" / "vmctx-emu").exists():
        missing = f"the README's .venv/bin/vmctx-emu: tests run outside a venv with the package installed ({sys.prefix})"
    if missing:
        pytest.skip(missing)
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               TMPDIR=str(workdir / "tmp"))
    proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", code], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"README line {line}: still running after {TIMEOUT} s\n{out[-2000:]}\n{err[-2000:]}")
    finally:
        try:  # the walk-throughs start background processes: none outlives its block
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, f"README line {line} exited {proc.returncode}\n{out[-3000:]}\n{err[-3000:]}"
    assert "Traceback" not in out + err, f"README line {line}\n{err[-3000:]}"


def test_what_the_blocks_leave_in_the_top_level_is_ignored_by_git(workdir):
    """Regression (issue 19): `gdb_target`, compiled by the gdb block, showed in `git status`. Runs after
    the blocks (pytest keeps the file's order): every file they left is matched by .gitignore."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and the repository's .git")
    left = sorted(entry.name for entry in workdir.iterdir() if not entry.is_symlink() and entry.name != "tmp")
    names = sorted(set(left) | {"gdb_target"})  # the gdb block's, even where gdb or gcc is missing
    proc = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "--no-index", "--verbose", "--non-matching",
                           *names], capture_output=True, text=True)
    unmatched = [line.split("\t", 1)[1] for line in proc.stdout.splitlines() if line.startswith("::")]
    assert not unmatched, f"left by the README's shell blocks and not in .gitignore: {unmatched} (of {left})"
