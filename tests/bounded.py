"""Run `vmctx-emu ARGV` in a subprocess and measure what it cost: the bounds every hostile input must keep
(issue 20), in one place, and the one way the suite and `make fuzz` measure them.

Peak memory is the command's own `ru_maxrss` from `os.wait4`, taken by a small
launcher process rather than by the caller: Linux carries the forking process's
high-water RSS into the child's `ru_maxrss` across exec (a pytest process of
600 MiB would make every command read 600 MiB), so the command is started from
a fresh interpreter of ~10 MiB (as `benchmarks/peak.py` does).
"""

import json
import os
import signal
import subprocess
import sys
from typing import NamedTuple

HOSTILE_SECONDS = 2  # wall seconds a hostile input may cost a command, interpreter start-up excluded (issue 20)
HOSTILE_MIB = 256  # peak resident MiB a hostile input may cost a command (issue 20)
HANG_SECONDS = 30  # a command still running after this is killed and reported as hung: never a stuck suite

CLI = [sys.executable, "-m", "vmctx_emu"]

# The launcher: runs argv[2:], then writes (status, seconds, peak KiB) as JSON to the fd in argv[1].
_LAUNCHER = """
import json, os, subprocess, sys, time
report = int(sys.argv[1])
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - start
os.write(report, json.dumps([os.waitstatus_to_exitcode(status), seconds, usage.ru_maxrss]).encode())
"""


class Run(NamedTuple):
    """What one command cost: exit status (None: killed as hung), its output as bytes, wall seconds and peak MiB."""

    status: int | None
    stdout: bytes
    stderr: bytes
    seconds: float
    mib: float

    @property
    def err(self):
        return self.stderr.decode("utf-8", "replace")

    @property
    def out(self):
        return self.stdout.decode("utf-8", "replace")

    def within(self, startup=0.0):
        """Whether it kept both bounds, `startup` (the interpreter's own start-up) not counted against it."""
        return self.status is not None and self.seconds - startup <= HOSTILE_SECONDS and self.mib <= HOSTILE_MIB


def run(argv, *, stdin=None, env=None, cwd=None, timeout=HANG_SECONDS, command=None):
    """Run `vmctx-emu ARGV` (or `command + ARGV`) with `stdin` bytes (default: none); a Run.

    The launcher and the command run in a session of their own, killed whole when
    `timeout` passes (status None, seconds = timeout).
    """
    argv = [*(CLI if command is None else command), *(os.fsencode(a) if isinstance(a, bytes) else str(a)
                                                       for a in argv)]
    read, write = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(write), *argv], pass_fds=(write,), env=env, cwd=cwd,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    finally:
        os.close(write)
    with os.fdopen(read, "rb") as report:
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            return Run(None, out, err, float(timeout), 0.0)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # nothing the command started outlives it
            except ProcessLookupError:
                pass
        status, seconds, kib = json.loads(report.read())
    return Run(status, out, err, seconds, kib / 1024)


def startup_seconds(tries=3):
    """Wall seconds of `vmctx-emu --help`, the fastest of `tries`: what the interpreter and imports cost."""
    return min(run(["--help"]).seconds for _ in range(tries))


if __name__ == "__main__":  # `python tests/bounded.py ARGV...`: one command's cost, by hand
    result = run(sys.argv[1:])
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    print(f"exit {result.status}, {result.seconds:.2f} s, {result.mib:.0f} MiB", file=sys.stderr)
    sys.exit(0 if result.status is None else result.status)
