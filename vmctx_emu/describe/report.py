"""`report`: one self-contained HTML page of a process, a core, dumps or a capture directory.

A header (the target, its release and where it was identified, liveness counts, the commands that show the
same in the CLI), the pointer graph of its contexts, then a section per context: its layout map
(`drawing`), each instance's flag word in the CLI summary's words, its store context, anomalies, evidence
and notes. Past `max_sections` contexts, the rest are folded by what they show (release, shape, state,
flag words, anomalies) into one line each with their addresses, so a page of 2,000 contexts stays small.
No external resource and no script: inline CSS and SVG, light and dark, printable.
"""

import html
import shlex
import time
from collections import Counter
from dataclasses import dataclass, field

from ..live.liveness import FREED, LIVE, UNKNOWN, Liveness
from ..live.scanner import LiveContext
from .drawing import DEFS, STYLE as MAP_STYLE, layout_svg, legend_svg
from .graph import GRAPH_STYLE, graph_svg
from .summary import MAX_RUNS, context_summary, instance_runs, shape_options
from .words import utf8_text

__all__ = ["Report", "report_chunks", "report_from_scan", "report_from_dumps", "dump_as_context", "MAX_SECTIONS",
           "state_counts", "command_line"]

MAX_SECTIONS = 200  # contexts drawn in full; the rest are folded (`--sections` changes it)
MAX_ANOMALIES = 20  # anomalies listed per context; the rest counted
MAX_ADDRESSES = 4096  # addresses listed per folded group; the rest counted
NAV_OPEN = 12  # contexts the page's list shows open; a longer list starts closed, under the graph

# State -> (mark, words): the state told by a symbol and a word, not by colour alone.
STATE_MARKS = {LIVE: ("✓", "LIVE"), UNKNOWN: ("?", "UNKNOWN"), FREED: ("✗", "FREED"), "dump": ("▣", "DUMP")}

# Printed, every <details> shows its contents (evidence, folded addresses): a printed report hides nothing.
PRINT_OPEN = "details::details-content{content-visibility:visible;display:block}"
PAGE_STYLE = """
:root{--fg:#1b1b1b;--bg:#ffffff;--muted:#5b5b5b;--line:#cfcfcf;--live:#007a5a;--unknown:#a86f00;--freed:#c24a00;
--dump:#0060a0;--bad:#c24a00;color-scheme:light dark}
@media (prefers-color-scheme: dark){:root{--fg:#e8e8e8;--bg:#16181c;--muted:#a8a8a8;--line:#3a3d44;
--live:#3cc49b;--unknown:#f0b94d;--freed:#ff8a4d;--dump:#56a0d3;--bad:#ff8a4d}}
body{font:14px/1.45 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:1.5em auto;max-width:1000px;
padding:0 1em}
h1{font-size:1.35em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.2em 0 .3em}
code,pre{font:12px/1.4 ui-monospace,monospace}pre{white-space:pre-wrap;margin:.2em 0}
.muted{color:var(--muted)}
section.context,section.folded,section.graph{border-top:1px solid var(--line);padding-top:.4em;break-inside:avoid}
.state{font-weight:700;padding:0 .35em;border:2px solid currentColor;border-radius:3px}
.state.live{color:var(--live)}.state.unknown{color:var(--unknown)}.state.freed{color:var(--freed)}
.state.dump{color:var(--dump)}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid var(--line);padding:.1em .5em;text-align:left;
vertical-align:top}
.anomalies li{color:var(--bad);font-weight:600}
.anomalies li::before{content:"⚠ "}
svg{max-width:100%;height:auto}
nav ol{columns:3;font:12px ui-monospace,monospace}
@media print{body{max-width:none}nav{display:none}""" + PRINT_OPEN + """}
"""


@dataclass
class Report:
    """What a page shows: the target's words, its contexts (`LiveContext`s, decoded), and how to reproduce it."""

    title: str
    wasmtime: str
    wasmtime_from: str
    counts: dict
    contexts: list
    notes: list = field(default_factory=list)
    commands: list = field(default_factory=list)  # (what it shows, the command)
    context_command: object = None  # ctx -> the command that shows that context alone
    written_by: str = "vmctx-emu"  # the tool and version named at the foot of the header


def state_counts(contexts, freed=0):
    """{state: contexts in it} over `contexts`, freed ones counted too when only counted (`freed`)."""
    counts = Counter(c.state for c in contexts)
    if freed > counts.get(FREED, 0):
        counts[FREED] = freed
    return {s: counts[s] for s in (LIVE, UNKNOWN, FREED, "dump") if counts[s]}


DUMP = "dump"  # the state of a dump that does not say where it came from


def report_from_scan(result, target):
    """The report of a `ScanResult` (its contexts decoded now); `target` the CLI words naming it (`--pid 42`)."""
    from .scan import scan_counts

    target = tuple(target)
    scan = ("vmctx-emu", "scan", *target)
    return Report(title=result.source, wasmtime=result.wasmtime, wasmtime_from=result.wasmtime_from,
                  counts={s: n for s, n in scan_counts(result).items() if n or s == LIVE},
                  contexts=list(result.decoded_contexts()), notes=list(result.notes),
                  commands=[("each context in words", command_line(*scan)),
                            ("every field of each", command_line(*scan, "--records")),
                            ("as JSON", command_line(*scan, "--json")),
                            ("each context as a dump pair", command_line(*scan, "--save", "DIR"))],
                  context_command=lambda ctx: command_line(*scan, "--context", f"{ctx.address:#x}", "--records"))


def dump_as_context(dumped, path):
    """A loaded dump (`DumpedContext`) as a decoded `LiveContext`: its sidecar's origin gives the liveness."""
    from ..dumps.decode import decode

    origin = getattr(dumped, "origin", None) or {}
    seen = origin.get("liveness") or {}
    liveness = (Liveness(seen["state"], list(seen.get("evidence", []))) if seen.get("state") in (LIVE, UNKNOWN, FREED)
                else Liveness(DUMP, [f"read from {path}: a dump says nothing of liveness"]))
    offsets = dumped.offsets
    return LiveContext(address=dumped.vmctx or 0, wasmtime=origin.get("version") or dumped.wasmtime,
                       layout=dumped.layout, counts={n: getattr(offsets, n) for n in offsets.COUNT_NAMES},
                       shape_from=origin.get("shape_from") or f"the sidecar of {path}", decoded=decode(dumped),
                       liveness=liveness, image=origin.get("image"), release=dumped.wasmtime,
                       source=origin.get("source") or str(path))


def report_from_dumps(dumps, title, *, manifest=None):
    """The report of loaded dumps, `(path, DumpedContext)` pairs; `manifest` that of the capture they are from."""
    contexts = [dump_as_context(d, path) for path, d in dumps]
    paths = {id(c): path for c, (path, _) in zip(contexts, dumps)}
    releases = sorted({c.release or c.wasmtime for c in contexts if c.release or c.wasmtime})
    wasmtime, wasmtime_from = ", ".join(releases) or None, "the dumps' sidecars"
    notes, freed = [], 0
    if manifest is not None:
        seen = manifest.get("wasmtime") or {}
        wasmtime, wasmtime_from = seen.get("version") or wasmtime, seen.get("from") or wasmtime_from
        notes = [str(n) for n in manifest.get("notes") or []]
        freed = (manifest.get("liveness") or {}).get("freed") or 0
        unsaved = [c for c in manifest["contexts"] if not c.get("file")]
        notes += [f"context {c.get('address')} not saved: {c.get('not_saved', 'its shape is not known')}"
                  for c in unsaved]
    return Report(title=title, wasmtime=wasmtime, wasmtime_from=wasmtime_from,
                  counts=state_counts(contexts, freed if isinstance(freed, int) else 0), contexts=contexts,
                  notes=notes, commands=[("each dump's fields", command_line("vmctx-emu", "decode", "DUMP"))],
                  context_command=lambda ctx: command_line("vmctx-emu", "decode", paths[id(ctx)]))


def _e(text):
    """Text safe in HTML; a file name's bytes that are not UTF-8 written as \\x escapes."""
    return html.escape(utf8_text(text))


def command_line(*argv):
    """A shell command line for `argv`, each word quoted as needed."""
    return " ".join(_shell_word(str(a)) for a in argv)


def _shell_word(word):
    """`word` quoted for a POSIX shell; one holding bytes that are not UTF-8 (surrogate escapes) as bash's
    $'...' with \\xNN for them, so the command names the same file when pasted."""
    if not any(0xDC80 <= ord(c) <= 0xDCFF for c in word):
        return shlex.quote(utf8_text(word))
    out = []
    for c in word:
        if 0xDC80 <= ord(c) <= 0xDCFF:
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif c in "\\'":
            out.append("\\" + c)
        else:
            out.append(utf8_text(c))
    return "$'" + "".join(out) + "'"


def _state(state):
    mark, words = STATE_MARKS.get(state, ("?", state.upper()))
    return f'<span class="state {_e(state)}">{mark} {words}</span>'


def _counts_text(counts):
    return ", ".join(f"{n:,} {state}" for state, n in counts.items()) or "none"


def _header(report):
    n = len(report.contexts)
    out = [f"<header><h1>vmctx-emu report: {_e(report.title)}</h1>",
           f"<p>Wasmtime <b>{_e(report.wasmtime or 'unknown')}</b> ({_e(report.wasmtime_from or 'not identified')})"
           f", {n:,} component context{'s' * (n != 1)} listed ({_e(_counts_text(report.counts))})</p>"]
    if report.notes:
        out.append("<ul class=\"notes\">" + "".join(f"<li>note: {_e(n)}</li>" for n in report.notes) + "</ul>")
    if report.commands:
        out.append("<p>The same in the CLI:</p><table>" + "".join(
            f"<tr><td>{_e(what)}</td><td><code>{_e(cmd)}</code></td></tr>" for what, cmd in report.commands)
            + "</table>")
    out.append("<p>Each context's map is a strip of its bytes: each region as wide as its bytes (tiny ones wider), "
               "coloured by kind; large arrays below it as a grid, a cell per element or per run of elements. "
               "Hover over a slot for its field, offset, raw value and what it means; anomalies are outlined.</p>"
               + legend_svg())
    out.append(f'<p class="muted">written by {_e(report.written_by)} at '
               f'{time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}</p></header>')
    return "\n".join(out) + "\n"


def _address(ctx):
    return f"{ctx.address:#x}" if ctx.address else "(address unknown)"


def _nav(shown, folded, anchors):
    if len(shown) < 2 and not folded:
        return ""
    items = "".join(f'<li><a href="#{anchors[id(c)]}">{_address(c)}</a> {STATE_MARKS.get(c.state, ("?",))[0]}'
                    "</li>" for c in shown)
    rest = sum(len(g) for g in folded.values())
    more = f"<p>and {rest:,} more, folded below</p>" if folded else ""
    shut = "" if len(shown) <= NAV_OPEN else " (click to list them)"
    return (f"<nav><details{' open' if not shut else ''}><summary><b>Contexts</b>: {len(shown):,} drawn"
            + (f", {rest:,} folded" if rest else "") + f"{shut}</summary><ol>{items}</ol>{more}</details></nav>\n")


def _flags_table(summary):
    runs = instance_runs(summary["instances"])
    if not runs:
        return "<p>no component instances</p>"
    rows = []
    for first, last, inst in runs[:MAX_RUNS]:
        which = f"{first}" if first == last else f"{first}-{last}"
        rows.append(f"<tr><td>{which}</td><td><code>{inst['word']:#x}</code> {_e(inst['flags'])}</td>"
                    f"<td>{_e(inst['state'])}</td><td>{_e(inst['consequence'])}</td></tr>")
    more = ""
    if len(runs) > MAX_RUNS:
        rest = sum(last - first + 1 for first, last, _ in runs[MAX_RUNS:])
        more = (f"<p>… {rest:,} more instances in {len(runs) - MAX_RUNS:,} more runs of one state "
                "(<code>--records</code> or <code>--json</code> lists every flag word)</p>")
    return ("<table class=\"flags\"><tr><th>instance</th><th>flag word</th><th>state</th><th>a call now</th></tr>"
            + "".join(rows) + "</table>" + more)


def _store(summary):
    store = summary["store_context"]
    if store is None:
        return ""
    if "note" in store:
        return f"<p>{_e(store['note'])}</p>"
    sure = "" if store["sure"] else " (not sure)"
    return (f"<p>{_e(store['struct'])} <code>{_e(store['address'])}</code>: <b>{_e(store['state'])}</b>{sure}: "
            f"{_e(store['why'])}</p>")


def _anomalies(decoded):
    if not decoded.anomalies:
        return "<p>anomalies: none</p>"
    items = "".join(f"<li>{_e(a.kind)} at offset {a.offset} ({a.offset:#x}): {_e(a.message)}</li>"
                    for a in decoded.anomalies[:MAX_ANOMALIES])
    more = (f"<p>… {len(decoded.anomalies) - MAX_ANOMALIES:,} more (<code>--records</code> lists them)</p>"
            if len(decoded.anomalies) > MAX_ANOMALIES else "")
    return f'<ul class="anomalies">{items}</ul>{more}'


def _section(ctx, report, anchor):
    out = [f'<section class="context" id="{anchor}" data-address="{ctx.address:#x}" data-state="{_e(ctx.state)}">',
           f"<h2>{_state(ctx.state)} VMComponentContext at <code>{_address(ctx)}</code></h2>",
           f"<p>Wasmtime {_e(ctx.release or ctx.wasmtime or 'unknown')}, layout {_e(ctx.layout.id)} "
           f"({_e(ctx.layout.range_text)})</p>"]
    evidence = ctx.liveness.evidence if ctx.liveness is not None else []
    if ctx.decoded is None and ctx.counts is not None:  # a shape known but not read (its notes say why)
        out.append(f"<p>shape: <code>{_e(shape_options(ctx))}</code>, not decoded"
                   + (f"<br><span class=\"muted\">from {_e(ctx.shape_from)}</span>" if ctx.shape_from else "")
                   + "</p>")
    elif ctx.decoded is None:
        out.append(f"<p>shape: unknown, so not decoded{_e(f' ({ctx.shape_from})' if ctx.shape_from else '')}</p>")
    else:
        summary = context_summary(ctx)
        out.append(f"<p>shape: <code>{_e(summary['options'])}</code>"
                   + (f"<br><span class=\"muted\">from {_e(ctx.shape_from)}</span>" if ctx.shape_from else "")
                   + "</p>")
        decoded = ctx.decoded
        out.append(layout_svg(decoded.ctx.offsets, decoded, points_to=ctx.points_to,
                              anomalies=[a.offset for a in decoded.anomalies], standalone=False))
        out.append(_flags_table(summary))
        out.append(_store(summary))
        out.append(_anomalies(decoded))
    if evidence:
        out.append("<details><summary>liveness evidence</summary><ul>"
                   + "".join(f"<li>{_e(line)}</li>" for line in evidence) + "</ul></details>")
    if ctx.notes:
        out.append("<ul class=\"notes\">" + "".join(f"<li>note: {_e(n)}</li>" for n in ctx.notes) + "</ul>")
    commands = []
    if report.context_command is not None:
        commands.append(("every field", report.context_command(ctx)))
    if ctx.decoded is not None:
        commands.append(("this map's shape alone", "vmctx-emu layout " + shape_options(ctx) + " --svg"))
    if commands:
        out.append("<p class=\"muted\">In the CLI: " + "; ".join(f"{what}: <code>{_e(cmd)}</code>"
                                                              for what, cmd in commands) + "</p>")
    out.append("</section>\n")
    return "".join(out)


def _fold_key(ctx):
    """What a folded context shares with the others of its line: release, shape, state, flags, anomalies."""
    summary = context_summary(ctx) if ctx.decoded is not None else None
    if summary is None:
        return (ctx.release or ctx.wasmtime, ctx.layout.id, None, ctx.state, (), ())
    return (summary["release"], summary["layout"], summary["options"], ctx.state,
            tuple((i["word"], i["state_key"]) for i in summary["instances"]), tuple(summary["anomalies"].items()))


def _folded(groups, drawn, anchors):
    """A line per group of folded contexts, linking to a drawn context like them (`drawn`: key -> context)."""
    out = []
    for key, members in groups.items():
        release, layout, options, state, words, anomalies = key
        like = drawn.get(key)
        like = (f'like <a href="#{anchors[id(like)]}">{_address(like)}</a>' if like is not None
                else f"like {_address(members[0])}")
        flags = ", ".join(f"{w:#x}" for w, _ in words[:8]) + (", …" if len(words) > 8 else "")
        listed = " ".join(f"{c.address:#x}" for c in members[:MAX_ADDRESSES])
        rest = f" … and {len(members) - MAX_ADDRESSES:,} more" if len(members) > MAX_ADDRESSES else ""
        out.append(f'<section class="folded" data-count="{len(members)}"><h2>{_state(state)} × {len(members):,} '
                   f"{like}</h2>"
                   f"<p>Wasmtime {_e(release)}, layout {_e(layout)}, shape <code>{_e(options or 'unknown')}</code>"
                   + (f", flag words {_e(flags)}" if words else "")
                   + (", anomalies: " + _e(", ".join(f"{k} x{n}" for k, n in anomalies)) if anomalies else "")
                   + f"</p><details><summary>their addresses</summary><pre>{listed}{rest}</pre></details></section>\n")
    return "".join(out)


def report_chunks(report, *, max_sections=MAX_SECTIONS):
    """The page as str pieces: header, pointer graph, contexts, folded groups."""
    shown = report.contexts[:max_sections]
    folded = {}
    for ctx in report.contexts[max_sections:]:
        folded.setdefault(_fold_key(ctx), []).append(ctx)
    drawn = {}
    if folded:
        for ctx in shown:
            drawn.setdefault(_fold_key(ctx), ctx)
    yield ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<title>vmctx-emu report: {_e(report.title)}</title>"
           "<meta name=\"viewport\" content=\"width=device-width\">"
           f"<style>{PAGE_STYLE}{MAP_STYLE}{GRAPH_STYLE}</style></head><body>\n"
           f'<svg width="0" height="0" style="position:absolute" aria-hidden="true">{DEFS}</svg>\n')
    yield _header(report)
    anchors = {id(c): f"ctx-{i}" for i, c in enumerate(shown)}
    yield ('<section class="graph"><h2>Pointer graph</h2><p>Contexts, their stores and what their pointers reach '
           "(memories, core instances, func refs, host functions), grouped by store; stores and contexts alike are "
           "drawn once with how many are like them. Hover over a node or an edge for what it is; in the CLI, "
           "every field's pointer is named by the command for every field above.</p>\n"
           f"{graph_svg(report.contexts)}\n</section>\n")
    yield _nav(shown, folded, anchors)
    for ctx in shown:
        yield _section(ctx, report, anchors[id(ctx)])
    if folded:
        yield (f"<h2>{sum(len(m) for m in folded.values()):,} more contexts, folded</h2>"
               f"<p class=\"muted\">Past the first {max_sections:,} (<code>--sections N</code> draws more), each line "
               "holds the contexts that show the same release, shape, state, flag words and anomalies.</p>\n")
        yield _folded(folded, drawn, anchors)
    yield "</body></html>\n"
