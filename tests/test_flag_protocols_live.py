"""The emulator's flag protocol against real Wasmtime 50: the same flag words at the same moments.

Real components run in this process through wasmtime-py; their contexts are
found with `scan`, and the flag words are read (never written) at rest, from
inside a host import, after the call, after `post_return` and around a second
call. An emulated instance of the same release and counts goes through the
same calls with `host_call` / `FusedAdapter`; every word must agree.
"""

import os
import platform
import struct
import sys
import warnings
from importlib.metadata import version

import pytest

wasmtime = pytest.importorskip("wasmtime")
if not version("wasmtime").startswith("50."):
    pytest.skip(f"needs wasmtime 50.x, found {version('wasmtime')}", allow_module_level=True)
if sys.platform != "linux" or platform.machine() != "x86_64":
    pytest.skip("reads /proc/self/mem", allow_module_level=True)

from wasmtime.component import Component, Linker  # noqa: E402

from vmctx_emu import OwnedComponentInstance  # noqa: E402
from vmctx_emu.live import scan  # noqa: E402
from vmctx_emu.runtime.adapter import FusedAdapter, host_call, host_post_return  # noqa: E402

from test_real_wasmtime import LOWER_LIFT, NESTED_FUSED_ADAPTER  # noqa: E402

FLAG_SLOT = 16  # one VMGlobalDefinition per runtime component instance


class Real:
    """One real component instance in its own Store, its live context, and its flag words."""

    def __init__(self, wat, host):
        before = {c.address for c in scan().contexts}
        self.engine = wasmtime.Engine()
        self.store = wasmtime.Store(self.engine)
        linker = Linker(self.engine)
        with linker.root() as root:
            for name, impl in host.items():
                root.add_func(name, impl)
        self.instance = linker.instantiate(self.store, Component(self.engine, wat))
        [self.ctx] = [c for c in scan().contexts if c.address not in before]
        self.release = self.ctx.wasmtime
        self.flags_at = self.ctx.address + self.ctx.layout.offsets(8, **self.ctx.counts).region(
            self.ctx.layout.flags_field().name).offset
        self.fd = os.open("/proc/self/mem", os.O_RDONLY)

    def words(self):
        n = self.ctx.counts["num_runtime_component_instances"]
        return list(struct.unpack(f"<{n * 4}i", os.pread(self.fd, FLAG_SLOT * n, self.flags_at))[::4])

    def close(self):
        os.close(self.fd)

    def emulated(self):
        header = {"builtins": 0x1000, "store_context": 0x2000}
        return OwnedComponentInstance(self.ctx.counts, wasmtime=self.release, debug_assertions=False, header=header)


def test_a_host_call_reads_the_same_words_as_real_wasmtime():
    seen = {}
    real = Real(LOWER_LIFT, {"add": lambda store, x: (seen.setdefault("real", real.words()), x + 100)[1]})
    try:
        run = real.instance.get_func(real.store, "run")
        real_rest = real.words()
        assert run(real.store, 1) == 102
        real_after = real.words()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run.post_return(real.store)
        real_post = real.words()
        assert run(real.store, 2) == 103  # a second call without post_return succeeds in 50
        real_second = real.words()
        with real.emulated() as ctx:
            f = ctx.instance_flags(0)
            rest = [f.value]
            host_call(f, lambda: seen.setdefault("ours", [f.value]))
            after = [f.value]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                host_post_return(f)
            post = [f.value]
            host_call(f, lambda: None)
            second = [f.value]
        assert (real_rest, seen["real"], real_after, real_post, real_second) == \
            (rest, seen["ours"], after, post, second) == ([1], [1], [1], [1], [1])
    finally:
        real.close()


def test_a_fused_adapter_chain_reads_the_same_words_as_real_wasmtime():
    """Host -> A -> (fused adapter) -> B -> host import `log`: every instance's word inside the import."""
    seen = {}
    real = Real(NESTED_FUSED_ADAPTER, {"log": lambda store, x: seen.setdefault("real", real.words()) and None})
    try:
        run = real.instance.get_func(real.store, "run")
        real_rest = real.words()
        assert run(real.store, 5) == 11
        real_after = real.words()
        n = len(real_rest)
        assert n >= 2, real.ctx.counts
        with real.emulated() as ctx:
            flags = [ctx.instance_flags(i) for i in range(n)]
            words = lambda: [f.value for f in flags]  # noqa: E731
            rest = words()
            a, b = flags[2], flags[1]  # the root is 0, then B, then A (the caller): measured on v39-v41
            host_call(a, lambda: FusedAdapter(a, b).call(lambda: seen.setdefault("ours", words())))
            after = words()
        assert (real_rest, seen["real"], real_after) == (rest, seen["ours"], after)
    finally:
        real.close()
