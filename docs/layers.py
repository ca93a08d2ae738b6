"""The package's layers drawn from its code: every module a box, every import of another module an arrow.

    python docs/layers.py            # writes docs/layers.svg, prints the summary
    python docs/layers.py --check    # exits 1 when docs/layers.svg is stale or an import points up

Layers are the design's order (declaration -> offsets -> memory/runtime ->
dumps/live -> describe -> front ends, the declaration's own vocabulary and
calculators below the release table); a module may import its own layer or
any below it. Imports inside functions (a command importing only what it
uses) are arrows too, drawn dashed. Nothing here imports the package: the
imports are read from its source with `ast`.
"""

import argparse
import ast
import sys
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "vmctx_emu"
OUT = ROOT / "docs" / "layers.svg"
# Modules built from C (native/build_native.py), not found as .py files.
EXTENSIONS = ("_native",)

# (layer name, module name prefixes), bottom first; the longest matching prefix places a module. The
# declaration is written in the vocabulary of `layouts/`; the calculators derive counts and offsets from any
# declaration they are given; `releases.py` declares every release, each with its calculators.
LAYERS = (
    ("foundation", ("errors", "constants", "lazy", "checks")),
    ("vocabulary", ("layouts",)),
    ("calculators", ("layouts.component", "layouts.offsets")),
    ("declarations", ("layouts.releases", "layouts.cmirror", "layouts.store_context", "layouts.core_offsets")),
    ("memory and runtime", ("memory", "runtime", "_native")),
    ("dumps and live targets", ("dumps", "live")),
    ("describe", ("describe",)),
    ("front ends", ("cli", "gdb", "gdb_script", "lldb", "lldb_script", "debugger_script", "pytest_plugin", "demo",
                    "capture", "__main__", "")),
)

BOX_H, ROW_GAP, WRAP_GAP, COL_GAP, CHAR_W, PAD, MARGIN, LABEL_W, ROW_WIDTH = 22, 70, 30, 10, 7, 8, 10, 170, 1300


def modules(root=ROOT):
    """Module name ("live.scanner"; "" for the package itself) -> path, for every module of the package."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root / PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found | {name: None for name in EXTENSIONS}


def _resolve(name, known):
    """The known module `name` names, or the package holding it ("a.b.c" -> "a.b" when c is a name in it)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name if name in known else ""


def imports(known):
    """(importer, imported, lazy) for every import of one package module by another; lazy: inside a function."""
    edges = set()
    for name, path in known.items():
        if path is None:
            continue
        tree = ast.parse(path.read_text(), str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".") if package else []
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    prefix = ".".join(base + ([node.module] if node.module else []))
                elif node.module and node.module.split(".")[0] == PACKAGE:
                    prefix = node.module.partition(".")[2]
                else:
                    continue
                for alias in node.names:
                    full = f"{prefix}.{alias.name}".strip(".")
                    targets.append(full if full in known else _resolve(prefix, known))
            elif isinstance(node, ast.Import):
                targets = [_resolve(a.name.partition(".")[2], known) for a in node.names
                           if a.name.split(".")[0] == PACKAGE]
            for target in targets:
                if target != name:
                    edges.add((name, target, id(node) not in top_level and not _guarded(tree, node)))
    # An import made both at module level and in a function is a plain arrow.
    plain = {(a, b) for a, b, lazy in edges if not lazy}
    return sorted((a, b, lazy) for a, b, lazy in edges if not lazy or (a, b) not in plain)


def _guarded(tree, node):
    """Whether `node` sits in a module-level `if`/`try` (still imported at load), not in a function."""
    for top in tree.body:
        if isinstance(top, (ast.If, ast.Try)) and any(child is node for child in ast.walk(top)):
            return True
    return False


def layer_of(module):
    best, level = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".") or prefix == "" == module) and len(prefix) > best:
                best, level = len(prefix), i
    return level


def summary(known, edges):
    """The facts the picture shows, as the numbers the README and the notes quote."""
    unplaced = sorted(m for m in known if layer_of(m) is None)
    upward = [(a, b) for a, b, _ in edges if a not in unplaced and b not in unplaced and layer_of(a) < layer_of(b)]
    used = {layer_of(m) for m in known} - {None}
    lines = sum(len(p.read_text().splitlines()) for p in known.values() if p is not None)
    return {"modules": len(known), "layers": len(used), "arrows": len(edges),
            "lazy": sum(lazy for _, _, lazy in edges), "upward": upward, "lines": lines,
            "unplaced": unplaced}


def svg(known, edges):
    rows = {}
    for module in sorted(known):
        level = layer_of(module)
        rows.setdefault(len(LAYERS) if level is None else level, []).append(module)
    boxes, out, y, width = {}, [], MARGIN, 0
    for level in sorted(rows, reverse=True):
        name = LAYERS[level][0] if level < len(LAYERS) else "in no layer"
        out.append(f'<text x="{MARGIN}" y="{y + 15}" class="layer">{escape(name)}</text>')
        x = MARGIN + LABEL_W
        for module in rows[level]:
            label = (module or PACKAGE).replace(".", "/")
            w = len(label) * CHAR_W + 2 * PAD
            if x + w > ROW_WIDTH and x > MARGIN + LABEL_W:  # a long layer goes on in a second row
                x, y = MARGIN + LABEL_W, y + BOX_H + WRAP_GAP
            boxes[module] = (x, y, w)
            out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{BOX_H}" rx="3"/>'
                       f'<text x="{x + PAD}" y="{y + 15}">{escape(label)}</text>')
            x += w + COL_GAP
            width = max(width, x)
        y += BOX_H + ROW_GAP
    width, height = width + MARGIN, y - ROW_GAP + MARGIN
    arrows = []
    for a, b, lazy in edges:
        (xa, ya, wa), (xb, yb, wb) = boxes[a], boxes[b]
        up = (layer_of(a) or 0) < (layer_of(b) or 0)
        y1, y2 = (ya, yb + BOX_H) if up else (ya + BOX_H, yb) if ya != yb else (ya + BOX_H, yb + BOX_H)
        kind = "up" if up else "lazy" if lazy else "import"
        arrows.append(f'<line x1="{xa + wa / 2:.0f}" y1="{y1}" x2="{xb + wb / 2:.0f}" y2="{y2}" class="{kind}" '
                      f'marker-end="url(#head)"><title>{escape(a or PACKAGE)} imports {escape(b or PACKAGE)}'
                      f'{" (in a function)" if lazy else ""}</title></line>')
    style = ("rect{fill:#f4f6fb;stroke:#334}text{font:12px monospace;fill:#112}.layer{font-weight:bold}"
             "line{stroke:#557;stroke-opacity:.45}.lazy{stroke-dasharray:4 3}.up{stroke:#c00;stroke-opacity:1}")
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f"<style>{style}</style>",
        '<defs><marker id="head" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="6" markerHeight="6" '
        'orient="auto"><path d="M0,0L8,4L0,8z" fill="#557"/></marker></defs>',
        *arrows, *out, "</svg>", ""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when docs/layers.svg is stale or an arrow points up")
    args = parser.parse_args(argv)
    known = modules()
    edges = imports(known)
    facts = summary(known, edges)
    picture = svg(known, edges)
    print(f"{facts['modules']} modules ({facts['lines']} lines) on {facts['layers']} layers, {facts['arrows']} "
          f"import arrows ({facts['lazy']} in functions), {len(facts['upward'])} pointing up")
    for a, b in facts["upward"]:
        print(f"  up: {a or PACKAGE} -> {b or PACKAGE}")
    if facts["unplaced"]:
        print(f"  in no layer: {', '.join(facts['unplaced'])}")
    if args.check:
        stale = not OUT.exists() or OUT.read_text() != picture
        if stale:
            print(f"{OUT.relative_to(ROOT)} is stale: run python docs/layers.py")
        return 1 if stale or facts["upward"] or facts["unplaced"] else 0
    OUT.write_text(picture)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
