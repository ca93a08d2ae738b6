"""The baseline `benchmarks/scan.py` sets `scan --pid` against: a Python pread loop over PID's writable mappings."""

import os
import sys

CHUNK = 1 << 20


def main(pid):
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    total = 0
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("rw"):
                continue
            low, high = (int(x, 16) for x in fields[0].split("-"))
            for at in range(low, high, CHUNK):
                try:
                    total += len(os.pread(fd, min(CHUNK, high - at), at))
                except OSError:
                    break
    print(total)


if __name__ == "__main__":
    main(int(sys.argv[1]))
