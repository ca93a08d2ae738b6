"""Writes the dumps `tests/test_cli_golden.py` reads (run once; the dumps are committed).

`vmctx-emu demo --dump` gives the README's three samples (their address is wherever the
host put them, so they are kept as files, not remade). Two larger emulated ones have a
fixed address: one 64-bit big-endian, one 32-bit little-endian, each with runs of set and
unset elements whose values and indices change digit counts, and a later state of each;
their bytes are kept gzip-compressed.
"""

import gzip
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    from vmctx_emu import Component, OwnedComponentInstance, VMLowering

    subprocess.run([os.path.join(os.path.dirname(sys.executable), "vmctx-emu"), "demo", "--dump", HERE], check=True)
    component = Component(num_lowerings=1500, num_runtime_memories=120, num_runtime_reallocs=3,
                          num_runtime_post_returns=2, num_runtime_component_instances=12, num_always_trap=40)
    for name, ptr, order, address in (("big-be64", 8, "big", 0x7F00_1234_0000), ("big-le32", 4, "little", 0x4000_0000)):
        with OwnedComponentInstance(component, (0x5000, 0x6000), ptr=ptr, byte_order=order, address=address) as inst:
            for i in range(0, 1500, 7):
                inst.set_lowering(i, VMLowering(0x1000 + 16 * i, 0x2000 + 8 * i), 0x3000 + 24 * i,
                                  [0, 9, 123, 4294967295][i % 4])
            for i in range(0, 120, 3):
                inst.set_runtime_memory(i, 0x10_0000 * (i + 1))
            for i in range(12):
                inst.instance_flags(i).may_enter = bool(i % 3)
            plain = inst.dump(os.path.join(HERE, f"{name}.bin"))
            inst.set_always_trap(5, 0x9000, 77)
            inst.set_runtime_realloc(1, 0xA000)
            later = inst.dump(os.path.join(HERE, f"{name}-later.bin"))
        for path in (plain, later):
            with open(path, "rb") as f, gzip.GzipFile(path + ".gz", "wb", mtime=0) as g:
                shutil.copyfileobj(f, g)
            os.unlink(path)


if __name__ == "__main__":
    main()
