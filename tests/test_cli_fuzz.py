"""Hypothesis fuzz of the command line (issue 12): any mix of commands, options and values answers with a
documented exit status, and bad input with one line on stderr, never a traceback."""


import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import fuzz_examples
from vmctx_emu import Component, OwnedComponentInstance
from vmctx_emu.cli import main
from vmctx_emu.cli import count_option
from vmctx_emu.layouts.releases import COUNT_ORDER

COMMANDS = ("layout", "decode", "hexdump", "diff", "infer", "versions")
FLAGS = ("--json", "--force", "--strict", "--release", "--help")
VALUED = ("--wasmtime", "--ptr-size", "--byte-order", "--address", "--limit",
          *(f"--{count_option(name)}" for name in COUNT_ORDER))
VALUES = ("0", "1", "3", "-1", "0x10", "0x10000000000000000", "4294967296", "1.5", "", "x", "host", "4", "8",
          "little", "big", "seed", "21", "v50.0.1", "0.40.1", "99", "0xffffffff")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Paths a user might hand over: good dumps (8- and 4-byte), no sidecar, empty, cut short, a directory."""
    d = tmp_path_factory.mktemp("fuzz")
    shape = Component(num_lowerings=2, num_runtime_memories=1, num_runtime_component_instances=1)
    good = OwnedComponentInstance(shape, (0x1000, 0x2000), ptr=8, byte_order="little").dump(d / "good.bin")
    be32 = OwnedComponentInstance(shape, (0x10, 0x20), ptr=4, byte_order="big").dump(d / "be32.bin")
    bare = d / "bare.bin"
    bare.write_bytes(open(good, "rb").read())
    (d / "empty.bin").write_bytes(b"")
    (d / "short.bin").write_bytes(open(good, "rb").read()[:20])
    return [str(p) for p in (good, be32, bare, d / "empty.bin", d / "short.bin", d, d / "missing.bin")]


def argv_strategy(files):
    option = st.one_of(
        st.sampled_from(FLAGS).map(lambda flag: [flag]),
        st.tuples(st.sampled_from(VALUED), st.sampled_from(VALUES)).map(list),
        st.tuples(st.sampled_from(VALUED), st.sampled_from(VALUES)).map(lambda kv: [f"{kv[0]}={kv[1]}"]),
    )
    return st.tuples(
        st.sampled_from(COMMANDS),
        st.lists(st.sampled_from(files), max_size=3),
        st.lists(option, max_size=5),
    ).map(lambda t: [t[0], *t[1], *(word for opt in t[2] for word in opt)])


@settings(max_examples=fuzz_examples(250), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_command_line_answers_cleanly(files, data, capsys):
    argv = data.draw(argv_strategy(files))
    try:
        status = main(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        status = e.code
    out, err = capsys.readouterr()
    assert status in (0, 1, 2), (argv, status, err)
    assert "Traceback" not in err, (argv, err)
    if status == 2:
        assert err.count("\n") == 1 and " error: " in err, (argv, err)
    if status == 0 and "--help" not in argv:
        assert out, argv
