"""docs/layers.svg is the package as it is: every import points to its own layer or one below, and the
picture was redrawn after the last change of an import (`python docs/layers.py`)."""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def layers():
    spec = importlib.util.spec_from_file_location("layers", DOCS / "layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_module_has_a_layer_and_no_import_points_up():
    doc = layers()
    known = doc.modules()
    facts = doc.summary(known, doc.imports(known))
    assert facts["unplaced"] == [] and facts["upward"] == [], facts
    assert facts["modules"] >= 60 and facts["arrows"] >= 150  # the walk found the package


def test_the_picture_is_current():
    doc = layers()
    known = doc.modules()
    assert (DOCS / "layers.svg").read_text() == doc.svg(known, doc.imports(known)), \
        "docs/layers.svg is stale: run python docs/layers.py"


def test_an_upward_import_is_found(tmp_path):
    """The checker itself: a module of the memory layer importing a dumps module is reported."""
    doc = layers()
    package = tmp_path / doc.PACKAGE
    for name, text in {"__init__.py": "", "errors.py": "", "memory/__init__.py": "",
                       "memory/instance.py": "from ..dumps.dump import write_dump\nfrom ..errors import X\n",
                       "dumps/__init__.py": "", "dumps/dump.py": "def write_dump(): pass\n"}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    known = doc.modules(tmp_path)
    edges = doc.imports(known)
    assert ("memory.instance", "dumps.dump", False) in edges and ("memory.instance", "errors", False) in edges
    assert doc.summary(known, edges)["upward"] == [("memory.instance", "dumps.dump")]


def test_the_readme_module_map_is_the_tree():
    """Every module under vmctx_emu/ is named in its folder's row of the README's table, and every file
    a row names exists (`__init__.py` and `__main__.py` aside)."""
    import re

    root = DOCS.parent
    rows = {}
    for line in (root / "README.md").read_text().splitlines():
        found = re.match(r"\| `(vmctx_emu/(?:\w+/)?)` \| (.*) \|$", line)
        if found:
            rows[found.group(1)] = set(re.findall(r"`(\w+\.py)`", found.group(2)))
    tree = {}
    for path in (root / "vmctx_emu").rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            tree.setdefault(str(path.parent.relative_to(root)) + "/", set()).add(path.name)
    assert rows.keys() == tree.keys()
    for folder in tree:
        assert rows[folder] == tree[folder], (folder, "missing:", tree[folder] - rows[folder],
                                              "gone:", rows[folder] - tree[folder])
