"""Child processes the tests scan: started, awaited until they say they are ready, killed and reaped after."""

import contextlib
import subprocess
import sys


@contextlib.contextmanager
def ready_child(code, ready="ready"):
    """A `python -c CODE` child, yielded once its first line is `ready`; killed and reaped however the test ends."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        line = proc.stdout.readline().strip()
        assert line == ready, line
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
