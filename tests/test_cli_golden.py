"""Byte-for-byte CLI output on fixed dumps, pinned: what the renderers print must not drift.

The dumps in `tests/golden/` are the README's samples (`vmctx-emu demo --dump`) and two larger
emulated ones (`tests/golden/make_dumps.py`: 1,500 lowerings, 64-bit big-endian and 32-bit
little-endian, with runs that change digit counts, so the fast numpy paths and the line-by-line
ones both print). The expected output of each command was written by the CLI as of commit
015e928 (before the renderers moved into `vmctx_emu/describe/`): in full under
`tests/golden/expected/ID.out`, or as `STATUS SHA256 BYTES` in `ID.sha256` when it is large. The
one change since is the JSON `schema_version`, normalised here and checked on its own.
"""

import gzip
import hashlib
import json
import pathlib
import re
import shutil
import sys

import pytest
from conftest import run_cli

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"
EXPECTED = GOLDEN / "expected"
LAYOUT = ["--lowerings", "3", "--memories", "1", "--reallocs", "1", "--post-returns", "1", "--instances", "2",
          "--always-trap", "1"]
BIG = ["big-be64", "big-le32"]
# id -> argv (dump names are files of tests/golden/, copied into a scratch directory)
CASES = {
    "layout-table": ["layout", "--ptr-size", "8", *LAYOUT],
    "layout-json": ["layout", "--ptr-size", "8", "--instances", "1", "--json"],
    "layout-v21-ptr4": ["layout", "--wasmtime", "21", "--ptr-size", "4", "--trampolines", "2", "--instances", "1",
                        "--resources", "3"],
    "layout-v50-json": ["layout", "--wasmtime", "50", "--ptr-size", "8", "--trampolines", "2", "--instances", "1",
                        "--json"],
    "versions": ["versions"],
    "decode-ctx": ["decode", "ctx.bin"],
    "decode-ctx-json": ["decode", "ctx.bin", "--json"],
    "decode-after": ["decode", "after.bin"],
    "decode-after-json-strict": ["decode", "after.bin", "--json", "--strict"],
    "decode-forced-big-endian": ["decode", "ctx.bin", "--byte-order", "big", "--force"],
    "decode-forced-big-endian-json": ["decode", "ctx.bin", "--byte-order", "big", "--force", "--json"],
    "hexdump-ctx": ["hexdump", "ctx.bin"],
    "hexdump-after": ["hexdump", "after.bin"],
    "diff-same": ["diff", "before.bin", "before.bin"],
    "diff-before-after": ["diff", "before.bin", "after.bin"],
    "diff-before-after-json": ["diff", "before.bin", "after.bin", "--json"],
    "diff-same-json": ["diff", "ctx.bin", "ctx.bin", "--json"],
    # --no-sidecar: the engine alone, as before infer read sidecars (issue 19)
    "infer-ctx": ["infer", "ctx.bin", "--no-sidecar", "--ptr-size", "8", "--lowerings", "3"],
    "infer-ctx-json": ["infer", "ctx.bin", "--no-sidecar", "--ptr-size", "8", "--lowerings", "3", "--json"],
    "infer-after-limit": ["infer", "after.bin", "--no-sidecar", "--ptr-size", "8", "--limit", "4"],
    "infer-after-limit-json": ["infer", "after.bin", "--no-sidecar", "--ptr-size", "8", "--limit", "4", "--json"],
    "infer-none": ["infer", "ctx.bin", "--no-sidecar", "--ptr-size", "4"],
    "infer-none-json": ["infer", "ctx.bin", "--no-sidecar", "--ptr-size", "4", "--json"],
    "infer-v50": ["infer", "after.bin", "--no-sidecar", "--ptr-size", "8", "--wasmtime", "50", "--release"],
    "infer-seed-json": ["infer", "before.bin", "--no-sidecar", "--ptr-size", "8", "--wasmtime", "seed", "--json"],
    # the sidecar's pointer size, byte order, address and release; where its shape stands
    "infer-sidecar": ["infer", "before.bin", "--lowerings", "3", "--instances", "2", "--memories", "1"],
    "infer-sidecar-json": ["infer", "after.bin", "--limit", "2", "--json"],
}
for name in BIG:
    CASES.update({
        f"decode-{name}": ["decode", f"{name}.bin"],
        f"decode-{name}-json": ["decode", f"{name}.bin", "--json"],
        f"hexdump-{name}": ["hexdump", f"{name}.bin"],
        f"diff-{name}": ["diff", f"{name}.bin", f"{name}-later.bin"],
        f"diff-{name}-json": ["diff", f"{name}.bin", f"{name}-later.bin", "--json"],
    })
FULL_LIMIT = 64 << 10  # larger outputs are pinned by their digest
SCHEMA_LINE = re.compile(r'^( *)"schema_version": \d+,$', re.M)


def normalised(text):
    """The output with its JSON schema_version lines made version-independent."""
    return SCHEMA_LINE.sub(r'\1"schema_version": SCHEMA,', text)


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """The golden dumps, uncompressed, in a scratch directory."""
    work = tmp_path_factory.mktemp("golden")
    for path in GOLDEN.iterdir():
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f, open(work / path.name[:-3], "wb") as g:
                shutil.copyfileobj(f, g)
        elif path.suffix in (".bin", ".json"):
            shutil.copy(path, work / path.name)
    return work


def run(argv, dumps, capsys, monkeypatch):
    monkeypatch.chdir(dumps)
    status, out, err = run_cli(argv, capsys)
    assert err == "", err
    return status, out


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_output_is_pinned(case, dumps, capsys, monkeypatch):
    status, out = run(CASES[case], dumps, capsys, monkeypatch)
    text = normalised(out)
    full, digest = EXPECTED / f"{case}.out", EXPECTED / f"{case}.sha256"
    if full.exists():
        expected_status, expected = full.read_text().split("\n", 1)
        assert (status, text) == (int(expected_status), expected)
    else:
        data = text.encode()
        assert f"{status} {hashlib.sha256(data).hexdigest()} {len(data)}" == digest.read_text().strip()


def regenerate(dumps_dir):
    """Write the expected files from the CLI as it is now (only when its output is meant to change)."""
    from vmctx_emu.cli import main
    import contextlib
    import io
    import os

    EXPECTED.mkdir(exist_ok=True)
    os.chdir(dumps_dir)
    for case, argv in sorted(CASES.items()):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = main(argv, out=out)
        text = normalised(out.getvalue())
        if len(text) <= FULL_LIMIT:
            (EXPECTED / f"{case}.out").write_text(f"{status}\n{text}")
        else:
            data = text.encode()
            (EXPECTED / f"{case}.sha256").write_text(f"{status} {hashlib.sha256(data).hexdigest()} {len(data)}\n")


if __name__ == "__main__":  # python tests/test_cli_golden.py SCRATCH_DIR_WITH_THE_UNPACKED_DUMPS
    regenerate(sys.argv[1])
