"""`python benchmarks/peak.py ARGV...`: run ARGV (stdout to /dev/null) and print its peak resident KiB.

Why a process of its own: Linux carries a parent's high-water RSS into a
child it forks (`ru_maxrss` of a child of a 600 MiB benchmark reads 600 MiB
for `true`), so the command is started from this small process instead.
"""

import os
import subprocess
import sys


def main(argv):
    with open(os.devnull, "w") as out:
        child = subprocess.Popen(argv, stdout=out)
        _, status, usage = os.wait4(child.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"{argv} exited with {code}")
    print(usage.ru_maxrss)


if __name__ == "__main__":
    main(sys.argv[1:])
