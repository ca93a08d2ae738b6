"""A real Wasmtime whose host import blocks, for the store-context checks: `python store_context_child.py`.

Run inside one release's venv (wasmtime-py 39.0.0 on: its Python component
API). Instantiates the example component (host import `add`, lowered, lifted
`run`) in a Store with fuel 1000 and epoch deadline 5, prints `ready`, then
for each line on stdin:

* `call`: calls `run(1)`; the host import prints `inside` and blocks until
  the next line (`go`); then prints `after <run's result> <fuel left>`.
* `quit`: exits.

The parent reads the store context at rest, inside the import and after.
Standard library, `wasmtime` and `child.py` beside it (the release child's components) only.
"""

import sys

import wasmtime
from wasmtime.component import Component, Linker

from child import LOWER_LIFT as COMPONENT  # noqa: E402  (the example component; child.py sits here too)


def add(store, x):
    print("inside", flush=True)
    sys.stdin.readline()  # "go"
    return x + 100


def main():
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    store.set_fuel(1000)
    store.set_epoch_deadline(5)
    linker = Linker(engine)
    with linker.root() as root:
        root.add_func("add", add)
    instance = linker.instantiate(store, Component(engine, COMPONENT))
    run = instance.get_func(store, "run")
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "call":
            result = run(store, 1)
            try:
                run.post_return(store)
            except Exception:  # noqa: BLE001  (deprecated or absent in some releases)
                pass
            print("after", result, store.get_fuel(), flush=True)
        elif line.strip() == "quit":
            return


if __name__ == "__main__":
    main()
