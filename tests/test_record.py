"""`Record`, the frozen value the declaration is written in (in place of dataclasses, for start-up)."""

import subprocess
import sys

import pytest

from vmctx_emu import Component, ComponentValueError
from vmctx_emu.layouts.fields import Align, Header
from vmctx_emu.layouts.record import Record
from vmctx_emu.layouts.releases import LAYOUTS
from vmctx_emu.layouts.types import PTR, PtrUnits


class Point(Record):
    x: int
    y: int = 0


class Point3(Point):
    z: int = 0


def test_fields_by_position_or_keyword_with_defaults():
    assert Point(1).y == 0 and Point(1, 2) == Point(x=1, y=2) and Point3(1, 2, 3).z == 3
    assert Point3._fields == ("x", "y", "z")
    for bad in (lambda: Point(), lambda: Point(1, 2, 3), lambda: Point(1, x=2), lambda: Point(1, w=2)):
        with pytest.raises(TypeError):
            bad()


def test_frozen_compared_and_hashed_by_value_within_a_class():
    p = Point(1, 2)
    with pytest.raises(AttributeError, match="frozen"):
        p.x = 3
    with pytest.raises(AttributeError, match="frozen"):
        del p.y
    assert p == Point(1, 2) and hash(p) == hash(Point(1, 2)) and p != Point3(1, 2) and p != (1, 2)
    assert Align(1) != PtrUnits(1) and Align(PTR) == Align(PTR)
    assert repr(Header("store", 0)) == "Header(name='store', part=0)" and p.replace(y=5) == Point(1, 5)


def test_component_classes_keep_their_dataclass_behaviour():
    c = Component(3, num_runtime_memories=1)
    assert c.num_lowerings == 3 and c.counts()["num_runtime_memories"] == 1 and c == Component(num_lowerings=3,
                                                                                               num_runtime_memories=1)
    assert repr(Component(num_lowerings=1)).startswith("Component(num_lowerings=1, num_runtime_memories=0")
    with pytest.raises(AttributeError):
        c.num_lowerings = 4
    with pytest.raises(ComponentValueError, match="num_lowerings must be in"):
        Component(num_lowerings=-1)
    for layout in LAYOUTS:
        assert layout.component_class._fields == layout.count_names
        assert hash(layout.component()) == hash(layout.component())


def test_the_cli_start_up_imports_no_dataclasses():
    """`dataclasses` (and the `inspect` it imports) was a third of every command's start-up."""
    code = "import sys, vmctx_emu.cli; sys.exit('dataclasses' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
