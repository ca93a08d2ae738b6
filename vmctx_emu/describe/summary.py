"""A scanned context at a glance: its release, liveness, shape as the options that reproduce it, and each
component instance's flag word in words with what a call does now (`scan`'s default text; `summary` in JSON).

The words come from `runtime.protocols.flag_state`, the release's own protocol, so a v41 instance
waiting for `post_return` and a v50 one that can show no call in progress read differently.
"""

from collections import Counter

from ..dumps.store_context import IN_HOST_CALL, INSIDE_WASM, NOT_IN_WASM, UNKNOWN as STORE_UNKNOWN
from ..live.liveness import FREED, LIVE, UNKNOWN
from ..memory.flags import flag_names
from ..runtime.protocols import flag_state
from .options import count_option

__all__ = ["shape_options", "context_summary", "instance_runs", "summary_lines", "Palette", "MAX_RUNS"]

INSTANCES = "num_runtime_component_instances"
# Lines of instance states a summary shows; a context claiming millions of instances stays a screen.
MAX_RUNS = 32


class Palette:
    """ANSI colours for a terminal; `Palette(False)` writes plain text (pipes, files, `NO_COLOR`)."""

    _CODES = {"good": "32", "busy": "33", "bad": "31", "odd": "35", "dim": "2"}
    _STATES = {LIVE: "good", UNKNOWN: "busy", FREED: "bad"}
    _KEYS = {"at_rest": "good", "may_leave": "good", "in_call": "busy", "in_call_or_post_return": "busy",
             "post_return_pending": "bad", "cannot_leave": "bad", "trapped": "bad", "not_written": "odd"}
    _WASM = {NOT_IN_WASM: "good", INSIDE_WASM: "busy", IN_HOST_CALL: "busy", STORE_UNKNOWN: "odd"}

    def __init__(self, enabled):
        self.enabled = bool(enabled)

    def paint(self, tone, text):
        return f"\x1b[{self._CODES[tone]}m{text}\x1b[0m" if self.enabled and tone in self._CODES else text

    def state(self, state):
        return self.paint(self._STATES.get(state), state.upper())

    def flag(self, key, text):
        return self.paint(self._KEYS.get(key), text)

    def wasm(self, state, text):
        return self.paint(self._WASM.get(state), text)


def shape_options(ctx):
    """The CLI options that lay out this context again: `--wasmtime R --lowerings 3 ...` (non-zero counts)."""
    counts = " ".join(f"--{count_option(name)} {value}" for name, value in (ctx.counts or {}).items() if value)
    return f"--wasmtime {ctx.release or ctx.wasmtime}" + (f" {counts}" if counts else "")


def _in_wasm(ctx):
    """False when the store context says for sure no wasm runs on the store's thread; else None (not known)."""
    verdict = ctx.store_context.verdict if ctx.store_context is not None else None
    return False if verdict is not None and verdict.state == NOT_IN_WASM and verdict.sure else None


def _instances(ctx):
    decoded = ctx.decoded
    n = (ctx.counts or {}).get(INSTANCES, 0)
    release = ctx.release or ctx.wasmtime
    bits = ctx.layout.flag_bits
    in_wasm = _in_wasm(ctx)
    found = []
    field = ctx.layout.flags_field()
    key = (field.name, field.elem_type.role_sub("flags").name)
    words = decoded.values[key].tolist() if n else []  # the i32s as their bits, as decode read them
    for i, word in enumerate(words[:n]):
        word &= 0xFFFF_FFFF
        state = flag_state(release, word, in_wasm)
        found.append({"index": i, "word": word, "flags": flag_names(word, bits), "state_key": state.key,
                      "state": state.state, "consequence": state.consequence})
    return found


def _store(ctx):
    """The store context as plain data: where, the verdict, each field's value."""
    store = ctx.store_context
    if store is None:
        return None if ctx.store_note is None else {"note": ctx.store_note}
    v = store.verdict
    return {"address": f"{store.address:#x}", "struct": store.layout.rust_struct, "state": v.state, "sure": v.sure, "why": v.why, "evidence": list(v.evidence),
            "fields": {f.name: f.value for f in store.fields}}


def context_summary(ctx):
    """The summary of a decoded `LiveContext` as plain data (`summary` in `scan --json`); None when not decoded."""
    if ctx.decoded is None:
        return None
    kinds = Counter(a.kind for a in ctx.decoded.anomalies)
    return {"release": ctx.release or ctx.wasmtime, "layout": ctx.layout.id, "options": shape_options(ctx),
            "instances": _instances(ctx), "store_context": _store(ctx), "anomalies": dict(sorted(kinds.items()))}


def instance_runs(instances):
    """Consecutive instances in one state, as (first, last, instance)."""
    runs = []
    for inst in instances:
        if runs and (runs[-1][2]["word"], runs[-1][2]["state_key"]) == (inst["word"], inst["state_key"]):
            runs[-1][1] = inst["index"]
        else:
            runs.append([inst["index"], inst["index"], inst])
    return runs


def summary_lines(ctx, palette=Palette(False)):
    """The summary of one `LiveContext` as text lines (no newlines): what `scan` prints without `--records`."""
    layout = f"{ctx.layout.id} ({ctx.layout.range_text})"
    lines = [f"VMComponentContext at {ctx.address:#x}: {palette.state(ctx.state)}, Wasmtime "
             f"{ctx.release or ctx.wasmtime or 'unknown'}, layout {layout}"]
    if ctx.state != LIVE and ctx.liveness is not None:
        lines += [f"  {line}" for line in ctx.liveness.evidence]
    summary = context_summary(ctx)
    if summary is None and ctx.counts is not None:  # a shape known but not read (its notes say why)
        lines.append(f"  shape: {shape_options(ctx)}, not decoded")
        lines.append(f"    from {ctx.shape_from}")
    elif summary is None:
        lines.append("  shape: unknown, so not decoded" + (f" ({ctx.shape_from})" if ctx.shape_from else ""))
    else:
        lines.append(f"  shape: {summary['options']}")
        lines.append(f"    from {ctx.shape_from}")
        if not summary["instances"]:
            lines.append("  no component instances")
        runs = instance_runs(summary["instances"])
        for first, last, inst in runs[:MAX_RUNS]:
            which = f"instance {first}" if first == last else f"instances {first}-{last}"
            lines.append(f"  {which}: {inst['flags']} ({inst['word']:#x}): "
                         + palette.flag(inst["state_key"], inst["state"]))
            lines.append(f"    {inst['consequence']}")
        if len(runs) > MAX_RUNS:
            rest = sum(last - first + 1 for first, last, _ in runs[MAX_RUNS:])
            lines.append(f"  ... {rest:,} more instances in {len(runs) - MAX_RUNS:,} more runs of one state "
                         "(--records or --json lists every flag word)")
        store = summary["store_context"]
        if store is not None and "note" in store:
            lines.append(f"  {store['note']}")
        elif store is not None:
            lines.append(f"  {store['struct']} {store['address']}: " + palette.wasm(store["state"], store["state"])
                         + ("" if store["sure"] else " (not sure)") + f": {store['why']}")
        kinds = summary["anomalies"]
        lines.append("  anomalies: " + (", ".join(f"{kind} x{n}" for kind, n in kinds.items()) + " (--records "
                                        "lists them)" if kinds else "none"))
    lines += [f"  note: {note}" for note in ctx.notes]
    return lines
