"""`scan --watch`: what changed between two scans of one target, one line per change.

A context is known by its address; between reads it can appear, be freed (or vanish), change
release or shape, change an instance's flag word (said in words, as the summary says it), or its
store can enter or leave wasm.
"""

import time

from .summary import context_summary

__all__ = ["snapshot", "changes"]


def snapshot(result):
    """{address: (state, release, options, ((instance, word, state words), ...), store state)} of a scan."""
    seen = {}
    for ctx in result.decoded_contexts():
        summary = context_summary(ctx)
        if summary is None:
            seen[ctx.address] = (ctx.state, ctx.release or ctx.wasmtime, None, (), None)
            continue
        store = summary["store_context"] or {}
        seen[ctx.address] = (ctx.state, summary["release"], summary["options"],
                             tuple((i["index"], i["word"], f"{i['flags']} ({i['word']:#x}): {i['state']}")
                                   for i in summary["instances"]),
                             store.get("state"))
    return seen


def changes(before, after, when=None):
    """The lines saying how `after` differs from `before` (both `snapshot`s), each stamped with `when`."""
    stamp = time.strftime("%H:%M:%S", time.localtime(when)) if when is not None else ""
    lines = []

    def say(address, text):
        lines.append(f"{stamp} {address:#x}: {text}".lstrip())

    for address in sorted(set(before) | set(after)):
        old, new = before.get(address), after.get(address)
        if old is None:
            say(address, f"new context, {new[0]}, Wasmtime {new[1]}" + (f", {new[2]}" if new[2] else ""))
            continue
        if new is None:
            say(address, "gone (freed, or no longer found)")
            continue
        if old[0] != new[0]:
            say(address, f"{old[0]} -> {new[0]}")
        if old[1:3] != new[1:3]:
            say(address, f"now Wasmtime {new[1]}, {new[2]} (was {old[1]}, {old[2]})")
        was = {index: (word, words) for index, word, words in old[3]}
        for index, word, words in new[3]:
            if index in was and was[index][0] != word:
                say(address, f"instance {index}: {was[index][1]} -> {words}")
        if old[4] != new[4] and new[4] is not None:
            say(address, f"store: {old[4] or 'unknown'} -> {new[4]}")
    return lines
