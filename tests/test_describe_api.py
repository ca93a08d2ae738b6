"""`vmctx_emu.describe` from Python prints what the CLI prints: one renderer for both, per command."""

import io
import os

import pytest

from vmctx_emu import describe, load_dump
from vmctx_emu.cli import main
from vmctx_emu.demo import write_sample_dumps
from vmctx_emu.dumps.decode import decode, padding_differences
from vmctx_emu.dumps.infer import infer_releases
from vmctx_emu.layouts.releases import wasmtime_layout


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return dict(zip(("ctx", "before", "after"), write_sample_dumps(str(tmp_path_factory.mktemp("samples")))))


def _layout(json):
    offsets = wasmtime_layout("21").offsets(4, num_trampolines=2, num_runtime_component_instances=1)
    return (describe.layout_json if json else describe.layout_table)(offsets) + "\n"


def _decoded(name, json):
    def render(samples):
        decoded = decode(load_dump(samples[name]))
        return (describe.decoded_json if json else describe.decoded_table)(decoded) + "\n"
    return render


def _diff(json):
    def render(samples):
        a, b = decode(load_dump(samples["before"])), decode(load_dump(samples["after"]))
        return (describe.diff_json if json else describe.diff_table)(a, b, padding_differences(a, b)) + "\n"
    return render


def _infer(json, **known):
    def render(samples):
        with open(samples["after"], "rb") as f:
            data = f.read()
        results = infer_releases(data, 8, "little", counts=known, limit=5)
        render = describe.infer_json if json else describe.infer_text
        return render(results, size=len(data), ptr_size=8, byte_order="little", debug_assertions=True) + "\n"
    return render


def _hexdump(samples):
    return "".join(line + "\n" for line in describe.hexdump_lines(load_dump(samples["after"])))


# (id, the Python call, the command line; dump names are the samples')
CASES = [
    ("layout", lambda samples: _layout(False), ["layout", "--wasmtime", "21", "--ptr-size", "4", "--trampolines", "2",
                                                "--instances", "1"]),
    ("layout-json", lambda samples: _layout(True), ["layout", "--wasmtime", "21", "--ptr-size", "4", "--trampolines",
                                                    "2", "--instances", "1", "--json"]),
    ("decode", _decoded("ctx", False), ["decode", "ctx"]),
    ("decode-json", _decoded("after", True), ["decode", "after", "--json"]),
    ("hexdump", _hexdump, ["hexdump", "after"]),
    ("diff", _diff(False), ["diff", "before", "after"]),
    ("diff-json", _diff(True), ["diff", "before", "after", "--json"]),
    ("infer", _infer(False, num_lowerings=3),
     ["infer", "after", "--no-sidecar", "--ptr-size", "8", "--limit", "5", "--lowerings", "3"]),
    ("infer-json", _infer(True), ["infer", "after", "--no-sidecar", "--ptr-size", "8", "--limit", "5", "--json"]),
]


@pytest.mark.parametrize("case, render, argv", CASES, ids=[c[0] for c in CASES])
def test_python_and_cli_print_the_same(case, render, argv, samples):
    out = io.StringIO()
    main([samples.get(word, word) for word in argv], out=out)
    assert render(samples) == out.getvalue()


def test_every_json_document_has_the_one_schema_version(samples):
    import json

    for argv in (["layout", "--json"], ["decode", samples["ctx"], "--json"],
                 ["diff", samples["ctx"], samples["after"], "--json"],
                 ["infer", samples["ctx"], "--ptr-size", "8", "--lowerings", "3", "--json"]):
        out = io.StringIO()
        main(argv, out=out)
        assert json.loads(out.getvalue())["schema_version"] == describe.SCHEMA_VERSION == 4, argv


def test_describe_names_are_listed_and_load_on_first_use():
    assert set(describe.__all__) <= set(dir(describe))
    for name in describe.__all__:
        assert getattr(describe, name) is not None
    with pytest.raises(AttributeError, match="no_such_renderer"):
        describe.no_such_renderer  # noqa: B018
    assert os.path.basename(describe.scan_text.__code__.co_filename) == "scan.py"
