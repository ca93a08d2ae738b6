"""What a demanding user trips over on the command line (issue 12): flags anywhere, --version, usage
without a command, hints for another release's options, help everywhere, exit statuses, address
ranges, broken pipes, and start-up without numpy."""

import argparse
import json
import os
import re
import subprocess
import sys
from importlib.metadata import version

import pytest
from conftest import SAMPLE, run_cli as run

from vmctx_emu import Component, LayoutOverflowError, OwnedComponentInstance
from vmctx_emu.cli import EXIT_BROKEN_PIPE, build_parser, main
from vmctx_emu.cli import count_option
from vmctx_emu.layouts.releases import LAYOUTS

COMMANDS = ("layout", "decode", "hexdump", "diff", "infer", "scan", "where", "report", "versions", "demo")
HUGE_ADDRESS = "0x10000000000000000"


def one_line_error(status, out, err, needle):
    assert status == 2 and out == "", (status, out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert needle in err, err


# --traceback ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--traceback", "layout", "--instances", "268435456"],
    ["layout", "--traceback", "--instances", "268435456"],
    ["layout", "--instances", "268435456", "--traceback"],
])
def test_traceback_flag_accepted_before_or_after_the_command(argv, capsys):
    """Regression: `--traceback` after the subcommand was 'unrecognized arguments'."""
    with pytest.raises(LayoutOverflowError):
        main(argv)


def test_traceback_flag_after_the_command_shows_the_traceback_of_a_bad_release():
    with pytest.raises(ValueError, match="not a supported release"):
        main(["layout", "--wasmtime", "99", "--traceback"])


def test_traceback_after_double_dash_is_a_file_name_not_the_flag(tmp_path, capsys):
    os.chdir(tmp_path)
    status, out, err = run(["decode", "--ptr-size", "8", "--", "--traceback"], capsys)
    one_line_error(status, out, err, "--traceback")


# --version, no command ---------------------------------------------------------------------------------

def test_version_names_the_package_and_the_newest_release(capsys):
    status, out, err = run(["--version"], capsys)
    assert status == 0 and err == ""
    assert out.startswith(f"vmctx-emu {version('vmctx-emu')};")
    assert f"newest known release: {LAYOUTS[-1].last}" in out and out.count("\n") == 1


def test_no_command_prints_usage_and_every_command(capsys):
    """Regression: no subcommand printed one line without the usage or the command list."""
    status, out, err = run([], capsys)
    assert status == 2 and out == ""
    assert err.startswith("usage: vmctx-emu") and err.endswith("error: no COMMAND given; choose one of the above\n")
    for name in COMMANDS:
        assert f"\n    {name} " in err


# options of another release or command -----------------------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["layout", "--trampolines", "3"],
     "--trampolines is a count of L4 - L11 (v12.0.0 - v51.0.0), not of seed (commit 97894bc65e)"),
    (["layout", "--tables=2"], "--tables is a count of L7 - L11 (v32.0.0 - v51.0.0)"),
    (["layout", "--wasmtime", "21", "--always-trap", "1"],
     "--always-trap is a count of seed - L3 (commit 97894bc65e - v11.0.2), not of L4 (v12.0.0 - v21.0.2)"),
    (["layout", "--wasmtime", "8", "--transcoders", "1", "--callbacks", "1"],
     "--callbacks is a count of L6 - L11 (v30.0.0 - v51.0.0), not of L2 (v1.0.0 - v8.0.1)"),
    (["hexdump", "x.bin", "--json"], "--json is an option of decode, diff, infer, layout, scan"),
    (["decode", "x.bin", "--limit", "3"], "--limit is an option of infer"),
])
def test_unrecognized_option_names_where_it_belongs(argv, needle, capsys):
    status, out, err = run(argv, capsys)
    one_line_error(status, out, err, "unrecognized arguments")
    assert needle in err


# help --------------------------------------------------------------------------------------------------

def _parsers(parser):
    yield "vmctx-emu", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"command {name} has no help"
                assert sub.description, f"command {name} has no description"
                yield name, sub


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
def test_every_option_and_command_has_help(layout):
    """Regression: `versions` and `demo` had no description, options had no help or metavar."""
    parsers = list(_parsers(build_parser(layout, explicit=True)))
    assert sorted(name for name, _ in parsers[1:]) == sorted(COMMANDS)
    for name, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"{name} {action.option_strings or action.dest}"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_runs(command, capsys):
    status, out, err = run([command, "--help"], capsys)
    assert status == 0 and err == "" and out.startswith(f"usage: vmctx-emu {command}")


@pytest.mark.parametrize("command, needle", [
    ("decode", "1 with --strict when there are anomalies"),
    ("diff", "as diff(1): 0 the dumps decode the same; 1 they differ; 2 bad input"),
    ("infer", "0 some layout fits; 1 none fits"),
])
def test_help_documents_the_exit_status(command, needle, capsys):
    status, out, _ = run([command, "--help"], capsys)
    assert status == 0 and needle in " ".join(out.split())


# versions ----------------------------------------------------------------------------------------------

def test_versions_fits_80_columns_and_lists_every_release(capsys):
    """Regression: `versions` printed 230-column lines."""
    status, out, err = run(["versions"], capsys)
    assert status == 0 and err == ""
    assert max(len(line) for line in out.splitlines()) <= 80
    words = out.split()
    for layout in LAYOUTS:
        assert layout.range_text in out
        for name in layout.count_names:
            assert f"--{count_option(name)}" in words


# infer --limit -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", ["-1", "-0x1", "1.5", str(2**32)])
def test_infer_limit_out_of_range_is_an_error(dumps, limit, capsys):
    _, a, _ = dumps
    status, out, err = run(["infer", a, "--ptr-size", "8", f"--limit={limit}"], capsys)
    one_line_error(status, out, err, "argument --limit")


# exit statuses -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_diff_exit_status_follows_diff1(dumps, json_flag, capsys):
    """Regression: `diff` exited 0 when the dumps differed."""
    _, a, b = dumps
    status, out, err = run(["diff", a, b, *json_flag], capsys)
    assert (status, err) == (1, "") and "memories[0]" in out
    status, out, err = run(["diff", a, a, *json_flag], capsys)
    assert (status, err) == (0, "")
    status, out, err = run(["diff", a, os.path.join(os.path.dirname(a), "missing.bin"), *json_flag], capsys)
    one_line_error(status, out, err, "missing.bin")


def test_diff_of_padding_only_counts_as_different(dumps, tmp_path, capsys):
    _, a, _ = dumps
    data = bytearray(open(a, "rb").read())
    data[4] = 0x99  # the hole after the magic
    c = tmp_path / "c.bin"
    c.write_bytes(data)
    (tmp_path / "c.bin.json").write_text(open(f"{a}.json").read())
    status, out, _ = run(["diff", a, c], capsys)
    assert status == 1 and "padding bytes 4..4 differ" in out


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_decode_strict_exits_1_on_anomalies(dumps, tmp_path, json_flag, capsys):
    _, a, _ = dumps
    data = bytearray(open(a, "rb").read())
    data[:4] = b"XXXX"
    bad = tmp_path / "bad.bin"
    bad.write_bytes(data)
    (tmp_path / "bad.bin.json").write_text(open(f"{a}.json").read())
    assert run(["decode", bad, "--force", *json_flag], capsys)[0] == 0
    status, out, err = run(["decode", bad, "--force", "--strict", *json_flag], capsys)
    assert (status, err) == (1, "") and "bad magic" in out
    status, out, err = run(["decode", a, "--strict", *json_flag], capsys)
    assert (status, err) == (0, "")


# --address range ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["decode", "hexdump", "diff", "infer"])
@pytest.mark.parametrize("address", [HUGE_ADDRESS, "-5", str(2**64)])
def test_address_beyond_64_bits_is_one_line(dumps, command, address, capsys):
    """Regression: `--address 0x10000000000000000` gave an OverflowError traceback (hexdump took it)."""
    _, a, b = dumps
    argv = [command, a, *([b] if command == "diff" else []), "--ptr-size", "8", f"--address={address}"]
    status, out, err = run(argv, capsys)
    one_line_error(status, out, err, "argument --address: an address is in [0, 0xffffffffffffffff]")


@pytest.fixture
def dump32(tmp_path):
    inst = OwnedComponentInstance(SAMPLE, (0x10, 0x20), ptr=4, byte_order="big")
    return inst.dump(tmp_path / "be32.bin")


@pytest.mark.parametrize("command, ptr_args", [
    (command, ptr_args) for command in ("decode", "hexdump", "diff", "infer")
    for ptr_args in (["--ptr-size", "4"], []) if ptr_args or command != "infer"  # infer needs --ptr-size
])
def test_address_beyond_32_bits_rejected_for_4_byte_pointers(dump32, command, ptr_args, capsys):
    """Regression: a 4-byte-pointer dump took an address past 2**32 silently (the size from the option
    or from the sidecar)."""
    argv = [command, dump32, *([dump32] if command == "diff" else []), *ptr_args, "--address", "0x100000000"]
    status, out, err = run(argv, capsys)
    # The CLI's own check says "--address 0x100000000 does not fit a 4-byte pointer"; the dump reader
    # may say it first in its own words, naming the address.
    one_line_error(status, out, err, "0x100000000")
    assert "4-byte" in err or "32" in err


def test_address_within_32_bits_is_accepted_for_4_byte_pointers(dump32, capsys):
    status, out, err = run(["decode", dump32, "--address", "0xfffffff0"], capsys)
    assert (status, err) == (0, "") and out.startswith("VMComponentContext at 0xfffffff0:")


# broken pipes ------------------------------------------------------------------------------------------

class _ClosedPipe:
    """An output whose reader went away after `allow` writes."""

    def __init__(self, allow=1):
        self.allow = allow

    def write(self, text):
        if self.allow <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.allow -= 1
        return len(text)

    def flush(self):
        if self.allow <= 0:
            raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [
    ["layout"], ["layout", "--json"], ["versions"], ["demo"], ["decode", "{a}"], ["decode", "{a}", "--json"],
    ["hexdump", "{a}"], ["diff", "{a}", "{b}"], ["infer", "{a}", "--ptr-size", "8"],
], ids=" ".join)
def test_every_command_stops_quietly_on_a_broken_pipe(dumps, argv, capsys):
    _, a, b = dumps
    argv = [word.format(a=a, b=b) for word in argv]
    status, out, err = run(argv, capsys, out=_ClosedPipe(allow=0))
    assert (status, err) == (EXIT_BROKEN_PIPE, "")


def test_hexdump_into_head_has_no_broken_pipe_traceback(tmp_path):
    """Regression: `vmctx-emu hexdump big.bin | head -1` printed a BrokenPipeError traceback."""
    big = OwnedComponentInstance(Component(num_lowerings=50_000), (0x1000, 0x2000)).dump(tmp_path / "big.bin")
    proc = subprocess.Popen([sys.executable, "-m", "vmctx_emu", "hexdump", big], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == EXIT_BROKEN_PIPE
    assert first.startswith(b"00000000  63 6f 6d 70") and err == b""


# start-up cost -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--help"], ["versions"], ["layout"], ["layout", "--json", "--instances", "2"],
    ["layout", "--wasmtime", "50", "--trampolines", "3"], ["decode", "--help"], [],
], ids=lambda argv: " ".join(argv) or "no-command")
def test_cheap_commands_do_not_import_numpy(argv):
    """`--help`, `layout` and `versions` must not pay for numpy (or cffi) at start-up."""
    code = ("import sys\nfrom vmctx_emu.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('numpy', 'cffi', 'vmctx_emu._native', 'vmctx_emu.dumps.decode') "
            "if m in sys.modules), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert proc.stderr.splitlines()[-1] == "[]", proc.stderr


def test_console_script_help_imports_no_numpy():
    """The same through `python -X importtime -m vmctx_emu --help`, the way a user starts it."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "vmctx_emu", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "usage: vmctx-emu" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "vmctx_emu.cli" in imported and "numpy" not in imported


# demo --dump: the README's dumps -----------------------------------------------------------------------

def test_demo_dump_writes_the_readme_dumps(tmp_path, capsys):
    status, out, err = run(["demo", "--dump", tmp_path / "d"], capsys)
    assert (status, err) == (0, "")
    names = ("ctx.bin", "before.bin", "after.bin")
    assert sorted(os.listdir(tmp_path / "d")) == sorted(names + tuple(f"{n}.json" for n in names))
    d = tmp_path / "d"
    assert run(["decode", d / "ctx.bin", "--strict"], capsys)[0] == 0
    assert run(["diff", d / "ctx.bin", d / "before.bin"], capsys)[0] == 1
    status, out, _ = run(["diff", d / "before.bin", d / "after.bin", "--json"], capsys)
    assert status == 1 and {c["field"] for c in json.loads(out)["changes"]} >= {"flags[1]"}


@pytest.mark.parametrize("argv, needle", [
    (["--wasmtime", "21", "layout"], "--wasmtime is an option of decode, diff, hexdump, infer, layout, report, scan, where: "
                                     "put it after the COMMAND"),
    (["--json", "layout"], "--json is an option of decode, diff, infer, layout, scan"),
    (["--ptr-size=8", "layout"], "--ptr-size is an option of"),
])
def test_command_option_before_the_command_says_where_it_goes(argv, needle, capsys):
    """An option given before the command was "invalid choice: '21'"."""
    status, out, err = run(argv, capsys)
    one_line_error(status, out, err, needle)


def test_os_error_is_one_line_naming_the_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    status, out, err = run(["demo", "--dump", blocker / "sub"], capsys)
    one_line_error(status, out, err, f"vmctx-emu demo: error: {blocker / 'sub'}: Not a directory")


def test_memory_error_is_one_line(monkeypatch, capsys):
    def exhausted(args, out):
        raise MemoryError()

    monkeypatch.setattr("vmctx_emu.cli.cmd_versions", exhausted)
    status, out, err = run(["versions"], capsys)
    one_line_error(status, out, err, "vmctx-emu versions: error: out of memory")
    with pytest.raises(MemoryError):
        main(["versions", "--traceback"])


# issue 19: an unknown release names the newest one and the forms, not every range ----------------------

@pytest.mark.parametrize("argv, what", [
    (["layout", "--wasmtime", "99"], "Wasmtime 99 is not a supported release"),
    (["decode", "x.bin", "--wasmtime", "foo"], "not a Wasmtime version: 'foo'"),
    (["infer", "x.bin", "--wasmtime=0.39"], "Wasmtime 0.39 is not a supported release"),
    (["scan", "--pid", "1", "--wasmtime", "v7.1"], "Wasmtime v7.1 is not a supported release"),
])
def test_unknown_release_says_the_newest_and_how_to_list_them(argv, what, capsys):
    from vmctx_emu.layouts.releases import ALL_RELEASES

    status, out, err = run(argv, capsys)
    one_line_error(status, out, err, f"vmctx-emu: error: argument --wasmtime: {what} (newest known release: "
                                     f"{ALL_RELEASES[-1]}); give \"seed\" or a release from 0.40.0 to")
    assert err.rstrip().endswith("; `vmctx-emu versions` lists every release") and "(L1)" not in err, err
    assert len(err) < 320, err


# issue 19: a mistyped option, command or choice gets "did you mean" -----------------------------------

@pytest.mark.parametrize("argv, hint", [
    (["layot"], "invalid choice: 'layot'"),  # argparse's own words, then the hint
    (["hexdmp", "x.bin"], "; did you mean hexdump?"),
    (["verions"], "; did you mean versions?"),
    (["layot"], "; did you mean layout?"),
    (["layout", "--lowering", "3"], "; --lowering: did you mean --lowerings?"),
    (["layout", "--ptrsize=8"], "; --ptrsize: did you mean --ptr-size?"),
    (["decode", "x.bin", "--jsn"], "; --jsn: did you mean --json?"),
    (["decode", "x.bin", "--byte-order", "lttle"], "invalid choice: 'lttle'"),
    (["decode", "x.bin", "--byte-order", "lttle"], "; did you mean little?"),
    (["scan", "--pid", "1", "--al"], "; --al: did you mean --all?"),
    (["--verison"], "; --verison: did you mean --version?"),
    (["layout", "--wasmtime", "50", "--trampoline", "1"], "; --trampoline: did you mean --trampolines?"),
    # close only to another release's count: that hint, once, after the guess
    (["layout", "--trampoline", "1"], "; --trampoline: did you mean --trampolines? --trampolines is a count of "
                                      "L4 - L11 (v12.0.0 - v51.0.0), not of seed"),
])
def test_a_near_miss_gets_did_you_mean(argv, hint, capsys):
    status, out, err = run(argv, capsys)
    one_line_error(status, out, err, hint)
    assert err.count("did you mean") == 1, err


@pytest.mark.parametrize("argv", [
    ["foo"], ["layout", "--zzzz"], ["decode", "x.bin", "--byte-order", "middle"], ["layout", "-j"],
])
def test_nothing_close_means_no_guess(argv, capsys):
    status, out, err = run(argv, capsys)
    one_line_error(status, out, err, "error: ")
    assert "did you mean" not in err, err


@pytest.mark.parametrize("argv, needle", [
    (["layout", "--trampolines", "3"], "--trampolines is a count of L4 - L11"),
    (["decode", "x.bin", "--limit", "3"], "--limit is an option of infer"),
])
def test_exact_hints_are_not_doubled_with_a_guess(argv, needle, capsys):
    status, out, err = run(argv, capsys)
    one_line_error(status, out, err, needle)
    assert "did you mean" not in err and err.count(needle) == 1, err


# issue 19: the demo names only files that still exist when it ends ------------------------------------

FILE_NAME = re.compile(r"(?<![\w/*.])((?:/?[\w.-]+/)*[\w-]+\.(?:bin|json|hex|gz))\b|(?<!\S)(/(?:[\w.-]+/)+[\w.-]*)")


@pytest.mark.parametrize("argv", [["demo"], ["demo", "--dump", "out"]])
def test_demo_names_only_files_that_exist_when_it_ends(argv, tmp_path, monkeypatch, capsys):
    """Regression: step 3 said "Dumped to before.bin" of a temporary file deleted before the demo ended."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    status, out, err = run(argv, capsys)
    assert (status, err) == (0, "")
    named = [a or b for a, b in FILE_NAME.findall(out)]
    assert all((tmp_path / name).exists() for name in named), [n for n in named if not (tmp_path / n).exists()]
    assert ("--dump" in argv) == bool(named)  # --dump names what it wrote; the demo itself names no file
    assert os.listdir(tmp_path / "tmp") == []  # and leaves no temporary file behind
