"""`report` and `layout --svg` (issue 21): one self-contained HTML page, a section per context, maps drawn from
the decode; checked with an HTML parser and an XML parser, on dumps, layouts of every release and real Wasmtime."""

import html
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from children import stores_child
from vmctx_emu.cli import main
from vmctx_emu.describe.drawing import GRID_CELLS, SLOT_STATES, WIDTH, layout_svg, region_kind, slot_states
from vmctx_emu.describe.report import Report, dump_as_context, report_chunks, report_from_dumps
from vmctx_emu.dumps.decode import decode
from vmctx_emu.dumps.dump import DumpedContext, load_dump
from vmctx_emu.layouts.releases import LAYOUTS

SVG = "{http://www.w3.org/2000/svg}"


class Page(HTMLParser):
    """What a test asks of a page: its sections by class, its inline SVGs as text, anything external."""

    def __init__(self, text):
        super().__init__()
        self.sections, self.external, self.scripts, self.svgs = [], [], 0, []
        self._svg_at = None
        self.text = text
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs)
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if key in attrs and not attrs[key].startswith("#"):
                self.external.append(attrs[key])
        if tag == "link":
            self.external.append(attrs)

    def of_class(self, name):
        return [s for s in self.sections if name in s.get("class", "").split()]


def inline_svgs(text):
    """Each inline `<svg ...>...</svg>` of a page, parsed as XML (well-formed or ParseError)."""
    return [ET.fromstring(m.group(0)) for m in re.finditer(r"<svg\b.*?</svg>", text, re.S)]


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """The demo's three dump pairs (as initialized, a few slots set, later)."""
    where = tmp_path_factory.mktemp("dumps") / "d"
    assert main(["demo", "--dump", str(where)]) == 0
    return [where / name for name in ("ctx.bin", "before.bin", "after.bin")]


# ------------------------------------------------------------------------------------ layout --svg

SHAPES = [{}, {"num_lowerings": 3, "num_runtime_component_instances": 2}, {"num_lowerings": 4_000_000}]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
@pytest.mark.parametrize("counts", SHAPES, ids=("empty", "small", "4M lowerings"))
def test_layout_svg_is_well_formed_one_block_per_region_and_bounded(layout, counts):
    counts = {k: v for k, v in counts.items() if k in layout.count_names}
    offsets = layout.offsets(8, **counts)
    text = layout_svg(offsets, title="t")
    root = ET.fromstring(text)
    blocks = [r for r in root.iter(SVG + "rect") if r.get("class") == "block"]
    assert len(blocks) == len(offsets.regions())
    widths = [float(b.get("width")) for b in blocks]
    assert sum(widths) == pytest.approx(WIDTH, abs=len(widths))
    for region, width in zip(offsets.regions(), widths):  # wider with more bytes, never below the floor
        assert width >= 10 - 1e-9
    by_size = sorted(zip(offsets.regions(), widths), key=lambda rw: rw[0].size)
    assert all(a[1] <= b[1] + 1e-9 for a, b in zip(by_size, by_size[1:]))
    assert len(text) < 40_000  # 4M lowerings or none: one block a region, no grid without a decode


def test_layout_svg_from_the_cli(capsys):
    assert main(["layout", "--wasmtime", "50", "--lowerings", "2", "--instances", "3", "--svg"]) == 0
    out = capsys.readouterr().out
    root = ET.fromstring(out)
    titles = [t.text for t in root.iter(SVG + "title")]
    assert any(t.startswith("lowerings: VMLowering x 2 (num_lowerings), 32 bytes at offset") for t in titles), titles
    assert "L11 (v49.0.0 - v51.0.0), ptr_size=8" in out


def test_json_and_svg_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["layout", "--json", "--svg"])
    assert exited.value.code == 2
    assert "argument --svg: not allowed with argument --json" in capsys.readouterr().err


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
def test_every_field_has_a_kind_from_its_roles(layout):
    kinds = {f.name: region_kind(f) for f in layout.declared_fields()}
    assert kinds[layout.flags_field().name] == "flags"
    assert next(iter(kinds.values())) == "header"  # the magic comes first
    if "lowerings" in kinds:
        assert kinds["lowerings"] == "lowerings"


# ------------------------------------------------------------------------------------ maps from a decode

def test_a_decoded_map_marks_slots_and_says_each_value(dumps):
    decoded = decode(load_dump(dumps[1]))
    fields = {f.name: f for f in decoded.ctx.layout.declared_fields()}
    states = slot_states(decoded, fields["lowerings"], 0, decoded.ctx.offsets.num_lowerings)
    assert {SLOT_STATES[s] for s in states} <= {"set", "null", "poisoned", "partly"}
    text = layout_svg(decoded.ctx.offsets, decoded)
    root = ET.fromstring(text)
    titles = [t.text for t in root.iter(SVG + "title")]
    lowering0 = next(t for t in titles if "\nlowerings[0] at offset" in t)
    assert re.search(r"callee 0x[0-9a-f]{16}: ", lowering0), lowering0
    drawn = [r for r in root.iter(SVG + "rect") if "slot" in (r.get("class") or "") and "k-none" not in r.get("class")]
    expected = sum(int((slot_states(decoded, f, 0, r.count) == SLOT_STATES.index("poisoned")).sum())
                   for f, r in zip(decoded.ctx.layout.declared_fields(), decoded.ctx.offsets.regions()) if r.count)
    assert expected and sum("s-poisoned" in r.get("class") for r in drawn) == expected
    assert len(text) < 60_000


def test_a_large_array_is_a_grid_of_runs_bounded_by_its_cells(dumps):
    layout = LAYOUTS[-1]
    offsets = layout.offsets(8, num_lowerings=100_000)
    big = DumpedContext(bytes(offsets.size_of_vmctx()), layout.component(num_lowerings=100_000), 8, "little",
                        address=0x10000, debug_assertions=False, wasmtime=layout.last)
    decoded = decode(big)
    text = layout_svg(decoded.ctx.offsets, decoded)
    root = ET.fromstring(text)
    cells = [r for r in root.iter(SVG + "rect") if r.get("height") == "12"]
    assert len(cells) <= GRID_CELLS + 16  # the grid, and the legend's swatches
    assert "lowerings: 100,000 elements, a cell per 98" in text
    assert len(text) < 400_000


# ------------------------------------------------------------------------------------ the page

def _page(report, **kw):
    return "".join(report_chunks(report, **kw))


def test_a_page_of_dumps_has_a_section_per_dump_and_nothing_external(dumps, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", *map(str, dumps), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}: 3 contexts (3 drawn), {out.stat().st_size:,} bytes\n"
    text = out.read_text()
    page = Page(text)
    sections = page.of_class("context")
    assert len(sections) == 3 and {s["data-state"] for s in sections} == {"dump"}
    assert page.external == [] and page.scripts == 0
    assert len(inline_svgs(text)) == 1 + 1 + 1 + 3  # the patterns, the legend, the graph, a map per context
    for path in dumps:
        assert f"vmctx-emu decode {path}" in text


def test_sections_past_the_limit_are_folded_by_what_they_show(dumps):
    ctx = dump_as_context(load_dump(dumps[1]), dumps[1])
    many = [replace(ctx, address=0x10000 + 0x1000 * i) for i in range(7)]
    report = Report("seven", "seed", "test", {"dump": 7}, many)
    page = Page(_page(report, max_sections=2))
    assert len(page.of_class("context")) == 2
    folded = page.of_class("folded")
    assert [int(f["data-count"]) for f in folded] == [5]


def test_the_report_command_needs_one_target(dumps, tmp_path, capsys):
    for argv in (["report", "-o", str(tmp_path / "x.html")],
                 ["report", str(dumps[0]), "--pid", "1", "-o", str(tmp_path / "x.html")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "report draws one target: give one of --pid PID, --core FILE, DUMP... or --save-dir DIR" in err
        assert err.count("\n") == 1
    assert main(["report", str(dumps[0]), "-o", str(tmp_path)]) == 2
    assert "is a directory; name the HTML file to write" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


# ------------------------------------------------------------------------------------ real Wasmtime

@pytest.fixture(scope="module")
def child():
    """A wasmtime-py child with four stores: lower/lift, memory+realloc+post-return, a resource, a composition."""
    live = pytest.importorskip("test_live_scan")  # skips off x86-64 Linux or without wasmtime 50
    with stores_child(live.CHILD_SHAPES) as proc:
        yield proc


def _check_real_page(text, scanned):
    page = Page(text)
    sections = page.of_class("context")
    assert sorted(int(s["data-address"], 16) for s in sections) == sorted(c.address for c in scanned.contexts)
    assert page.external == [] and page.scripts == 0
    graph = next(svg for svg in inline_svgs(text) if "vmctx-graph" in (svg.get("class") or ""))
    nodes = [g for g in graph.iter() if (g.get("class") or "").split()[:2] == ["node", "context"]]
    assert sorted(int(g.get("data-address"), 16) for g in nodes) == sorted(c.address for c in scanned.contexts)
    assert f"Wasmtime <b>{scanned.wasmtime}</b>" in text
    return page


def test_a_report_of_a_real_process_has_a_section_per_context(child, tmp_path, capsys):
    from vmctx_emu.live import scan

    out = tmp_path / "pid.html"
    assert main(["report", "--pid", str(child.pid), "-o", str(out)]) == 0
    capsys.readouterr()
    scanned = scan(child.pid, decode=False)
    text = out.read_text()
    _check_real_page(text, scanned)
    assert f"vmctx-emu scan --pid {child.pid} --records" in text
    assert "MAY_LEAVE" in text and "lowerings[0] at offset" in text
    out.unlink()
    layouts = set(re.findall(r"<code>vmctx-emu (layout [^<]* --svg)</code>", text))
    assert layouts
    for command in layouts:  # the commands a page gives run as given
        assert main(command.split()) == 0
        ET.fromstring(capsys.readouterr().out)


def test_a_report_of_a_core_and_of_its_capture_directory(child, tmp_path, capsys):
    from cores import gcore
    from vmctx_emu.live import scan

    core = gcore(child.pid, tmp_path, "child")
    try:
        scanned = scan(str(core), decode=False)
        out = tmp_path / "core.html"
        assert main(["report", "--core", str(core), "-o", str(out)]) == 0
        _check_real_page(out.read_text(), scanned)
        saved = tmp_path / "saved"
        assert main(["scan", "--core", str(core), "--save", str(saved)]) == 0
        assert main(["report", "--save-dir", str(saved), "-o", str(out)]) == 0
        capsys.readouterr()
        text = out.read_text()
        page = _check_real_page(text, scanned)
        assert {s["data-state"] for s in page.of_class("context")} == {c.state for c in scanned.contexts}
        assert f"vmctx-emu decode {saved}/ctx-" in text
    finally:
        os.unlink(core)


def test_a_page_of_2000_contexts_stays_small(dumps):
    ctx = dump_as_context(load_dump(dumps[1]), dumps[1])
    many = [replace(ctx, address=0x10000 + 0x1000 * i) for i in range(2000)]
    text = _page(Report("2,000", "seed", "test", {"dump": 2000}, many))
    assert len(text.encode()) <= 5 << 20
    page = Page(text)
    assert len(page.of_class("context")) == 200 and sum(int(f["data-count"]) for f in page.of_class("folded")) == 1800


def test_a_context_of_4m_lowerings_is_a_bounded_grid(dumps):
    layout = LAYOUTS[-1]
    counts = {"num_lowerings": 4_000_000, "num_runtime_component_instances": 3}
    offsets = layout.offsets(8, **counts)
    big = DumpedContext(bytes(offsets.size_of_vmctx()), layout.component(**counts), 8, "little", address=0x10000,
                        debug_assertions=False, wasmtime=layout.last)
    ctx = dump_as_context(big, "big.bin")
    text = _page(Report("big", layout.last, "test", {"dump": 1}, [ctx]))
    assert len(text.encode()) < 600_000
    assert "lowerings: 4,000,000 elements, a cell per 3,907" in text
    inline_svgs(text)


def test_a_dump_named_in_bytes_that_are_not_utf8_is_named_by_escapes(tmp_path):
    folder = os.path.join(os.fsencode(tmp_path), b"d\xff")
    assert main(["demo", "--dump", os.fsdecode(folder)]) == 0
    out = tmp_path / "r.html"
    assert main(["report", os.fsdecode(os.path.join(folder, b"ctx.bin")), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    word = f"$'{tmp_path}/d\\xff/ctx.bin'"  # bash's $'...': the byte itself
    assert f"vmctx-emu decode {html.escape(word)}" in text
    assert subprocess.run(["bash", "-c", f"test -f {word}"]).returncode == 0  # pasted, it names the file
    assert len(Page(text).of_class("context")) == 1


def test_a_context_not_decoded_says_its_shape_when_known_and_why_not(dumps):
    ctx = dump_as_context(load_dump(dumps[1]), dumps[1])
    known = replace(ctx, decoded=None, notes=["its shape claims too much: not read, not decoded"])
    unknown = replace(ctx, decoded=None, counts=None, shape_from=None, notes=["shape not recovered: no copy"])
    text = _page(Report("two", "seed", "test", {"dump": 2}, [known, unknown]))
    assert "shape: <code>--wasmtime seed --lowerings 3" in text and ", not decoded" in text
    assert "<p>shape: unknown, so not decoded</p>" in text
    assert "note: its shape claims too much" in text and "note: shape not recovered: no copy" in text
    assert len(Page(text).of_class("context")) == 2


def test_a_hostile_name_in_a_map_s_hover_text_stays_well_formed(dumps):
    decoded = decode(load_dump(dumps[1]))
    callee = decoded.ctx.offsets.lowering_callee(0)
    text = layout_svg(decoded.ctx.offsets, decoded, points_to={callee: "evil\x01\x1f</title><script>x</script>"})
    root = ET.fromstring(text)  # well-formed: the control characters replaced, the markup escaped
    titles = [t.text for t in root.iter(SVG + "title")]
    assert any("evil\ufffd\ufffd</title><script>x</script>" in t for t in titles), titles
