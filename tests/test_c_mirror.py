"""An independent witness: the C compiler lays out generated structs for a few hundred shapes.

For each shape a struct with fixed-size arrays is generated from the layout
declaration (`vmctx_emu.layouts.cmirror`), compiled once through cffi, and every
field's `offsetof` (plus an end marker) is compared with the Python offsets.
"""

import random

import pytest
from conftest import compile_c

from vmctx_emu import Component, HostPtr, VMComponentOffsets
from vmctx_emu.layouts.cmirror import context_fields, context_struct, element_typedef, element_typedefs
from vmctx_emu.layouts.releases import SEED

COUNT_NAMES = SEED.count_names
SEED_FIELDS = SEED.fields


FIELDS = [f.name for f in context_fields(SEED_FIELDS)]
ETYPES = element_typedefs(SEED_FIELDS)
NUM_SHAPES = 300


def _shapes():
    rnd = random.Random(20221124)
    shapes = [Component(), Component(**{n: 1 for n in COUNT_NAMES})]
    shapes += [Component(**{n: (1 if n == one else 0) for n in COUNT_NAMES}) for one in COUNT_NAMES]
    while len(shapes) < NUM_SHAPES:
        shapes.append(Component(**{n: rnd.choice([0, 1, 2, 3, rnd.randrange(0, 5000)]) for n in COUNT_NAMES}))
    return shapes


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    shapes = _shapes()
    offsets = [VMComponentOffsets(HostPtr, c) for c in shapes]
    source = ["#include <stddef.h>", "#include <stdint.h>"]
    source += [element_typedef(t) for t in ETYPES]
    rows = []
    for i, o in enumerate(offsets):
        source.append(context_struct(o, f"shape{i}"))
        cells = [f"offsetof(struct shape{i}, {name})" for name in FIELDS]
        cells.append(f"offsetof(struct shape{i}, end_marker)")
        rows.append("{" + ", ".join(cells) + "}")
    width = len(FIELDS) + 1
    source.append(f"const size_t field_offsets[{len(shapes)}][{width}] = {{\n" + ",\n".join(rows) + "};")
    elem = []
    for t in ETYPES:
        elem.append(f"sizeof({t.c_name})")
        elem += [f"offsetof({t.c_name}, {s.name})" for s in t.subfields]
    source.append(f"const size_t element_facts[{len(elem)}] = {{{', '.join(elem)}}};")

    lib = compile_c("_vmctx_c_mirror", "\n".join(source),
                    [f"extern const size_t field_offsets[{len(shapes)}][{width}];",
                     f"extern const size_t element_facts[{len(elem)}];"],
                    tmp_path_factory.mktemp("cmirror"))
    return offsets, lib


@pytest.mark.parametrize("column", range(len(FIELDS) + 1), ids=FIELDS + ["end_marker"])
def test_offsetof_matches_python(compiled, column):
    offsets, lib = compiled
    assert len(offsets) == NUM_SHAPES
    for i, o in enumerate(offsets):
        expected = o.size_of_vmctx() if column == len(FIELDS) else o.region(FIELDS[column]).offset
        assert lib.field_offsets[i][column] == expected, (o, FIELDS[column] if column < len(FIELDS) else "end")


@pytest.mark.parametrize("etype", ETYPES, ids=lambda t: t.c_name)
def test_element_size_and_subfield_offsets_match(compiled, etype):
    _, lib = compiled
    facts = iter(lib.element_facts)
    for t in ETYPES:
        size = next(facts)
        subs = [next(facts) for _ in t.subfields]
        if t is etype:
            assert size == t.size_for(HostPtr)
            assert subs == [t.offset_of(s.name, HostPtr) for s in t.subfields]
