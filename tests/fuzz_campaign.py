"""`make fuzz`'s mutation loop (issue 20): mutated cores, symbol files, dumps with their sidecars and Rust names,
each run through `vmctx-emu` in a subprocess (tests/bounded.py) until FUZZ_SECONDS have passed.

A case fails when the command hangs, exits with a status the CLI does not
document, prints a traceback or more than one error line, or costs more than
HOSTILE_SECONDS (after the interpreter's start-up, measured first) or
HOSTILE_MIB. Each failure is written to FUZZ_FINDINGS/NNNN-KIND/: its input
files, `command` (the command line, runnable from that directory) and `result`.
A time failure is run once more first: only one that repeats is kept.

Not collected by pytest (no `test_` prefix); run as `make fuzz` or
`.venv/bin/python tests/fuzz_campaign.py`. FUZZ_SEED repeats a run.
"""

import collections
import json
import os
import random
import shlex
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bounded import HOSTILE_MIB, HOSTILE_SECONDS, run, startup_seconds  # noqa: E402
from test_cli_fuzz import FLAGS  # noqa: E402
from test_hostile_bounds import RELEASE, mapping_core, symbol_file  # noqa: E402
from test_hostile_cores import _SEED as CORE_SEED  # noqa: E402
from test_hostile_symbols import HOSTILE_NAMES, SEEDS as ELF_SEEDS, V0_PIECES, elf_fields  # noqa: E402
from vmctx_emu import OwnedComponentInstance  # noqa: E402
from vmctx_emu.errors import VMCtxEmuError  # noqa: E402
from vmctx_emu.layouts.releases import LAYOUTS  # noqa: E402

BUDGET = float(os.environ.get("FUZZ_SECONDS") or 600)
FINDINGS = os.path.abspath(os.environ.get("FUZZ_FINDINGS") or "fuzz-findings")
PROGRESS_SECONDS = 15  # how often a progress line is printed
DOCUMENTED = (0, 1, 2, 141)  # the CLI's exit statuses (`vmctx-emu --help`)
CORE_FIELDS = elf_fields(CORE_SEED)  # the ELF and program header fields of the seed core
ELF_FIELDS = {name: elf_fields(data) for name, data in ELF_SEEDS.items()}


def edge(rng, width, size):
    """A value a hostile field takes: an edge of its width or of the file, or anything."""
    top = (1 << 8 * width) - 1
    return rng.choice([0, 1, 2, 8, 64, size - 1, size, size + 1, top >> 1, top - 1, top, 0xFFFF,
                       rng.randrange(top + 1), rng.randrange(min(top, 1 << 16) + 1)]) & top


def mutate(rng, data, fields, edits=6):
    """`data` with 1..edits field-aware edits (a header field set to an edge), byte flips, and maybe cut short."""
    data = bytearray(data)
    for _ in range(rng.randint(1, edits)):
        if fields and rng.random() < 0.8:
            _, at, width = rng.choice(fields)
            data[at:at + width] = edge(rng, width, len(data)).to_bytes(width, "little")
        elif data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.1:
        data = data[:rng.randrange(len(data) + 1)]
    return bytes(data)


# Each case maker writes its inputs into `folder`, the current directory, and returns the argv (paths relative
# to it, so a finding runs where it is copied to).

def core_case(rng, folder):
    with open(os.path.join(folder, "fuzzed.core"), "wb") as f:
        f.write(mutate(rng, CORE_SEED, CORE_FIELDS))
    if rng.random() < 0.5:
        return ["scan", "--core", "fuzzed.core", *rng.sample(["--all", "--json", "--records"], rng.randint(0, 2))]
    return ["where", "--wasmtime", RELEASE, "--core", "fuzzed.core", hex(rng.choice([0x10010, 0x20010, 0, 2**64 - 1]))]


def elf_case(rng, folder):
    name = rng.choice(sorted(ELF_SEEDS))
    path, address = mapping_core(".", mutate(rng, ELF_SEEDS[name], ELF_FIELDS[name]))
    return ["where", "--wasmtime", RELEASE, "--core", os.path.basename(path), hex(address),
            *(["--json"] if rng.random() < 0.3 else [])]


def rust_name(rng):
    """A mangled-looking name: v0 pieces, or a hostile one repeated or cut."""
    if rng.random() < 0.5:
        return rng.choice(["_R", "_RIN", "_ZN"]) + "".join(rng.choice(V0_PIECES) for _ in range(rng.randint(1, 80)))
    name = rng.choice(list(HOSTILE_NAMES.values()))
    cut = rng.randrange(len(name) + 1)
    return name[:cut] + rng.choice(V0_PIECES) * rng.randint(1, 2000) + name[cut:]


def name_case(rng, folder):
    path, address = mapping_core(".", symbol_file(rust_name(rng)))
    return ["where", "--wasmtime", RELEASE, "--core", os.path.basename(path), hex(address)]


SIDECAR_VALUES = [None, True, 0, -1, 1 << 70, "", "x", "seed", "0x10", [], {}, 1.5, "\udcff"]


def dump_case(rng, folder):
    layout = rng.choice(LAYOUTS)
    header = {name: (0x1000, 0x2000) if name == "store" else 0x1000 + 0x10 * k  # as test_dump_fuzz writes them
              for k, name in enumerate(layout.header_names())}
    counts = dict.fromkeys(layout.count_names, rng.randint(0, 3))
    try:
        inst = OwnedComponentInstance(counts, ptr=rng.choice([4, 8]), byte_order=rng.choice(["little", "big"]),
                                      wasmtime=layout.first or "seed", header=header)
    except VMCtxEmuError:  # a release not emulated at 4-byte pointers
        inst = OwnedComponentInstance(counts, wasmtime=layout.first or "seed", header=header)
    path = inst.dump(os.path.join(folder, "ctx.bin"))
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(mutate(rng, data, [], edits=8) if rng.random() < 0.7 else data)
    with open(f"{path}.json") as f:
        meta = json.load(f)
    for _ in range(rng.randint(0, 3)):
        key = rng.choice(sorted(meta) + ["extra"])
        if isinstance(meta.get(key), dict) and meta[key] and rng.random() < 0.5:
            meta[key][rng.choice(sorted(meta[key]))] = rng.choice(SIDECAR_VALUES)
        else:
            meta[key] = rng.choice(SIDECAR_VALUES)
    with open(f"{path}.json", "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(json.dumps(meta) if rng.random() < 0.9 else json.dumps(meta)[:rng.randrange(40)])
    command = rng.choice(["decode", "hexdump", "infer", "diff"])
    files = ["ctx.bin", "ctx.bin"] if command == "diff" else ["ctx.bin"]
    return [command, *files, *rng.sample([f for f in FLAGS if f != "--help"], rng.randint(0, 2))]


KINDS = {"core": core_case, "elf": elf_case, "name": name_case, "dump": dump_case}


def verdict(ran, startup):
    """Why a run fails the bounds (str), or None."""
    if ran.status is None:
        return "hung (killed)"
    if ran.status not in DOCUMENTED:
        return f"exit status {ran.status}"
    if b"Traceback" in ran.stderr:
        return "traceback"
    if ran.status == 2 and ran.stderr.count(b"\n") != 1:
        return "status 2 without exactly one error line"
    if ran.seconds - startup > HOSTILE_SECONDS:
        return f"{ran.seconds:.2f} s (start-up {startup:.2f} s)"
    if ran.mib > HOSTILE_MIB:
        return f"{ran.mib:.0f} MiB"
    return None


def keep(folder, kind, argv, ran, why, number):
    """Copy the case into FINDINGS/NNNN-KIND with its command and result."""
    target = os.path.join(FINDINGS, f"{number:04}-{kind}")
    shutil.copytree(folder, target)
    with open(os.path.join(target, "command"), "w") as f:
        f.write("cd \"$(dirname \"$0\")\" && vmctx-emu " + " ".join(shlex.quote(a) for a in argv) + "\n")
    with open(os.path.join(target, "result"), "wb") as f:
        f.write(f"{why}\nexit {ran.status}, {ran.seconds:.2f} s, {ran.mib:.0f} MiB\n".encode())
        f.write(b"--- stdout (tail)\n" + ran.stdout[-4000:] + b"\n--- stderr (tail)\n" + ran.stderr[-4000:])
    return target


def main():
    seed = int(os.environ.get("FUZZ_SEED") or time.time_ns() % (1 << 32))
    rng = random.Random(seed)
    startup = startup_seconds()
    print(f"fuzz: seed {seed}, {BUDGET:.0f} s, start-up {startup:.2f} s, bounds {HOSTILE_SECONDS} s and "
          f"{HOSTILE_MIB} MiB, findings in {FINDINGS}", flush=True)
    counts, failures, slowest, largest = collections.Counter(), collections.Counter(), (0.0, ""), (0.0, "")
    started = last = time.monotonic()
    number, home = 0, os.getcwd()
    while time.monotonic() - started < BUDGET:
        kind = rng.choice(sorted(KINDS))
        with tempfile.TemporaryDirectory(prefix="vmctx-fuzz-") as folder:
            os.chdir(folder)
            try:
                argv = KINDS[kind](rng, folder)
            finally:
                os.chdir(home)
            ran = run(argv, cwd=folder)
            why = verdict(ran, startup)
            if why and ran.status is not None and ran.seconds - startup > HOSTILE_SECONDS:
                ran = run(argv, cwd=folder)  # a loaded machine: kept only when it repeats
                why = verdict(ran, startup)
            counts[kind] += 1
            number += 1
            slowest = max(slowest, (ran.seconds, f"{kind} #{number}"))
            largest = max(largest, (ran.mib, f"{kind} #{number}"))
            if why:
                failures[kind] += 1
                print(f"fuzz: FINDING {why}: {keep(folder, kind, argv, ran, why, number)}", flush=True)
        if time.monotonic() - last >= PROGRESS_SECONDS:
            last = time.monotonic()
            print(f"fuzz: {last - started:4.0f} s, {number} cases ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}), "
                  f"{sum(failures.values())} findings", flush=True)
    print(f"fuzz: done: {number} cases in {time.monotonic() - started:.0f} s "
          f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); slowest {slowest[0]:.2f} s ({slowest[1]}), "
          f"largest {largest[0]:.0f} MiB ({largest[1]}); {sum(failures.values())} findings"
          + (f" ({', '.join(f'{k} {v}' for k, v in sorted(failures.items()))}) in {FINDINGS}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
