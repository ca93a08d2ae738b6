"""`make demo`: the whole story on built-in defaults, printed step by step."""

import os
import tempfile

from .layouts.releases import Component
from .dumps.decode import decode, padding_differences
from .describe.diff import diff_table
from .describe.records import decoded_table
from .runtime.adapter import FusedAdapter
from .dumps.dump import load_dump
from .memory.flags import flag_names
from .memory.instance import OwnedComponentInstance
from .layouts.ptr import HostPtr
from .memory.reader import VMLowering
from .describe.layout import layout_table

__all__ = ["run_demo", "write_sample_dumps", "SAMPLE_COMPONENT", "SAMPLE_STORE"]

# The shape `make demo` shows: a little of everything.
SAMPLE_COMPONENT = Component(
    num_lowerings=3,
    num_runtime_memories=1,
    num_runtime_reallocs=1,
    num_runtime_post_returns=1,
    num_runtime_component_instances=2,
    num_always_trap=1,
)
SAMPLE_STORE = (0x5555_0000_1000, 0x5555_0000_2000)


def write_sample_dumps(directory):
    """ctx.bin (as initialized), before.bin (a few slots set), after.bin (later), each with its sidecar, in
    `directory` (made if missing): the dumps the README uses. Their paths."""
    os.makedirs(directory, exist_ok=True)
    with OwnedComponentInstance(SAMPLE_COMPONENT, store=SAMPLE_STORE) as inst:
        paths = [inst.dump(os.path.join(directory, "ctx.bin"))]
        inst.set_runtime_memory(0, 0x7000_0000_1000)
        inst.set_lowering(0, VMLowering(callee=0x6000_0000_0100, data=0x6000_0000_0200), 0x6000_0000_0300, 17)
        paths.append(inst.dump(os.path.join(directory, "before.bin")))
        inst.set_always_trap(0, 0x6000_0000_0400, 18)
        inst.instance_flags(1).may_enter = False
        inst.instance_flags(1).needs_post_return = True
        paths.append(inst.dump(os.path.join(directory, "after.bin")))
    return paths


def run_demo(out):
    def say(title):
        out.write(f"\n== {title}\n")

    inst = OwnedComponentInstance(SAMPLE_COMPONENT, store=SAMPLE_STORE)
    say(f"1. Layout of a sample component on this host ({int(HostPtr)}-byte pointers)")
    out.write(layout_table(inst.offsets) + "\n")

    say("2. A debug-initialized instance, then a few slots set like instantiation does")
    inst.set_runtime_memory(0, 0x7000_0000_1000)
    inst.set_lowering(0, VMLowering(callee=0x6000_0000_0100, data=0x6000_0000_0200), 0x6000_0000_0300, 17)
    out.write(f"context at {inst.vmctx:#x}, {inst.offsets.size_of_vmctx()} bytes; "
              f"instance_flags(0) = {inst.instance_flags(0)!r}\n")

    with tempfile.TemporaryDirectory(prefix="vmctx-demo-") as tmp:
        before = os.path.join(tmp, "before.bin")
        inst.dump(before)
        # Named by no path: the directory is gone when the demo ends (`demo --dump DIR` writes dumps to keep).
        say("3. Dumped to a temporary file and its .json sidecar (removed when the demo ends; "
            "`vmctx-emu demo --dump DIR` writes dumps to keep), then decoded")
        out.write(decoded_table(decode(load_dump(before))) + "\n")

        inst.set_always_trap(0, 0x6000_0000_0400, 18)
        inst.instance_flags(1).may_enter = False
        inst.instance_flags(1).needs_post_return = True
        after = os.path.join(tmp, "after.bin")
        inst.dump(after)
        say("4. Later state: an always-trap function set, instance 1 entered; diff against step 3")
        a, b = decode(load_dump(before)), decode(load_dump(after))
        out.write(diff_table(a, b, padding_differences(a, b)) + "\n")
    inst.close()

    say("5. A fused adapter call: instance 0 (caller, canon lower) calls instance 1 (callee, canon lift)")
    with OwnedComponentInstance(SAMPLE_COMPONENT, store=(0x5555_0000_1000, 0x5555_0000_2000)) as ctx:
        caller, callee = ctx.instance_flags(0), ctx.instance_flags(1)

        def show(when):
            out.write(f"  {when:<7} caller flags = {flag_names(caller.value):<20} "
                      f"callee flags = {flag_names(callee.value)}\n")

        def body(x, y):
            show("during")
            return x + y

        show("before")
        result = FusedAdapter(caller, callee).call(body, 2, 3)
        show("after")
        out.write(f"  result = {result}\n")
