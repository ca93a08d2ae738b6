"""A context's layout as a picture: an SVG strip of its regions, each as wide as its bytes (with a floor for
tiny ones), coloured by kind, its slots marked set, null or poisoned, large arrays as a grid of runs.

One drawing serves `layout --svg` (a shape alone: kinds, no slot states) and each context of `report`
(slot states from its decode, hover text with the field, offset, raw value and what it means). The
picture's size is bounded whatever the counts: a strip of at most `STRIP_SLOTS` slots a region, a grid of
at most `GRID_CELLS` cells, each cell a run of elements when there are more.
"""

import numpy as np

from ..dumps.decode import Interp
from .records import pointed_text
from .words import hex_value, interpretation, utf8_text, xml_text

__all__ = ["KINDS", "STATES", "STYLE", "DEFS", "MAP_STATES", "region_kind", "layout_map", "layout_svg", "legend",
           "legend_svg", "slot_states", "SLOT_STATES"]

# A region's kind, from the roles of its sub-fields: the first role of this list it holds decides.
_KIND_OF_ROLE = (("magic", "header"), ("header", "header"), ("flags", "flags"), ("callee", "lowerings"),
                 ("func_ptr", "func_refs"), ("array_call", "func_refs"), ("wasm_call", "func_refs"),
                 ("native_call", "func_refs"), ("memory", "pointers"), ("func_ref", "pointers"),
                 ("table", "pointers"), ("core_vmctx", "pointers"))
# Kind -> (legend words, light colour, dark colour): the Okabe-Ito palette, told apart without hue too.
KINDS = {
    "header": ("header", "#0072b2", "#56a0d3"),
    "flags": ("instance flags", "#e69f00", "#f0b94d"),
    "func_refs": ("func refs", "#56b4e9", "#8ccdf2"),
    "lowerings": ("lowerings", "#009e73", "#3cc49b"),
    "pointers": ("pointer arrays", "#cc79a7", "#dfa3c6"),
    "values": ("plain values", "#a08f00", "#e0d050"),
}
# Slot state -> legend words. Set slots are filled; null ones hollow; poisoned ones hatched; mixed runs striped.
STATES = {"set": "set", "null": "null", "poisoned": "poisoned (never set)", "bad": "bad magic",
          "partly": "partly set", "mixed": "run of mixed states", "layout": "shape only"}

WIDTH = 960           # px of the strip
STRIP_H = 34          # px of a region's block
MIN_BLOCK = 10        # px every region gets, however few its bytes
MIN_SLOT = 4          # px a slot needs to be drawn in the strip; fewer: the block shows its state shares
STRIP_SLOTS = 256     # slots of one region drawn in the strip at most
GRID_COLUMNS = 64
GRID_CELLS = 1024     # cells of one region's grid at most; more elements: a cell is a run
CELL = 13             # px of a grid cell (12 and a gap)
ROW_GAP = 22          # px between a grid's caption and the row above

STYLE = """
svg.vmctx{font:11px system-ui,sans-serif}
svg.vmctx text{fill:var(--fg,#222)}
svg.vmctx .cap{font-weight:600}
svg.vmctx rect.slot{stroke:var(--bg,#fff);stroke-width:1}
svg.vmctx rect.block{fill:none;stroke:var(--fg,#222);stroke-width:1}
svg.vmctx .s-null{fill:var(--bg,#fff)!important;stroke:var(--fg,#222)!important;stroke-dasharray:2 2}
svg.vmctx .o-poisoned{fill:url(#hatch);pointer-events:none}
svg.vmctx .o-mixed,svg.vmctx .o-partly{fill:url(#stripe);pointer-events:none}
svg.vmctx .k-none{fill:#999}
svg.vmctx .s-bad{stroke:#d55e00!important;stroke-width:3!important}
svg.vmctx .anomaly{fill:none;stroke:#d55e00;stroke-width:3}
""" + "".join(f"svg.vmctx .k-{k}{{fill:{light}}}\n" for k, (_, light, _dark) in KINDS.items()) + """
@media (prefers-color-scheme: dark){
""" + "".join(f"svg.vmctx .k-{k}{{fill:{dark}}}\n" for k, (_, _light, dark) in KINDS.items()) + "}\n"

DEFS = ('<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff" fill-opacity="0.45"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#222" stroke-width="2.5"/></pattern>'
        '<pattern id="stripe" width="6" height="6" patternUnits="userSpaceOnUse">'
        '<rect width="2" height="6" fill="#222" fill-opacity="0.55"/></pattern></defs>')
# An element's state as `slot_states` codes it (its index here); "mixed" and "layout" are the drawing's own.
SLOT_STATES = ("set", "null", "poisoned", "bad", "partly")
_OVERLAID = ("poisoned", "mixed", "partly")  # states drawn as a pattern over the kind's colour


def _escape(text):
    """Text safe in an SVG: a file name's bytes that are not UTF-8 written as \\x escapes, then `xml_text`."""
    return xml_text(utf8_text(text))


def region_kind(field):
    """The kind (a key of `KINDS`) of a declared field, from its sub-fields' roles."""
    roles = {sub.role for sub in field.elem_type.subfields}
    return next((kind for role, kind in _KIND_OF_ROLE if role in roles), "values")


def slot_states(decoded, field, start, stop):
    """The state of elements `start:stop` of `field` as u8 codes (indices into `SLOT_STATES`), from their
    interpretation codes: poisoned if any sub-field is, null if every pointer is, partly if some are."""
    return _states(field, decoded.element_columns(field, start, stop))


def _states(field, columns):
    """`slot_states` of elements whose `Decoded.element_columns` are `columns`."""
    n = len(columns[0][1]) if columns else 0
    poisoned, bad = np.zeros(n, bool), np.zeros(n, bool)
    pointers, nulls = np.zeros(n, np.int32), np.zeros(n, np.int32)
    for sub, (_values, codes) in zip(field.elem_type.subfields, columns):
        poisoned |= codes == Interp.POISON
        bad |= codes == Interp.MAGIC_BAD
        if sub.kind == "ptr":
            pointers += 1
            nulls += (codes == Interp.NULL) | (codes == Interp.POISON)
    code = SLOT_STATES.index
    states = np.zeros(n, np.uint8)
    states[(nulls > 0) & (nulls < pointers)] = code("partly")
    states[(pointers > 0) & (nulls == pointers)] = code("null")
    states[poisoned] = code("poisoned")
    states[bad] = code("bad")
    return states


def _run_counts(states, per):
    """Per run of `per` elements (the last may be shorter), how many are in each of `SLOT_STATES`: (runs, k)."""
    k = len(SLOT_STATES)
    runs = -(-len(states) // per)
    keys = (np.arange(len(states), dtype=np.int64) // per) * k + states
    return np.bincount(keys, minlength=runs * k).reshape(runs, k)


def _element_title(decoded, field, region, index, points_to, columns, first_column):
    """Hover text of one element: the field, its offset, and per sub-field the raw value and what it means.
    `columns` are the region's `element_columns` from element 0, `first_column` its first `Column`'s number."""
    ctx = decoded.ctx
    at = region.offset + index * region.elem_size
    name = f"{field.name}[{index}]" if field.count is not None else field.name
    lines = [f"{name} at offset {at} ({at:#x})"]
    subs = field.elem_type.subfields
    for k, (sub, (values, codes)) in enumerate(zip(subs, columns)):
        value, code = int(values[index]), int(codes[index])
        offset = at + field.sub_offset(sub.name, ctx.ptr)
        column = decoded.columns[first_column + k]
        words = interpretation(code, value, ctx)
        target = (points_to or {}).get(offset)
        if target is not None:
            words = pointed_text(words, code, target)
        label = "" if len(subs) == 1 else f"{sub.name} "
        lines.append(f"{label}{hex_value(column, value, ctx)}: {words}")
    return "\n".join(lines)


def _run_state(counts):
    """The state a run is drawn in: its elements' one state, else "mixed"."""
    held = np.flatnonzero(counts)
    return SLOT_STATES[held[0]] if len(held) == 1 else "mixed"


def _run_title(field, region, first, last, counts):
    """Hover text of a run of elements: where, and how many are in each state (`counts`, per `SLOT_STATES`)."""
    held = sorted(((int(n), SLOT_STATES[i]) for i, n in enumerate(counts) if n), key=lambda ns: -ns[0])
    shares = ", ".join(f"{n:,} {STATES[s]}" for n, s in held)
    at, end = region.offset + first * region.elem_size, region.offset + (last + 1) * region.elem_size
    return f"{field.name}[{first}..{last}] at offsets {at}-{end - 1} ({at:#x}-{end - 1:#x}): {shares}"


def _widths(regions):
    """Each region's width in px: MIN_BLOCK, and the rest of WIDTH shared by bytes."""
    total = sum(r.size for r in regions) or 1
    spare = max(0, WIDTH - MIN_BLOCK * len(regions))
    return [MIN_BLOCK + spare * r.size / total for r in regions]


def _rect(x, y, w, h, cls, title=None, state=None):
    """A rect; a slot in a state of `_OVERLAID` gets that state's pattern drawn over it."""
    body = f'<rect x="{x:.1f}" y="{y}" width="{max(w, 0.5):.1f}" height="{h}" class="{cls}"'
    out = body + (f"><title>{_escape(title)}</title></rect>" if title else "/>")
    if state in _OVERLAID:
        out += f'<rect x="{x:.1f}" y="{y}" width="{max(w, 0.5):.1f}" height="{h}" class="o-{state}"/>'
    return out


def layout_map(offsets, decoded=None, points_to=None, anomalies=()):
    """The map's SVG elements (a list of str) and its height: the strip, then a grid per large array.

    `decoded` (a `Decoded` of this shape) marks each slot's state and gives hover text its raw values and
    their meaning (`points_to`: offset -> what a pointer there points at); `anomalies` are offsets outlined.
    """
    regions = offsets.regions()
    widths = _widths(regions)
    first_columns = {} if decoded is None else {field.name: first for field, _, first in decoded.blocks}
    parts, grids = [], []
    x = 0.0
    for field, region, width in zip(offsets.LAYOUT.declared_fields(), regions, widths):
        kind = region_kind(field)
        head = (f"{field.name}: {region.elem_type}" + (f" x {region.count:,} ({region.count_name})"
                                                       if region.count_name else "")
                + f", {region.size:,} bytes at offset {region.offset} ({region.offset:#x})"
                + (f", after {region.padding_before} bytes of padding" if region.padding_before else ""))
        count = region.count
        if decoded is None or count == 0:
            state = "layout" if decoded is None else "null"
            parts.append(_rect(x, 0, width, STRIP_H, f"slot k-{kind} s-{state}" if count else "slot s-null",
                               head + ("" if count else ": no elements")))
        elif count * MIN_SLOT <= width and count <= STRIP_SLOTS:
            columns = decoded.element_columns(field, 0, count)
            states = _states(field, columns)
            step = width / count
            for i in range(count):
                title = head + "\n" + _element_title(decoded, field, region, i, points_to, columns,
                                                      first_columns[field.name])
                state = SLOT_STATES[states[i]]
                parts.append(_rect(x + i * step, 0, step, STRIP_H, f"slot k-{kind} s-{state}", title, state))
        else:
            columns = decoded.element_columns(field, 0, count)
            states = _states(field, columns)
            total = np.bincount(states, minlength=len(SLOT_STATES))
            title = _run_title(field, region, 0, count - 1, total)
            cursor = x
            for i, n in enumerate(total.tolist()):
                if n:
                    share = width * n / count
                    parts.append(_rect(cursor, 0, share, STRIP_H, f"slot k-{kind} s-{SLOT_STATES[i]}", title,
                                       SLOT_STATES[i]))
                    cursor += share
            grids.append((field, region, kind, states, columns))
        parts.append(_rect(x, 0, width, STRIP_H, "block", None))
        if width >= 7 * len(field.name) + 6:
            parts.append(f'<text x="{x + 3:.1f}" y="{STRIP_H + 12}">{_escape(field.name)}</text>')
        x += width
    for offset in sorted(set(anomalies)):
        at = _x_of(offset, regions, widths)
        if at is not None:
            parts.append(f'<rect x="{at - 2:.1f}" y="-3" width="5" height="{STRIP_H + 6}" class="anomaly">'
                         f"<title>anomaly at offset {offset} ({offset:#x})</title></rect>")
    y = STRIP_H + 16
    for field, region, kind, states, columns in grids:
        y += ROW_GAP
        per = -(-len(states) // GRID_CELLS)
        runs = _run_counts(states, per)
        cells = len(runs)
        parts.append(f'<text x="0" y="{y - 6}" class="cap">{_escape(field.name)}: {len(states):,} elements'
                     + (f", a cell per {per:,}" if per > 1 else "") + "</text>")
        for c in range(cells):
            first, last = c * per, min(len(states), (c + 1) * per) - 1
            state = _run_state(runs[c])
            title = (_element_title(decoded, field, region, first, points_to, columns, first_columns[field.name])
                     if per == 1 else _run_title(field, region, first, last, runs[c]))
            parts.append(_rect((c % GRID_COLUMNS) * CELL, y + (c // GRID_COLUMNS) * CELL, CELL - 1, CELL - 1,
                               f"slot k-{kind} s-{state}", title, state))
        y += -(-cells // GRID_COLUMNS) * CELL
    return parts, y + 4


def _x_of(offset, regions, widths):
    """The strip's x of a byte offset (inside the region holding it; `widths` theirs in px), or None past the end."""
    x = 0.0
    for region, width in zip(regions, widths):
        if region.offset - region.padding_before <= offset < region.end or (region.size == 0 and offset == region.offset):
            inside = (offset - region.offset) / region.size if region.size else 0
            return x + max(0.0, inside) * width
        x += width
    return None


def legend(y, states):
    """Legend rows from `y`: every kind, then `states` (keys of `STATES`); (SVG elements, height reached)."""
    parts, x = [], 0
    for key, (words, _, _) in KINDS.items():
        parts.append(_rect(x, y, 12, 12, f"slot k-{key} s-set") + f'<text x="{x + 16}" y="{y + 10}">{words}</text>')
        x += 22 + 7 * len(words)
    y += 18
    x = 0
    for key in states:
        parts.append(_rect(x, y, 12, 12, f"slot k-none s-{key}", None, key) + f'<text x="{x + 16}" y="{y + 10}">'
                     f"{STATES[key]}</text>")
        x += 22 + 7 * len(STATES[key])
    return parts, y + 16


MAP_STATES = ("set", "null", "poisoned", "partly", "mixed")  # the states a decoded map may show


def legend_svg():
    """The legend of a decoded map alone, as an inline `<svg>` (a page shows it once for all its maps)."""
    parts, height = legend(0, MAP_STATES)
    return f'<svg class="vmctx" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">{"".join(parts)}</svg>'


def layout_svg(offsets, decoded=None, points_to=None, anomalies=(), title=None, standalone=True):
    """A whole SVG document (`standalone`, with its own style and legend) or an inline `<svg>` for an HTML page
    (whose legend is `legend_svg`, once)."""
    parts, height = layout_map(offsets, decoded, points_to, anomalies)
    top = 0
    head = []
    if title:
        head.append(f'<text x="0" y="12" class="cap">{_escape(title)}</text>')
        top = 20
    keys = () if not standalone else MAP_STATES if decoded is not None else ("layout",)
    legend_parts, height = legend(height + top + 6, keys) if keys else ([], height + top)
    body = (f'<g transform="translate(0,{top})">' + "".join(parts) + "</g>") if top else "".join(parts)
    attrs = (f'class="vmctx" width="{WIDTH + 8}" height="{height + 4}" viewBox="-4 -4 {WIDTH + 8} {height + 4}" '
             'role="img"')
    if standalone:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" {attrs}><style>{STYLE}</style>{DEFS}'
                + "".join(head) + body + "".join(legend_parts) + "</svg>\n")
    return f"<svg {attrs}>" + "".join(head) + body + "".join(legend_parts) + "</svg>"
