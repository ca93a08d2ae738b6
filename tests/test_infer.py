"""`infer`, one engine for every release: the true shape is always a candidate, every candidate fits."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu import Component, OwnedComponentInstance, VMContextError
from vmctx_emu.dumps.decode import decode
from vmctx_emu.dumps.dump import DumpedContext
from vmctx_emu.dumps.infer import (RANKED, InferError, TooManyCandidatesError, consistent_layouts, infer,
                                   infer_releases)
from vmctx_emu.errors import ArgumentTypeError, ArgumentValueError
from vmctx_emu.layouts.releases import LAYOUTS, SEED

targets = st.sampled_from([(4, "little"), (4, "big"), (8, "little"), (8, "big")])


def header_for(layout):
    return {n: ((0x1110, 0x2220) if n == "store" else 0x3330 + 16 * k) for k, n in enumerate(layout.header_names())}


def argument(layout, arg, n):
    """A plausible value for one setter argument: a tuple when it fills several sub-fields."""
    etype = layout.field(arg.field).elem_type
    values = [40 + n if etype.sub(s).kind != "ptr" else 0x3000_0000 + 0x40 * n + 0x10 * k
              for k, s in enumerate(arg.subs)]
    return values[0] if len(values) == 1 else tuple(values)


def instance(layout, counts, ptr, order, debug=True):
    return OwnedComponentInstance(counts, ptr=ptr, byte_order=order, wasmtime=layout.first or "seed",
                                  debug_assertions=debug, header=header_for(layout))


def set_some(inst, layout, draw):
    """Run each setter on a random subset of its elements, as a runtime mid-instantiation would."""
    for spec in layout.setters:
        region = inst.offsets.region(spec.fields[0])
        for i in range(region.count):
            if draw(st.booleans()):
                try:
                    getattr(inst, spec.name)(i, *(argument(layout, a, i) for a in spec.args))
                except VMContextError:  # v32-v38 debug builds cannot set a table, as in Rust
                    pass


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(LAYOUTS), targets, st.booleans(), st.data())
def test_true_shape_is_a_candidate_and_candidates_fit(layout, target, debug, data):
    ptr, order = target
    counts = {n: data.draw(st.integers(0, 2), label=n) for n in layout.count_names}
    inst = instance(layout, counts, ptr, order, debug)
    if data.draw(st.booleans(), label="set some"):
        set_some(inst, layout, data.draw)
    raw = inst.to_bytes()
    result = infer(raw, ptr, order, wasmtime=layout, address=inst.vmctx, debug_assertions=debug)
    shapes = result.shapes()
    assert result.count >= 1 and len(shapes) == min(result.count, RANKED)
    assert len(set(shapes)) == len(shapes)
    if result.count <= RANKED:
        assert inst.offsets.component in shapes
    for shape in shapes[:12]:
        assert layout.offsets(ptr, **shape.counts()).size_of_vmctx() == len(raw)
        ctx = DumpedContext(raw, shape, ptr, order, address=inst.vmctx, wasmtime=layout.first or "seed",
                            debug_assertions=debug)
        assert decode(ctx).anomalies == [], shape
    costs = [c.cost for c in result.candidates]
    assert costs == sorted(costs)


def test_known_counts_narrow_to_one():
    inst = instance(SEED, {"num_lowerings": 3, "num_runtime_memories": 1, "num_runtime_reallocs": 1,
                           "num_runtime_post_returns": 1, "num_runtime_component_instances": 2,
                           "num_always_trap": 1}, 8, "little")
    everything = infer(inst.to_bytes(), 8)
    assert everything.count == 125
    known = {"num_lowerings": 3, "num_always_trap": 1, "num_runtime_memories": 1, "num_runtime_reallocs": 1}
    narrowed = infer(inst.to_bytes(), 8, counts=known)
    assert narrowed.count == 1 and narrowed.shapes() == [inst.offsets.component]


def test_flags_only_is_unambiguous():
    inst = OwnedComponentInstance(Component(num_runtime_component_instances=7), (1, 2), ptr=8)
    result = infer(inst.to_bytes(), 8, "little")
    assert result.count == 1 and result.shapes() == [inst.offsets.component]


def test_pointer_split_is_counted_combinatorially():
    shape = Component(num_runtime_memories=2, num_runtime_reallocs=1, num_runtime_post_returns=1)
    inst = OwnedComponentInstance(shape, (1, 2), ptr=8)
    # 4 interchangeable poisoned pointer words: C(4 + 2, 2) = 15 splits (no lowering: it needs an anyfunc).
    assert infer(inst.to_bytes(), 8, "little").count == 15


def test_set_arrays_are_ranked_by_their_boundaries():
    """Func refs, lowerings and pointers set from different sources: their boundaries rank first.

    Pointer arrays of one kind (memories, reallocs) cannot be told apart from
    a dump alone: on a tie the earlier array takes the elements.
    """
    layout = LAYOUTS[-1]
    counts = {"num_trampolines": 3, "num_lowerings": 2, "num_runtime_memories": 2, "num_runtime_reallocs": 2,
              "num_runtime_component_instances": 1}
    inst = instance(layout, counts, 8, "little")
    for i in range(3):
        inst.set_trampoline(i, 0x7F00_0000_1000 + 0x40 * i, 0x7F00_0000_2000 + 0x40 * i, 5 + i)
    for i in range(2):
        inst.set_lowering(i, (0x7E00_0000_0100, 0x5500_0000_0000 + 0x20 * i))
        inst.set_runtime_memory(i, 0x5600_0000_0000 + 0x100 * i)
        inst.set_runtime_realloc(i, 0x5700_0000_0000 + 0x30 * i)
    result = infer(inst.to_bytes(), 8, wasmtime="50", address=inst.vmctx)
    assert result.count == 3164 and inst.offsets.component in result.shapes()
    top = result.shapes()[0]
    assert (top.num_trampolines, top.num_lowerings, top.num_runtime_memories) == (3, 2, 4)
    assert [c.cost for c in result.candidates] == sorted(c.cost for c in result.candidates)


def test_a_shared_count_with_many_values_asks_for_it():
    """Seed: 20,000 set anyfuncs could be any split of lowering anyfuncs and always-trap ones."""
    inst = OwnedComponentInstance(Component(num_always_trap=20_000), (1, 2), ptr=8)
    for i in range(20_000):
        inst.set_always_trap(i, 0x9000 + i, i)
    with pytest.raises(TooManyCandidatesError, match=r"num_lowerings could be any of 0\.\.\d+ ") as e:
        infer(inst.to_bytes(), 8)
    # The library names the Python argument; the CLI its option (tests/test_cli_dumps.py).
    assert e.value.count_name == "num_lowerings" and e.value.asks and "--" not in str(e.value)
    assert str(e.value) == f"{e.value.reason}; give it (counts={{'num_lowerings': N}})"
    result = infer(inst.to_bytes(), 8, counts={"num_lowerings": 0})
    assert result.shapes()[0] == inst.offsets.component
    # With the address known, only vmctx sub-fields may hold it: no lowering can start on a vmctx word.
    result = infer(inst.to_bytes(), 8, address=inst.vmctx)
    assert result.count == 1 and result.shapes() == [inst.offsets.component]


def test_a_megabyte_of_identical_words_answers_quickly():
    """The dump that took the regex engine minutes: a valid header and then one word over and over."""
    inst = instance(LAYOUTS[-1], {"num_runtime_component_instances": 1}, 8, "little")
    raw = inst.to_bytes() + (0x5555_0000_1000).to_bytes(8, "little") * (1 << 17)
    start = time.perf_counter()
    results = infer_releases(raw, 8, "little", layouts=[LAYOUTS[-1]], counts={"num_lowerings": 0})
    assert time.perf_counter() - start < 10  # the benchmark has the real figure; this guards a hang
    assert results and results[0].count > RANKED and len(results[0].candidates) == RANKED


def test_release_dumps_are_read_without_poison():
    layout = LAYOUTS[-1]
    inst = instance(layout, {"num_trampolines": 2, "num_runtime_component_instances": 1}, 8, "little", debug=False)
    inst.set_trampoline(0, 0x1000, 0x2000, 3)
    as_debug = infer(inst.to_bytes(), 8, wasmtime="50", address=inst.vmctx, limit=10**6)
    assert as_debug.ranked_all and inst.offsets.component not in as_debug.shapes()  # unset would be poisoned
    result = infer(inst.to_bytes(), 8, wasmtime="50", address=inst.vmctx, debug_assertions=False, limit=10**4)
    assert result.ranked_all and inst.offsets.component in result.shapes()


def test_consistent_layouts_names_the_release_of_the_dump():
    inst = instance(LAYOUTS[-1], {"num_trampolines": 2, "num_runtime_component_instances": 1}, 8, "little")
    for i in range(2):
        inst.set_trampoline(i, 0x1000 + i, 0x2000 + i, 3)
    fits = consistent_layouts(inst.to_bytes(), 8, "little")
    assert LAYOUTS[-1] in fits and not {"L1", "L2", "L3", "L4", "L5"} & {f.id for f in fits}
    newest = infer_releases(inst.to_bytes(), 8, "little", address=inst.vmctx)[-1]
    assert newest.layout is LAYOUTS[-1] and newest.shapes()[0] == inst.offsets.component


@pytest.mark.parametrize("data, error, needle", [
    (b"comp", None, "shorter than its smallest context"),
    (b"\0" * 64, InferError, "all zeros"),
    (b"co", InferError, "too short to hold the magic"),
])
def test_unexplainable_dumps(data, error, needle):
    if error is None:
        result = infer(data, 8, "little")
        assert result.count == 0 and needle in result.notes[0]
    else:
        with pytest.raises(error, match=needle):
            infer(data, 8, "little")


def test_pointer_sizes_infer_cannot_read():
    with pytest.raises(InferError, match=r"pointer sizes \(4, 8\), got 2"):
        infer(b"comp" + b"\0" * 60, 2, "little")


def _with_flags(instances, tail_word, size, ptr=8):
    """A seed header with `instances` flag globals, then `tail_word` repeated up to `size` bytes."""
    inst = OwnedComponentInstance(Component(num_runtime_component_instances=instances), (0x1110, 0x2220), ptr=ptr)
    head = inst.to_bytes()
    return head + tail_word.to_bytes(ptr, "little") * ((size - len(head)) // ptr)


def _spent(monkeypatch):
    """The work units every `infer` call charges, summed."""
    import vmctx_emu.dumps.infer as module

    spent = [0]
    charge = module._Budget.charge

    def counting(self, units, layout, doing):
        spent[0] += units
        charge(self, units, layout, doing)

    monkeypatch.setattr(module._Budget, "charge", counting)
    return spent


ADVERSARIAL = {
    # The regex engine's worst case: a valid header, then one non-zero word 80 times (27 s at 680 bytes).
    "680 bytes of one word": ((0, 0x1234, 680), True),
    # 64 flag globals and poison: every split counted in exact Python ints (70 s at 1 MB).
    "64 instances, 256 KB of poison": ((64, 0xDEADDEADBEEFBEEF, 1 << 18), False),
    # Set func-ref triplets: every (func-ref count, lowering count) pair (129 s and 11.5 GB at 1 MB).
    "1 MB of one word": ((1, 0x5555_0000_1000, 1 << 20), False),
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_infer_work_is_bounded_on_adversarial_dumps(monkeypatch, name):
    """Any dump up to 1 MB answers or stops with "too many candidates" within the work budget."""
    from vmctx_emu.dumps.infer import WORK_BUDGET

    shape, answers = ADVERSARIAL[name]
    data = _with_flags(*shape)
    spent = _spent(monkeypatch)
    start = time.perf_counter()
    try:
        results = infer_releases(data, 8, "little")
    except TooManyCandidatesError as e:
        assert not answers and str(e).startswith("too many candidates: ")
    else:
        assert answers and results
    assert time.perf_counter() - start < 10  # a guard against hangs; the budget is the real bound
    assert spent[0] <= WORK_BUDGET + 4 * len(data)


def test_a_huge_limit_does_not_make_infer_spend_past_its_bound(tmp_path, capsys):
    """`infer --limit 4294967295` on a 296-byte dump with 268,413 shapes per release (issue 20, class 16): refused
    at once, as listing that many would spend the budget (before: 4-17 s, ranking charged at half its cost)."""
    from vmctx_emu.cli import main

    layout = next(l for l in LAYOUTS if l.id == "L9")
    path = tmp_path / "ctx.bin"
    path.write_bytes(instance(layout, {"num_runtime_memories": 33}, 8, "little").to_bytes())
    assert path.stat().st_size == 296
    start = time.perf_counter()
    status = main(["infer", str(path), "--limit", "4294967295"])
    assert time.perf_counter() - start <= 2
    err = capsys.readouterr().err
    assert status == 2 and "listing 268,413 of its 268,413 shapes" in err
    assert "list fewer (--limit N, not 4,294,967,295)" in err and err.count("\n") == 1


def test_infer_refuses_a_dump_larger_than_it_searches():
    from vmctx_emu.dumps.infer import INFER_MAX_BYTES

    data = _with_flags(0, 0, INFER_MAX_BYTES + 64)
    start = time.perf_counter()
    with pytest.raises(TooManyCandidatesError, match=f"more than infer searches \\({INFER_MAX_BYTES:,} bytes\\)"):
        infer_releases(data, 8, "little")
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("ptr, kwargs, error, needle", [
    (8, {"address": 1 << 64}, ArgumentValueError, "address must be an int in [0, 2**64) for pointer size 8"),
    (4, {"address": 1 << 32}, ArgumentValueError, "address must be an int in [0, 2**32) for pointer size 4"),
    (8, {"address": -5}, ArgumentValueError, "address must be an int in [0, 2**64)"),
    (8, {"address": "0x10"}, ArgumentTypeError, "address must be an int, got str"),
    (8, {"counts": 5}, ArgumentTypeError, "counts must be a mapping"),
    (8, {"counts": {"num_lowerings": "1"}}, ArgumentTypeError, "counts['num_lowerings'] must be an int"),
    (8, {"counts": {"num_lowerings": 1 << 32}}, ArgumentValueError, "counts['num_lowerings'] must be in [0, 2**32)"),
    (8, {"debug_assertions": "no"}, ArgumentTypeError, "debug_assertions must be a bool"),
])
@pytest.mark.parametrize("function", [infer, infer_releases])
def test_infer_arguments_checked_at_the_boundary(function, ptr, kwargs, error, needle):
    raw = OwnedComponentInstance(Component(), (1, 2), ptr=ptr).to_bytes()
    with pytest.raises(error) as e:
        function(raw, ptr, **kwargs)
    assert needle in str(e.value)


# shape_standing: where a claimed shape (a sidecar's) stands among infer's answers (issue 19) ------------

def _standing_case():
    from vmctx_emu import OwnedComponentInstance
    from vmctx_emu.layouts.releases import SEED

    with OwnedComponentInstance({"num_lowerings": 2, "num_runtime_component_instances": 1}, (1, 2), ptr=4,
                                byte_order="big", address=0x7F12_3450) as inst:
        return inst.to_bytes(), SEED


@pytest.mark.parametrize("claim, known, limit, expected", [
    ({"num_lowerings": 2, "num_runtime_component_instances": 1}, None, 1000, "rank"),   # listed: its rank
    ({"num_lowerings": 2, "num_runtime_component_instances": 1}, None, 0, 0),           # fits, not listed
    ({"num_lowerings": 2, "num_runtime_component_instances": 1},
     {"num_lowerings": 2, "num_runtime_component_instances": 1}, 5, 1),                  # the only one left
    ({"num_lowerings": 2, "num_runtime_component_instances": 1}, {"num_lowerings": 1}, 1000, None),  # contradicted
    ({"num_lowerings": 7, "num_runtime_component_instances": 1}, None, 1000, None),     # does not fit
    ({"num_lowerings": 7, "num_runtime_component_instances": 1}, None, 0, None),        # checked past the limit too
])
def test_shape_standing(claim, known, limit, expected):
    from vmctx_emu.dumps.infer import infer_releases, shape_standing

    data, seed = _standing_case()
    results = infer_releases(data, 4, "big", layouts=[seed], counts=known, limit=limit)
    got = shape_standing(results, data, 4, "big", layout=seed, counts=claim, known=known)
    if expected == "rank":
        shape = tuple(dict(dict.fromkeys(seed.count_names, 0), **claim).items())
        assert got == [c.counts for c in results[0].candidates].index(shape) + 1 and got >= 1
    else:
        assert got == expected
