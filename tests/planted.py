"""A hostile live target: the real-Wasmtime example that also plants fake contexts in its own memory.

`python tests/planted.py [--copies N] [--claim COUNT] [--claim-room MIB] [--bad-pointer VALUE]` instantiates the
example component (`vmctx_emu.live.example`), finds its one real context by scanning itself, then plants, in
ctypes buffers it keeps alive:

- `--copies N`: N copies of the real context's ComponentInstance (its id, stored VMComponentOffsets copy,
  self pointer, then the context), each in its own `malloc` block of the real one's size and patched so that
  every word holding the real address holds the copy's own: each is a live context to the scanner.
- `--shapes N`: as `--copies`, each of another shape (SHAPES: more lowerings, memories, reallocs and
  post-returns, their slots zero).
- `--packed N`: N such copies side by side in one buffer (the allocator then calls them reused memory).
- `--claim COUNT`: one more such copy whose stored VMComponentOffsets claims COUNT lowerings (every stored
  offset recomputed, so the copy is "intact"), placed at the start of an anonymous mapping of `--claim-room`
  MiB (default 1: smaller than the claim) that is never touched past the copy: the target holds a few hundred
  real bytes whatever the claim.
- `--bad-pointer VALUE`: one more copy whose first lowering's callee and data and first trampoline's code
  pointers hold VALUE.

It prints "pid N ready: real ADDR planted A,B,..." (the planted addresses, hex; at most 8) and sleeps.
"""

import argparse
import ctypes
import mmap
import os
import sys
import time

from vmctx_emu.live.example import instantiate
from vmctx_emu.live.scanner import STORED_WINDOW, scan
from vmctx_emu.live.shape import ID_BYTES, find_copy

ALIGN = 16
PTR = 8


def real_context():
    """(address, bytes from STORED_WINDOW before it to its end, its LiveContext) of this process's one context."""
    [ctx] = [c for c in scan(None, decode=False).contexts if c.data is not None]
    return ctx.address, ctypes.string_at(ctx.address - STORED_WINDOW, STORED_WINDOW + len(ctx.data)), ctx


def moved(image, old, new):
    """`image` (starting STORED_WINDOW before a context at `old`) with every aligned word equal to `old` set to
    `new`: the self pointer and the vmctx fields name the copy."""
    out = bytearray(image)
    for at in range(0, len(out) - PTR + 1, PTR):
        if int.from_bytes(out[at : at + PTR], "little") == old:
            out[at : at + PTR] = new.to_bytes(PTR, "little")
    return out


def reshaped(image, ctx, **changed):
    """`image` with its stored VMComponentOffsets copy claiming the `changed` counts, every stored offset
    recomputed (so our calculator reproduces it)."""
    layout = ctx.layout
    copy = find_copy(bytes(image[:STORED_WINDOW]), ctx.address - STORED_WINDOW, layout, ctx.address)
    counts = dict(ctx.counts, **changed)
    offsets = layout.offsets(PTR, **counts)
    stored = [r.offset for r, f in zip(offsets.regions(), layout.declared_fields()) if f.offset_stored]
    words = [counts[name] for name in layout.count_names] + stored + [offsets.size_of_vmctx()]
    at = copy.at - (ctx.address - STORED_WINDOW)
    out = bytearray(image)
    out[at : at + 4 * len(words)] = b"".join(w.to_bytes(4, "little") for w in words)
    return out


# The counts `--shapes` varies (the regions after the trampolines, so the real bytes up to them stay where
# they are), and how many values each takes: 10 * 10 * 10 * 5 shapes.
SHAPES = (("num_lowerings", 10), ("num_runtime_memories", 10), ("num_runtime_reallocs", 10),
          ("num_runtime_post_returns", 5))


def shape(image, ctx, i):
    """`image` as a context of the i-th shape of SHAPES: its stored copy reshaped, zeros past the real bytes."""
    counts = {}
    for name, values in SHAPES:
        i, counts[name] = divmod(i, values)
    counts["num_lowerings"] += 1  # the real lowering stays
    size = ctx.layout.offsets(PTR, **dict(ctx.counts, **counts)).size_of_vmctx()
    return reshaped(image, ctx, **counts) + bytes(STORED_WINDOW + size - len(image))


class Planter:
    def __init__(self, real, image):
        self.real, self.image, self.kept, self.planted = real, image, [], []

    def plant_blocks(self, count, block, images=None):
        """`count` copies, each in its own malloc block holding ComponentInstance from `block` bytes before the
        context; `images(i)`, when given, makes the i-th copy's bytes (from STORED_WINDOW before the context,
        as `self.image`). Returns their addresses."""
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        out = []
        for i in range(count):
            image = (self.image if images is None else images(i))[STORED_WINDOW - block :]
            start = libc.malloc(len(image))
            address = start + block
            self.kept.append(start)  # never freed: the process exits
            data = moved(b"\0" * (STORED_WINDOW - block) + image, self.real, address)[STORED_WINDOW - block :]
            ctypes.memmove(start, bytes(data), len(data))
            out.append(address)
        self.planted += out
        return out

    def plant(self, count, patch=lambda image, address: image):
        """`count` copies in one buffer, each at a 16-aligned address; returns their addresses."""
        stride = -(-len(self.image) // ALIGN) * ALIGN
        buf = ctypes.create_string_buffer(stride * count + ALIGN)
        self.kept.append(buf)
        base = -(-(ctypes.addressof(buf) + STORED_WINDOW) // ALIGN) * ALIGN - STORED_WINDOW
        out = []
        for i in range(count):
            start = base + i * stride
            address = start + STORED_WINDOW
            data = patch(moved(self.image, self.real, address), address)
            ctypes.memmove(start, bytes(data), len(data))
            out.append(address)
        self.planted += out
        return out

    def plant_in_mapping(self, image, room):
        """One copy at the start of a fresh anonymous mapping of `room` bytes, touched only where written."""
        m = mmap.mmap(-1, room)
        self.kept.append(m)
        start = ctypes.addressof(ctypes.c_char.from_buffer(m))
        address = start + STORED_WINDOW
        data = moved(image, self.real, address)
        ctypes.memmove(start, bytes(data), len(data))
        self.planted.append(address)
        return address


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--copies", type=int, default=0)
    parser.add_argument("--shapes", type=int, default=0)
    parser.add_argument("--packed", type=int, default=0)
    parser.add_argument("--claim", type=int, default=0)
    parser.add_argument("--claim-room", type=int, default=1, metavar="MIB")
    parser.add_argument("--bad-pointer", type=lambda s: int(s, 0), action="append", default=[])
    args = parser.parse_args(argv)
    store, run = instantiate()
    result = run(store, 1)
    real, image, ctx = real_context()
    planter = Planter(real, image)
    if args.copies:
        copy = find_copy(image[:STORED_WINDOW], real - STORED_WINDOW, ctx.layout, real)
        planter.plant_blocks(args.copies, real - (copy.at - ID_BYTES))
    if args.shapes:
        copy = find_copy(image[:STORED_WINDOW], real - STORED_WINDOW, ctx.layout, real)
        planter.plant_blocks(args.shapes, real - (copy.at - ID_BYTES), lambda i: shape(image, ctx, i))
    if args.packed:
        planter.plant(args.packed)
    if args.claim:
        planter.plant_in_mapping(reshaped(image, ctx, num_lowerings=args.claim), args.claim_room << 20)
    offsets = ctx.layout.offsets(PTR, **ctx.counts)
    lowering, trampoline = (offsets.region(name).offset + STORED_WINDOW for name in ("lowerings", "trampoline_func_refs"))
    for value in args.bad_pointer:
        def bad(data, address, value=value):
            for at in (lowering, lowering + PTR, trampoline, trampoline + PTR):  # callee, data; array_call, wasm_call
                data[at : at + PTR] = value.to_bytes(PTR, "little")
            return data
        planter.plant(1, bad)
    shown = ",".join(f"{a:#x}" for a in planter.planted[:8])
    print(f"pid {os.getpid()} ready: run(1) = {result} real {real:#x} planted {shown}", flush=True)
    time.sleep(args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
