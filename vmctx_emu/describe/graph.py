"""A process's pointer graph as one inline SVG: its contexts, their stores, memories, core instances and host
functions as nodes, each context's pointers as edges, grouped by store (`graph_svg`; `GRAPH_STYLE` styles it).

Laid out in four columns (stores | contexts | core instances, memories, func refs | host functions) with rows
ordered by barycentre (targets by their contexts, then each store's contexts by their targets, then targets
again): deterministic, and linear in the contexts. Store groups alike, or contexts of one store alike (same
layout, counts, state and targets; a target no other store reaches counted by kind, not address), `fold_min` or
more of them, are drawn once with "× N like this" and the first addresses in its hover text, so a process of
thousands of alike stores stays a page. No script: hover text is SVG `<title>`.
"""

import hashlib
from collections import defaultdict

import numpy as np

from ..layouts.ptr import invalid_ptr
from ..layouts.types import ROLES
from ..live.store_context import STRUCT_POINTERS
from .summary import shape_options
from .symbols import short_name
from .words import xml_text as escape

__all__ = ["graph_svg", "GRAPH_STYLE", "FOLD_MIN"]

# Alike store groups (or contexts of one store) from this many on are drawn once: below it every one is drawn,
# so a small process shows each of its contexts; 8 keeps a handful of stores apart and a pool folded.
FOLD_MIN = 8
# Addresses a folded node's hover text lists before "and N more".
FOLD_LISTED = 8
# Contexts drawn at most after folding (the rest are counted in a note): about 1.3 KB each with their store and
# a few edges, 8 KB with MAX_TARGETS edges (measured), so thousands of unlike contexts stay within 5 MB.
MAX_CONTEXT_NODES = 400
# Distinct targets drawn per context (beyond: one "N more" node): a context with 10,000 memories stays a row.
MAX_TARGETS = 24
# The seed's and v0.40's store pointer (a fat `*mut dyn Store`, its data word) where no store context is declared.
DYN_STORE = "*mut dyn Store"

# Columns: x of each column's left edge and its nodes' width, in px.
COLUMNS = {"store": 0, "context": 1, "core": 2, "memory": 2, "funcref": 2, "more": 2, "host": 3}
COL_X = (16, 236, 566, 856)
COL_W = (196, 270, 250, 300)
WIDTH = COL_X[-1] + COL_W[-1] + 16
NODE_H = 34
ROW_GAP = 8
GROUP_PAD = 8
GROUP_GAP = 18
FOLD_LINE = 16  # the "× N like this" line under a folded node
TOP = 40  # room for the legend line
CHAR_W = 7.0  # 12 px monospace, what a label is cut to fit
LABEL_CHARS = {col: int((w - 12) // CHAR_W) for col, w in enumerate(COL_W)}

KIND_WORDS = {"store": "store", "context": "component context", "core": "core instance VMContext",
              "memory": "VMMemoryDefinition", "funcref": "func ref", "host": "host function",
              "more": "more pointer values"}

# Okabe-Ito colours per kind, each kind also told apart by its outline (`_shape`) and dashes, so no reader
# depends on telling colours apart; the page's own light, dark and print schemes.
GRAPH_STYLE = """
.vmctx-graph { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--bg);
  max-width: 100%; height: auto;
  --bg: #fff; --ink: #1a1a1a; --muted: #555; --edge: #6b6b6b; --box: #f4f4f4; --box-line: #999;
  --store: #0072B2; --context: #E69F00; --core: #CC79A7; --memory: #009E73; --host: #56B4E9;
  --funcref: #D55E00; --tint: 18%; }
.vmctx-graph text { fill: var(--ink); }
.vmctx-graph .legend text, .vmctx-graph .fold text, .vmctx-graph .note { fill: var(--muted); }
.vmctx-graph .group rect { fill: var(--box); stroke: var(--box-line); stroke-width: 1; }
.vmctx-graph .node .shape { stroke-width: 2; stroke: var(--hue);
  fill: var(--bg); fill: color-mix(in srgb, var(--hue) var(--tint), var(--bg)); }
.vmctx-graph .store { --hue: var(--store); }
.vmctx-graph .context { --hue: var(--context); }
.vmctx-graph .core { --hue: var(--core); }
.vmctx-graph .memory { --hue: var(--memory); }
.vmctx-graph .funcref { --hue: var(--funcref); }
.vmctx-graph .host { --hue: var(--host); }
.vmctx-graph .more { --hue: var(--edge); }
.vmctx-graph .node.store .shape { stroke-width: 3; }
.vmctx-graph .node.context[data-state="freed"] .shape { stroke-dasharray: 6 3; --tint: 5%; }
.vmctx-graph .node.context[data-state="unknown"] .shape { stroke-dasharray: 2 2; }
.vmctx-graph .node.memory .shape { stroke-dasharray: 8 3; }
.vmctx-graph .node.funcref .shape { stroke-dasharray: 1 3; stroke-linecap: round; }
.vmctx-graph .node.more .shape { stroke-dasharray: 3 3; }
.vmctx-graph .stack { fill: none; stroke: var(--context); stroke-width: 1.5; }
.vmctx-graph .store-stack { fill: none; stroke: var(--box-line); stroke-width: 1.5; }
.vmctx-graph .edge path { fill: none; stroke: var(--edge); stroke-width: 1.2; }
.vmctx-graph .edge.store path { stroke-opacity: .55; }
.vmctx-graph .edge-counts text { fill: var(--ink); font-size: 11px;
  paint-order: stroke; stroke: var(--bg); stroke-width: 3px; }
.vmctx-graph .arrow { fill: var(--edge); }
.vmctx-graph .node:hover .shape, .vmctx-graph .edge:hover path { stroke-width: 3.5; }
@media (prefers-color-scheme: dark) {
  .vmctx-graph { --bg: #161616; --ink: #ececec; --muted: #b4b4b4; --edge: #9a9a9a; --box: #232323;
    --box-line: #6a6a6a; --store: #56B4E9; --host: #F0E442; --tint: 30%; }
}
@media print {
  .vmctx-graph { --bg: #fff; --ink: #000; --muted: #333; --edge: #444; --box: #fff; --box-line: #777;
    --tint: 8%; }
}
"""


def graph_svg(contexts, *, fold_min=FOLD_MIN, standalone=False):
    """The pointer graph of `contexts` (`LiveContext`s, decoded or not) as an `<svg class="vmctx-graph">`
    element, well-formed XML; `standalone` puts `GRAPH_STYLE` inside it (an .svg file of its own)."""
    graph = _Graph(sorted(contexts, key=lambda c: c.address))
    drawn = _fold(graph, max(2, fold_min))
    return _Drawing(graph, drawn).svg(standalone)


# ---------------------------------------------------------------- nodes and edges


class _Node:
    __slots__ = ("kind", "address", "label", "title", "ctx", "y", "bary", "via")

    def __init__(self, kind, address, label, title, ctx=None):
        self.kind, self.address, self.label, self.title, self.ctx = kind, address, label, title, ctx
        self.y = self.bary = 0.0
        self.via = None  # a store: the header field its contexts point at it from

    @property
    def key(self):
        return (self.kind, self.address)


class _Graph:
    """Every node (deduplicated by kind and address) and each context's edges: target key -> [count, fields]."""

    def __init__(self, contexts):
        self.contexts = contexts
        self.addresses = {c.address for c in contexts}
        self.nodes = {}
        self.store_of = {}  # context address -> store key or None
        self.edges = {}  # context address -> {target key: [pointers, [field label, ...], labels in all]}
        self._shapes = {}
        for ctx in contexts:
            self.nodes[("context", ctx.address)] = _Node("context", ctx.address, f"{ctx.address:#x}", None, ctx)
        for ctx in contexts:
            self.edges[ctx.address] = edges = self._pointers(ctx) if ctx.decoded is not None else {}
            self.store_of[ctx.address] = store = self._store(ctx)
            if store is not None:
                edges[store] = [1, [self.nodes[store].via], 1]

    def _add(self, kind, address, label, title):
        key = (kind, address)
        if key not in self.nodes:
            self.nodes[key] = _Node(kind, address, label, title)
        return key

    def _store(self, ctx):
        found = _store_pointer(ctx, None if ctx.decoded is None else self._store_field(ctx.decoded))
        if found is None:
            return None
        address, field, what = found
        key = ("store", address)
        if key not in self.nodes:
            title = f"store at {address:#x} ({what})"
            sc = ctx.store_context
            if sc is not None and sc.address == address and getattr(sc, "verdict", None) is not None:
                title += f"; {sc.verdict.state}" + ("" if sc.verdict.sure else " (not sure)")
            self._add("store", address, f"store {address:#x}", title)
            self.nodes[key].via = f"{field or 'its store context'} ({ROLES['header']})"
        return key

    def _pointers(self, ctx):
        """The context's edges: target key -> [pointers, field labels, labels in all]. Past MAX_TARGETS targets
        the other pointer values are only counted (one "more" node), not followed to their nodes."""
        decoded = ctx.decoded
        skip = (0, invalid_ptr(decoded.ctx.ptr))
        own = decoded.ctx.vmctx
        out, rest = {}, 0
        for name, sub, role, base, stride, label in self._slots(decoded):
            values = decoded.values[(name, sub)]
            if len(out) >= MAX_TARGETS:
                rest += _count_set(values, skip + ((own,) if role == "vmctx" and own is not None else ()))
                continue
            for value, i, n in _distinct(values):
                if value in skip or (role == "vmctx" and value == own):
                    continue
                if len(out) >= MAX_TARGETS:
                    rest += 1
                    continue
                key = self._target(role, value, ctx.pointees.get(base + i * stride) or {})
                edge = out.setdefault(key, [0, [], 0])
                edge[0] += n
                edge[2] += 1
                if len(edge[1]) < FOLD_LISTED:
                    edge[1].append(f"{label(i)} ({EDGE_WORDS[role]})" + (f" ×{n}" if n > 1 else ""))
        if rest:
            key = self._add("more", ctx.address, f"… {rest:,} more pointer values",
                            f"{rest:,} more distinct pointer values in the context at {ctx.address:#x}, not followed "
                            f"here: at most {MAX_TARGETS} targets a context are drawn")
            out[key] = [rest, [], 0]
        return out

    def _slots(self, decoded):
        """(region, sub-field, role, offset of element 0, stride, label of element i) of each sub-field whose
        pointers are edges, worked out once per shape (contexts of one shape share their `blocks`)."""
        return self._shape(decoded)[1]

    def _store_field(self, decoded):
        """The header field pointing at the store (None: the layout has none), once per shape."""
        return self._shape(decoded)[2]

    def _shape(self, decoded):
        key = id(decoded.blocks)
        if key not in self._shapes:
            fields = {f.elem_type.rust_name: f for f, _, _ in decoded.blocks}
            store = next((fields[r] for r in STRUCT_POINTERS + (DYN_STORE,) if r in fields), None)
            ptr, slots = decoded.ctx.ptr, []
            for field, region, first in decoded.blocks:
                if not region.count:
                    continue
                for sub in field.elem_type.subfields:
                    if sub.role in _TARGETS:
                        column = decoded.columns[first + field.elem_type.subfields.index(sub)]
                        slots.append((field.name, sub.name, sub.role, region.offset + field.sub_offset(sub.name, ptr),
                                      region.elem_size, column.label))
            self._shapes[key] = (decoded.blocks, slots, store)  # the blocks kept: their id stays theirs
        return self._shapes[key]

    def _target(self, role, value, pointee):
        """The node a pointer of `role` holding `value` goes to (`pointee`: what the scan named there)."""
        text = pointee.get("text")
        if role == "callee":
            name = pointee.get("symbol") or (text if pointee.get("kind") in ("symbol", "file") else None)
            label = short_name(name).partition(" in section ")[0] if name else f"host function {value:#x}"
            return self._add("host", value, label, f"host function at {value:#x}" + (f": {text}" if text else ""))
        if role == "memory":
            return self._add("memory", value, f"memory {value:#x}", text or f"VMMemoryDefinition at {value:#x}")
        if role == "func_ref":
            vmctx = (pointee.get("vmctx") or {}).get("value")
            if vmctx is not None and int(vmctx, 16):
                return self._vmctx(int(vmctx, 16), (pointee["vmctx"].get("points_to") or {}).get("text"))
            return self._add("funcref", value, f"func ref {value:#x}", text or f"VMFuncRef at {value:#x}")
        return self._vmctx(value, text)  # vmctx, core_vmctx

    def _vmctx(self, value, text):
        if value in self.addresses:
            return ("context", value)
        return self._add("core", value, f"core instance {value:#x}", text or f"VMContext at {value:#x}")


# What an edge's pointer is, by role: ROLES' words, but a vmctx that is an edge is never the context's own.
EDGE_WORDS = {**ROLES, "vmctx": "a func ref's vmctx: not this context"}
# The roles whose pointers become edges, to the kind of node they lead to (func refs lead on to their vmctx).
_TARGETS = {"callee": "host", "memory": "memory", "core_vmctx": "core", "func_ref": "funcref", "vmctx": "core"}


# Regions up to this many elements are read as Python ints; longer ones through numpy's unique.
SMALL_REGION = 16


def _distinct(values):
    """(value, index of its first element, how many) of each distinct value of one sub-field's elements."""
    if len(values) <= SMALL_REGION:
        found = {}
        for i, v in enumerate(values.tolist()):
            if v in found:
                found[v][2] += 1
            else:
                found[v] = [v, i, 1]
        return found.values()
    uniq, first, counts = np.unique(values, return_index=True, return_counts=True)
    return zip(uniq.tolist(), first.tolist(), counts.tolist())


def _count_set(values, skip):
    """How many distinct values of one sub-field's elements are not in `skip`."""
    distinct = np.unique(values)
    return int(len(distinct) - np.isin(distinct, np.array(skip, dtype=distinct.dtype)).sum())


def _store_pointer(ctx, field):
    """(address, header field name, what it is) of the store `ctx` belongs to, from the store context the scan
    read or its header `field`; None: not known (not decoded, no such field, null or poisoned)."""
    decoded = ctx.decoded
    name = None if field is None else field.name
    if ctx.store_context is not None:
        return ctx.store_context.address, name, getattr(ctx.store_context.layout, "rust_struct", "store context")
    if field is None:
        return None
    value = int(decoded.values[(field.name, field.elem_type.subfields[0].name)][0])
    if value in (0, invalid_ptr(decoded.ctx.ptr)):
        return None
    return value, name, field.elem_type.rust_name.removeprefix("*mut ")


def _context_title(ctx):
    lines = [f"component context at {ctx.address:#x}", f"state: {ctx.state}",
             f"release: {ctx.release or ctx.wasmtime or 'unknown'}", f"layout: {ctx.layout.id}"]
    if ctx.counts is not None:
        lines.append(f"options: {shape_options(ctx)}")
    if ctx.decoded is None:
        lines.append("not decoded: its shape is unknown")
    return "\n".join(lines)


# ---------------------------------------------------------------- folding


class _Drawn:
    """What is drawn: store groups in order, each (store key or None, [context address, ...], folded stores),
    and per drawn context how many it stands for."""

    def __init__(self):
        self.groups = []  # (store key, [ctx address], [addresses of the stores it stands for])
        self.alike = {}  # ctx address -> [addresses it stands for, itself first]
        self.hidden = 0  # contexts past MAX_CONTEXT_NODES


def _fold(graph, fold_min):
    by_store = defaultdict(list)
    for ctx in graph.contexts:
        by_store[graph.store_of[ctx.address]].append(ctx.address)
    reach = defaultdict(set)  # target key -> store keys whose contexts point at it
    for address, edges in graph.edges.items():
        for key in edges:
            reach[key].add(graph.store_of[address])

    def target(key):
        """A target in a signature: a node other stores reach by identity; one its store alone reaches by kind."""
        return key if len(reach[key]) > 1 and key[0] != "store" else (key[0],)

    sig = {}
    for ctx in graph.contexts:
        edges = graph.edges[ctx.address]
        sig[ctx.address] = (ctx.layout.id, ctx.release or ctx.wasmtime or "", tuple(sorted((ctx.counts or {}).items())),
                            ctx.state, ctx.decoded is None,
                            tuple(sorted((target(k), n[0]) for k, n in edges.items())))
    order = sorted(by_store, key=lambda s: (s is None, s or ()))
    store_sig = {s: (s is None, tuple(sorted(_count(sig[a] for a in by_store[s]).items()))) for s in order}
    classes = defaultdict(list)
    for s in order:
        classes[store_sig[s]].append(s)
    drawn = _Drawn()
    budget = MAX_CONTEXT_NODES
    shown = 0  # contexts drawn or stood for
    for s in order:
        alike = classes[store_sig[s]]
        if s is not None and len(alike) >= fold_min:
            if alike[0] != s:
                continue
            stands_for = [k[1] for k in alike]
        else:
            stands_for = [s[1]] if s is not None else []
            alike = [s]
        kept = []
        by_sig = defaultdict(list)
        for a in by_store[s]:
            by_sig[sig[a]].append(a)
        for a in by_store[s]:
            same = by_sig[sig[a]]
            if len(same) >= fold_min:
                if same[0] != a:
                    continue
                drawn.alike[a] = same
            if budget <= 0:
                drawn.alike.pop(a, None)
                continue
            budget -= 1
            kept.append(a)
            shown += len(drawn.alike.get(a, (a,))) * len(alike)  # alike stores hold alike contexts
        if kept:
            drawn.groups.append((s, kept, stands_for))
    drawn.hidden = len(graph.contexts) - shown
    return drawn


def _count(items):
    counts = defaultdict(int)
    for item in items:
        counts[item] += 1
    return counts


# ---------------------------------------------------------------- layout and SVG


class _Drawing:
    def __init__(self, graph, drawn):
        self.graph, self.drawn = graph, drawn
        self.prefix = "g" + hashlib.sha1(b"".join(c.address.to_bytes(8, "little")
                                                  for c in graph.contexts)).hexdigest()[:8]
        self.targets = []  # target nodes drawn, in columns 2 and 3
        self.group_boxes = []  # (y0, y1, group)
        self.drawn_contexts = {a for _, kept, _ in drawn.groups for a in kept}
        self._place()

    def _context_edges(self):
        drawn = self.drawn_contexts
        for store, kept, _ in self.drawn.groups:
            for a in kept:
                for key, edge in self.graph.edges[a].items():
                    if key[0] != "context" or key[1] in drawn:
                        yield a, key, edge

    def _place(self):
        g = self.graph
        targets = {}
        for a, key, _ in self._context_edges():
            if key[0] not in ("context", "store"):
                targets.setdefault(key, g.nodes[key])
        self.targets = list(targets.values())
        self._place_contexts()
        self._place_targets()
        for store, kept, _ in self.drawn.groups:  # one sweep back: each group's contexts by their targets' rows
            def bary(a):
                ys = [g.nodes[k].y for k in g.edges[a] if k in targets]
                return (sum(ys) / len(ys) if ys else g.nodes[("context", a)].y, a)
            kept.sort(key=bary)
        self._place_contexts()
        self._place_targets()

    def _place_contexts(self):
        g, y = self.graph, TOP
        self.group_boxes = []
        for group in self.drawn.groups:
            store, kept, stands_for = group
            top = y
            y += GROUP_PAD + (FOLD_LINE if len(stands_for) > 1 else 0)
            for a in kept:
                g.nodes[("context", a)].y = y
                y += NODE_H + ROW_GAP + (FOLD_LINE if a in self.drawn.alike else 0)
            y += GROUP_PAD - ROW_GAP
            if store is not None:
                g.nodes[store].y = (top + y - NODE_H) / 2
            self.group_boxes.append((top, y, group))
            y += GROUP_GAP
        self.height = y

    def _place_targets(self):
        g = self.graph
        sources = defaultdict(list)
        for a, key, _ in self._context_edges():
            sources[key].append(g.nodes[("context", a)].y)
        for node in self.targets:
            ys = sources[node.key]
            node.bary = sum(ys) / len(ys)
        for col in (2, 3):
            y = TOP
            for node in sorted((n for n in self.targets if COLUMNS[n.kind] == col), key=lambda n: (n.bary, n.key)):
                node.y = max(y, node.bary)
                y = node.y + NODE_H + ROW_GAP
            self.height = max(self.height, y + GROUP_GAP)

    # -------------------------------------------------------- SVG text

    def svg(self, standalone):
        out = [f'<svg class="vmctx-graph" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
               f'height="{int(self.height)}" viewBox="0 0 {WIDTH} {int(self.height)}" role="img" '
               f'aria-labelledby="{self.prefix}-t">',
               f'<title id="{self.prefix}-t">{escape(self._summary())}</title>']
        if standalone:
            out.append(f"<style>{GRAPH_STYLE}</style>")
        out.append(f'<defs><marker id="{self.prefix}-a" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
                   'markerHeight="7" orient="auto-start-reverse"><path class="arrow" d="M0,0 L8,4 L0,8 z"/>'
                   '</marker></defs>')
        out.append(self._legend())
        for box in self.group_boxes:
            out.append(self._group(*box))
        edges, counts = self._edges()
        out.extend(edges)
        g = self.graph
        for _, kept, _ in self.drawn.groups:
            out.extend(self._node(g.nodes[("context", a)]) for a in kept)
        out.extend(self._node(n) for n in self.targets)
        if counts:  # over the nodes, so a count on an edge that crosses a column stays readable
            out.append('<g class="edge-counts">' + "".join(counts) + "</g>")
        if self.drawn.hidden:
            out.append(f'<text class="note" x="{COL_X[1]}" y="{int(self.height) - 6}">{self.drawn.hidden:,} more '
                       f'contexts not drawn (at most {MAX_CONTEXT_NODES} are)</text>')
        out.append("</svg>")
        return "\n".join(out) + "\n"

    def _summary(self):
        g = self.graph
        kinds = _count(k[0] for k in g.nodes if k[0] != "more")
        parts = ", ".join(f"{n:,} {KIND_WORDS[k]}{'s' if n != 1 else ''}" for k, n in sorted(kinds.items()))
        return f"pointer graph: {parts or 'no contexts'}"

    def _legend(self):
        items = []
        for col, words in enumerate(("stores", "component contexts", "core instances · memories · func refs",
                                     "host functions")):
            items.append(f'<text x="{COL_X[col]}" y="20">{escape(words)}</text>')
        return '<g class="legend">' + "".join(items) + "</g>"

    def _group(self, top, bottom, group):
        store, kept, stands_for = group
        x, w = COL_X[0] - GROUP_PAD, COL_X[1] + COL_W[1] + GROUP_PAD - (COL_X[0] - GROUP_PAD)
        parts = [f'<g class="group" data-store="{store[1]:#x}">' if store else '<g class="group">']
        if len(stands_for) > 1:
            for d in (6, 3):
                parts.append(f'<rect class="store-stack" x="{x + d}" y="{top - d}" width="{w}" '
                             f'height="{bottom - top:g}" rx="10"/>')
        parts.append(f'<rect x="{x}" y="{top:g}" width="{w}" height="{bottom - top:g}" rx="10"/>')
        if store is None:
            parts.append(f'<title>contexts whose store is not known</title>')
        if len(stands_for) > 1:
            parts.append(f'<g class="fold"><text x="{x + 10}" y="{top + 13:g}">× {len(stands_for):,} stores like this'
                         f'</text><title>{len(stands_for):,} stores alike (their contexts the same shape, state and '
                         f'targets): {escape(_listed(stands_for))}</title></g>')
        parts.append("</g>")
        if store is not None:
            parts.append(self._node(self.graph.nodes[store]))
        return "".join(parts)

    def _node(self, node):
        col = COLUMNS[node.kind]
        x, y, w, h = COL_X[col], node.y, COL_W[col], NODE_H
        attrs = f'class="node {node.kind}" data-address="{node.address:#x}"'
        if node.kind == "context":
            attrs += f' data-state="{escape(node.ctx.state)}"'
        title = node.title if node.title is not None else _context_title(node.ctx)  # only drawn ones need it
        parts = [f"<g {attrs}>", f"<title>{escape(title)}</title>"]
        alike = self.drawn.alike.get(node.address) if node.kind == "context" else None
        if alike:
            for d in (6, 3):
                parts.append(f'<rect class="stack" x="{x + d}" y="{y - d:g}" width="{w}" height="{h}" rx="4"/>')
        parts.append(_shape(node.kind, x, y, w, h))
        label, second = node.label, _second_line(node)
        label = _cut(label, col, tail=node.kind == "host")
        parts.append(f'<text x="{x + 8}" y="{y + (14 if second else 21):g}">{escape(label)}</text>')
        if second:
            parts.append(f'<text x="{x + 8}" y="{y + 28:g}">{escape(_cut(second, col))}</text>')
        if alike:
            parts.append(f'<g class="fold"><text x="{x + 8}" y="{y + h + 13:g}">× {len(alike):,} like this</text>'
                         f'<title>{len(alike):,} contexts alike (layout, counts, state and targets): '
                         f'{escape(_listed(alike))}</title></g>')
        parts.append("</g>")
        return "".join(parts)

    def _edges(self):
        g, out, counts = self.graph, [], []
        for a, key, (count, fields, labels) in self._context_edges():
            src, dst = g.nodes[("context", a)], g.nodes[key]
            sy = src.y + NODE_H / 2
            dy = dst.y + NODE_H / 2
            scol, dcol = 1, COLUMNS[dst.kind]
            if dcol > scol:
                x1, x2 = COL_X[1] + COL_W[1], COL_X[dcol]
                bend = (x2 - x1) / 2
                d = f"M{x1},{sy:g} C{x1 + bend:g},{sy:g} {x2 - bend:g},{dy:g} {x2},{dy:g}"
                lx, ly = (x1 + x2) / 2 - 8, (sy + dy) / 2 + 4
            elif dcol < scol:
                x1, x2 = COL_X[1], COL_X[0] + COL_W[0]
                d = f"M{x1},{sy:g} C{x1 - 12},{sy:g} {x2 + 12},{dy:g} {x2},{dy:g}"
                lx, ly = (x1 + x2) / 2 - 8, (sy + dy) / 2 + 4
            else:  # context to context: out of the right edge and back
                x = COL_X[1] + COL_W[1]
                d = f"M{x},{sy:g} C{x + 60},{sy:g} {x + 60},{dy:g} {x},{dy:g}"
                lx, ly = x + 40, (sy + dy) / 2 + 4
            if dst.kind == "more":
                what = dst.title
            else:
                what = (f"{count:,} pointer{'s' if count != 1 else ''} from the context at {a:#x} to the "
                        f"{KIND_WORDS[dst.kind]} at {dst.address:#x}: " + "; ".join(fields)
                        + (f"; and {labels - len(fields):,} more" if labels > len(fields) else ""))
            out.append(f'<g class="edge {dst.kind}"><title>{escape(what)}</title>'
                       f'<path d="{d}" marker-end="url(#{self.prefix}-a)"/></g>')
            if count > 1:
                counts.append(f'<text x="{lx:g}" y="{ly:g}">×{count:,}<title>{escape(what)}</title></text>')
        return out, counts


def _shape(kind, x, y, w, h):
    """A node's outline, told apart by shape as well as colour: stores square, contexts rounded, core instances
    with cut corners, host functions a pill, memories and func refs dashed and dotted (CSS)."""
    if kind == "core":
        c = 8
        points = (f"{x + c},{y:g} {x + w - c},{y:g} {x + w},{y + c:g} {x + w},{y + h - c:g} {x + w - c},{y + h:g} "
                  f"{x + c},{y + h:g} {x},{y + h - c:g} {x},{y + c:g}")
        return f'<polygon class="shape" points="{points}"/>'
    rx = {"store": 0, "context": 4, "host": h / 2, "memory": 2, "funcref": h / 2, "more": 4}[kind]
    return f'<rect class="shape" x="{x}" y="{y:g}" width="{w}" height="{h}" rx="{rx:g}"/>'


def _second_line(node):
    if node.kind == "context":
        ctx = node.ctx
        return f"{ctx.layout.id} · {ctx.state} · {ctx.release or ctx.wasmtime or '?'}"
    return None


def _cut(text, col, tail=False):
    """`text` cut to fit column `col`; `tail`: keep its end (a Rust name's last segment says the most)."""
    most = LABEL_CHARS[col]
    if len(text) <= most:
        return text
    return "…" + text[1 - most:] if tail else text[: most - 1] + "…"


def _listed(addresses):
    shown = ", ".join(f"{a:#x}" for a in addresses[:FOLD_LISTED])
    rest = len(addresses) - FOLD_LISTED
    return shown + (f" and {rest:,} more" if rest > 0 else "")
