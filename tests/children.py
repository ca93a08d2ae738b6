"""Child processes the tests scan: started, awaited until they say they are ready, killed and reaped after."""

import contextlib
import subprocess
import sys
import textwrap

from cores import SMALL_MEMORIES

# A wasmtime-py child: each (component text, host function names, copies) instantiated `copies` times in a store
# of its own, each host function returning 3 (or nothing for peek, note and log); never called here.
STORES = textwrap.dedent("""
    import time, wasmtime
    from wasmtime.component import Component, Linker
    {small}
    engine = small_engine(wasmtime)
    keep = []
    for wat, host, copies in {shapes!r}:
        store = wasmtime.Store(engine)
        linker = Linker(engine)
        with linker.root() as root:
            for name in host:
                root.add_func(name, lambda store, *args, name=name: None if name in ("peek", "note", "log") else 3)
        component = Component(engine, wat)
        keep.append((store, [linker.instantiate(store, component) for _ in range(copies)]))
    print("ready", flush=True)
    time.sleep(300)
""")


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


def stores_child(shapes):
    """The STORES child of `shapes` ((component text, host function names, copies) each), with small memories."""
    return ready_child(STORES.format(shapes=shapes, small=SMALL_MEMORIES))
