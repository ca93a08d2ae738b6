"""Initialization against real Wasmtime 50: constants where the runtime writes constants, pointers where
it writes pointers, for every context `scan` finds after instantiating real components in this process."""

import platform
import sys
from importlib.metadata import version

import numpy as np
import pytest

wasmtime = pytest.importorskip("wasmtime")
if not version("wasmtime").startswith("50."):
    pytest.skip(f"needs wasmtime 50.x, found {version('wasmtime')}", allow_module_level=True)
if sys.platform != "linux" or platform.machine() != "x86_64":
    pytest.skip("reads /proc/self/mem", allow_module_level=True)

from vmctx_emu.live.target import open_source  # noqa: E402
from vmctx_emu.pytest_plugin import assert_same_context  # noqa: E402

from test_real_wasmtime import LOWER_LIFT, MEMORY_REALLOC_POST_RETURN, NESTED_FUSED_ADAPTER, RESOURCE_DTOR  # noqa: E402

SHAPES = {
    "lower_lift": (LOWER_LIFT, {"add": lambda x: x}),
    "memory_realloc_post_return": (MEMORY_REALLOC_POST_RETURN, {"len": len, "peek": lambda s: None}),
    "resource_dtor": (RESOURCE_DTOR, {"note": lambda rep: None}),
    "nested_fused_adapter": (NESTED_FUSED_ADAPTER, {"log": lambda x: None}),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_pointers_where_the_runtime_writes_pointers(shape, wasmtime_context, vmctx_instance):
    ctx = wasmtime_context(*SHAPES[shape])
    decoded = ctx.decoded
    with open_source(None) as src:
        maps = src.mappings()
    starts = np.array([m.start for m in maps], np.uint64)
    ends = np.array([m.end for m in maps], np.uint64)

    def mapped(values):
        i = np.searchsorted(starts, values, side="right") - 1
        return (i >= 0) & (values < ends[np.maximum(i, 0)])

    kinds = np.array([decoded.columns[c].kind for c in decoded.records["column"]])
    values = decoded.records["value"]
    # Every set pointer field holds an address of this process ...
    pointer = (kinds == "ptr") & (values != 0)
    assert mapped(values[pointer]).all()
    # ... and no other field does: each word that is an address lies in a pointer record.
    raw = np.frombuffer(bytes(decoded.ctx.memory), "<u8")
    words_at = np.flatnonzero(mapped(raw)) * 8
    pointer_offsets = set(decoded.records["offset"][kinds == "ptr"].tolist())
    assert set(words_at.tolist()) <= pointer_offsets
    # The emulator's release build of the same shape: equal everywhere the runtime writes a
    # constant (magic, flags, padding, fields no setter touches); the header and what the
    # setters write (pointers, type indices) are the process's own values.
    ours = vmctx_instance(ctx.counts, wasmtime=ctx.wasmtime)
    written = {name for spec in ctx.layout.setters for name in spec.fields}
    regions = np.array([decoded.columns[c].region for c in decoded.records["column"]])
    varying = (kinds == "ptr") | np.isin(regions, list(written))
    assert_same_context(ours, ctx, ignore=[decoded.label(r) for r in decoded.records[varying]])
