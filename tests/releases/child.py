"""A real Wasmtime to scan, run inside one release's venv: `python child.py [--seconds N]`.

Instantiates components of several shapes in the installed `wasmtime` wheel, each
in its own Store unless said otherwise, prints one line

    ready {"pid": ..., "wheel": ..., "instances": N, "shapes": {...}, "skipped": {...}, ...}

on stdout and sleeps until killed (or its parent dies, or --seconds pass).
`instances` is the number of top-level instantiations (one component context
each; nested component instances live in their parent's context).

Meanwhile (39.0.0 on, `report["flag_shapes"]`) it answers one request per line
on stdin, `flags {"lower_lift": {"flags_at": ADDRESS, "instances": N}, ...}`
(the address of the shape's first flag word, found by the parent's scan), by
calling the shape's export and reading the N flag words (4 bytes each, 16 apart,
through `os.pread` on /proc/self/mem, read-only) at each moment of the sequence
(`flag_sequence`), then printing one line `flags {"lower_lift": {...}, ...}`.
The sequence ends with every flag word as it was at rest.

wasmtime-py has a Python component API from 39.0.0 on; before that (33.0.0-38.x)
the component C API is driven through ctypes on the wheel's own library
(`wasmtime._ffi`). The C API of 33 has no host functions, so shapes that import
one are built without it there (or skipped), and 33-38 instantiate without
calling (the wheels' ctypes bindings leave `wasmtime_component_val_t` empty).
From 45.0.0 on (the C API's component-model-async switches) it also instantiates the async
shapes: context.get/set (unsafe intrinsics), a waitable set, every stream and future builtin,
the task builtins, a stackful lift, a fused async adapter, and, where that release's parser
takes them, `cancellable` waits (45-49) and an async lower of a host import (45); the others
are listed in `report["skipped"]` with the reason.
This script imports nothing but the standard library and `wasmtime`.
"""

import argparse
import ctypes
import json
import os
import select
import struct
import sys
import time
import traceback
import warnings

# The WAT below uses the older canonical-option syntax (`(memory $m)`, `(realloc (func $f))`
# on aliases) that every release's `wast` parses; newer ones want this switch for it.
os.environ["WAST_STRICT_COMPONENT_INDICES"] = "0"

from importlib.metadata import version  # noqa: E402

import wasmtime  # noqa: E402
from wasmtime import _ffi as ffi  # noqa: E402

WHEEL = version("wasmtime")
MAJOR = int(WHEEL.split(".")[0])
PY_COMPONENT_API = MAJOR >= 39
HOST_FUNCTIONS = PY_COMPONENT_API or hasattr(ffi, "wasmtime_component_linker_instance_add_func")
ASYNC_SWITCHES = ("wasmtime_config_wasm_component_model_async_set",
                  "wasmtime_config_wasm_component_model_more_async_builtins_set",
                  "wasmtime_config_wasm_component_model_async_stackful_set")
ASYNC = all(hasattr(ffi, switch) for switch in ASYNC_SWITCHES)  # from 45.0.0


# ----------------------------------------------------------------- components
# Each: WAT with and without host imports (None: the shape needs them), the host
# imports as name -> Python implementation, and a call to make through the Python API.

LOWER_LIFT = """
(component
  (import "add" (func $add (param "x" u32) (result u32)))
  (core func $add-lowered (canon lower (func $add)))
  (core module $m
    (import "host" "add" (func $add (param i32) (result i32)))
    (func (export "run") (param i32) (result i32)
      local.get 0 call $add i32.const 1 i32.add))
  (core instance $i (instantiate $m (with "host" (instance (export "add" (func $add-lowered))))))
  (func (export "run") (param "x" u32) (result u32) (canon lift (core func $i "run"))))
"""


def strings(host):
    """Two memories, a realloc, three post-returns; with `host`, two lowered imports taking strings."""
    imports = """
  (import "len" (func $len (param "s" string) (result u32)))
  (import "peek" (func $peek (param "s" string)))""" if host else ""
    lowered = """
  (core func $len-lowered (canon lower (func $len) (memory $libc-mem)))
  (core func $peek-lowered (canon lower (func $peek) (memory $scratch-mem)))""" if host else ""
    core_imports = """
    (import "host" "len" (func $len (param i32 i32) (result i32)))
    (import "host" "peek" (func $peek (param i32 i32)))""" if host else ""
    call = "local.get $ptr local.get $n call $len drop" if host else ""
    with_host = """
    (with "host" (instance (export "len" (func $len-lowered)) (export "peek" (func $peek-lowered))))""" if host else ""
    return f"""
(component{imports}
  (core module $libc
    (memory (export "mem") 1)
    (global $bump (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      global.get $bump
      global.get $bump local.get 3 i32.add global.set $bump))
  (core instance $libc (instantiate $libc))
  (core module $scratch (memory (export "mem") 1))
  (core instance $scratch (instantiate $scratch))
  (alias core export $libc "mem" (core memory $libc-mem))
  (alias core export $libc "realloc" (core func $libc-realloc))
  (alias core export $scratch "mem" (core memory $scratch-mem)){lowered}
  (core module $m
    (import "libc" "mem" (memory 1)){core_imports}
    (func (export "echo") (param $ptr i32) (param $n i32) (result i32)
      {call}
      i32.const 8 local.get $ptr i32.store
      i32.const 12 local.get $n i32.store
      i32.const 8)
    (func (export "post-a") (param i32))
    (func (export "post-b") (param i32))
    (func (export "post-c") (param i32)))
  (core instance $i (instantiate $m
    (with "libc" (instance $libc)){with_host}))
  (alias core export $i "post-a" (core func $post-a))
  (alias core export $i "post-b" (core func $post-b))
  (alias core export $i "post-c" (core func $post-c))
  (func (export "echo") (param "s" string) (result string)
    (canon lift (core func $i "echo") (memory $libc-mem)
      (realloc (func $libc-realloc)) (post-return (func $post-a))))
  (func (export "echo-b") (param "s" string) (result string)
    (canon lift (core func $i "echo") (memory $libc-mem)
      (realloc (func $libc-realloc)) (post-return (func $post-b))))
  (func (export "echo-c") (param "s" string) (result string)
    (canon lift (core func $i "echo") (memory $libc-mem)
      (realloc (func $libc-realloc)) (post-return (func $post-c)))))
"""


def resources(host):
    """Two resource types with guest destructors (with `host`, one dtor calls a host import)."""
    imports = '\n  (import "note" (func $note (param "rep" u32)))' if host else ""
    lowered = '\n  (core func $note-lowered (canon lower (func $note)))' if host else ""
    dtor_import = '\n    (import "host" "note" (func $note (param i32)))' if host else ""
    dtor_body = "local.get 0 call $note" if host else ""
    dtor_with = ' (with "host" (instance (export "note" (func $note-lowered))))' if host else ""
    return f"""
(component{imports}{lowered}
  (core module $dtors{dtor_import}
    (func (export "dtor") (param i32) {dtor_body})
    (func (export "dtor2") (param i32)))
  (core instance $d (instantiate $dtors{dtor_with}))
  (alias core export $d "dtor" (core func $dtor))
  (alias core export $d "dtor2" (core func $dtor2))
  (type $thing (resource (rep i32) (dtor (func $dtor))))
  (type $other (resource (rep i32) (dtor (func $dtor2))))
  (core func $new (canon resource.new $thing))
  (core func $new2 (canon resource.new $other))
  (core func $rep (canon resource.rep $thing))
  (core module $m
    (import "thing" "new" (func $new (param i32) (result i32)))
    (import "thing" "new2" (func $new2 (param i32) (result i32)))
    (import "thing" "rep" (func $rep (param i32) (result i32)))
    (func (export "make") (param i32) (result i32) local.get 0 call $new)
    (func (export "make2") (param i32) (result i32) local.get 0 call $new2))
  (core instance $i (instantiate $m (with "thing" (instance
    (export "new" (func $new)) (export "new2" (func $new2)) (export "rep" (func $rep))))))
  (export $thing-out "thing" (type $thing))
  (export $other-out "other" (type $other))
  (func (export "make") (param "rep" u32) (result (own $thing-out)) (canon lift (core func $i "make")))
  (func (export "make2") (param "rep" u32) (result (own $other-out)) (canon lift (core func $i "make2"))))
"""


def fused_adapter(host):
    """Component A calls component B's lifted export through a lowering: a fused adapter."""
    imports = '\n  (import "log" (func $log (param "x" u32)))' if host else ""
    b_import = '\n    (import "log" (func $log (param "x" u32)))' if host else ""
    b_lowered = '\n    (core func $log-lowered (canon lower (func $log)))' if host else ""
    b_core_import = '\n      (import "host" "log" (func $log (param i32)))' if host else ""
    b_call = "local.get 0 call $log" if host else ""
    b_with = ' (with "host" (instance (export "log" (func $log-lowered))))' if host else ""
    b_inst_with = ' (with "log" (func $log))' if host else ""
    return f"""
(component{imports}
  (component $B{b_import}{b_lowered}
    (core module $m{b_core_import}
      (func (export "double") (param i32) (result i32)
        {b_call} local.get 0 i32.const 2 i32.mul))
    (core instance $i (instantiate $m{b_with}))
    (func (export "double") (param "x" u32) (result u32) (canon lift (core func $i "double"))))
  (component $A
    (import "double" (func $double (param "x" u32) (result u32)))
    (core func $double-lowered (canon lower (func $double)))
    (core module $m
      (import "b" "double" (func $double (param i32) (result i32)))
      (func (export "run") (param i32) (result i32)
        local.get 0 call $double i32.const 1 i32.add))
    (core instance $i (instantiate $m (with "b" (instance (export "double" (func $double-lowered))))))
    (func (export "run") (param "x" u32) (result u32) (canon lift (core func $i "run"))))
  (instance $b (instantiate $B{b_inst_with}))
  (instance $a (instantiate $A (with "double" (func $b "double"))))
  (export "run" (func $a "run")))
"""


# No imports, no resources: no trampoline, so no vmctx field names the context.
LIFT_ONLY = """
(component
  (core module $m (func (export "seven") (result i32) i32.const 7))
  (core instance $i (instantiate $m))
  (func (export "seven") (result u32) (canon lift (core func $i "seven"))))
"""

# Runtime callbacks: needs component-model-async (a C API switch, from 45 on).
ASYNC_CALLBACK = """
(component
  (core module $m
    (func (export "run") (result i32) i32.const 0)
    (func (export "cb") (param i32 i32 i32) (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (alias core export $i "cb" (core func $cb))
  (func (export "run") async (canon lift (core func $i "run") async (callback (func $cb)))))
"""

# The component-model-async builtins below parse and instantiate the same way in every wheel from
# 45.0.0 to 51.0.0 (measured), with the three C API switches on (`async`, `more_async_builtins`,
# `async_stackful`: the engine for async shapes turns on all of them). Only the context shapes
# export a synchronous function the Python API can call; the others are instantiated only.

# context.get/context.set compile to unsafe intrinsics, not trampolines: the context holds a func
# ref for every intrinsic up to the highest index used (`UnsafeIntrinsic` order: store-data-address,
# the native loads/stores (8, and 8 checked ones from 47), then context-get-i32-0, context-set-i32-0,
# ...). Slot 1 (`context.get i32 1`) is rejected without the threading feature, which the C API
# cannot turn on ("`context.set` immediate must be zero").
CONTEXT = """
(component
  (core func $get (canon context.get i32 0))
  (core func $set (canon context.set i32 0))
  (core module $m
    (import "" "get" (func $get (result i32)))
    (import "" "set" (func $set (param i32)))
    (func (export "run") (result i32) i32.const 5 call $set call $get))
  (core instance $i (instantiate $m (with "" (instance (export "get" (func $get)) (export "set" (func $set))))))
  (func (export "run") (result u32) (canon lift (core func $i "run"))))
"""

# Only context.get: one intrinsic fewer than CONTEXT (the get comes before the set).
CONTEXT_GET = """
(component
  (core func $get (canon context.get i32 0))
  (core module $m
    (import "" "get" (func $get (result i32)))
    (func (export "run") (result i32) call $get))
  (core instance $i (instantiate $m (with "" (instance (export "get" (func $get))))))
  (func (export "run") (result u32) (canon lift (core func $i "run"))))
"""

# A waitable set: five trampolines, one runtime memory (wait and poll write their event there).
WAITABLE_SET = """
(component
  (core module $libc (memory (export "memory") 1))
  (core instance $libc (instantiate $libc))
  (core func $new (canon waitable-set.new))
  (core func $wait (canon waitable-set.wait (memory $libc "memory")))
  (core func $poll (canon waitable-set.poll (memory $libc "memory")))
  (core func $drop (canon waitable-set.drop))
  (core func $join (canon waitable.join))
  (core module $m
    (import "" "new" (func (result i32)))
    (import "" "wait" (func (param i32 i32) (result i32)))
    (import "" "poll" (func (param i32 i32) (result i32)))
    (import "" "drop" (func (param i32)))
    (import "" "join" (func (param i32 i32))))
  (core instance $i (instantiate $m (with "" (instance
    (export "new" (func $new)) (export "wait" (func $wait)) (export "poll" (func $poll))
    (export "drop" (func $drop)) (export "join" (func $join))))))
)
"""

# Every stream and future builtin on one stream and one future type: 14 trampolines, one memory.
STREAMS_FUTURES = """
(component
  (type $s (stream u8))
  (type $f (future u32))
  (core module $libc (memory (export "memory") 1))
  (core instance $libc (instantiate $libc))
  (core func $s-new (canon stream.new $s))
  (core func $s-read (canon stream.read $s async (memory $libc "memory")))
  (core func $s-write (canon stream.write $s async (memory $libc "memory")))
  (core func $s-cancel-read (canon stream.cancel-read $s))
  (core func $s-cancel-write (canon stream.cancel-write $s))
  (core func $s-drop-readable (canon stream.drop-readable $s))
  (core func $s-drop-writable (canon stream.drop-writable $s))
  (core func $f-new (canon future.new $f))
  (core func $f-read (canon future.read $f async (memory $libc "memory")))
  (core func $f-write (canon future.write $f async (memory $libc "memory")))
  (core func $f-cancel-read (canon future.cancel-read $f))
  (core func $f-cancel-write (canon future.cancel-write $f))
  (core func $f-drop-readable (canon future.drop-readable $f))
  (core func $f-drop-writable (canon future.drop-writable $f))
  (core module $m
    (import "" "s-new" (func (result i64)))
    (import "" "s-read" (func (param i32 i32 i32) (result i32)))
    (import "" "s-write" (func (param i32 i32 i32) (result i32)))
    (import "" "s-cancel-read" (func (param i32) (result i32)))
    (import "" "s-cancel-write" (func (param i32) (result i32)))
    (import "" "s-drop-readable" (func (param i32)))
    (import "" "s-drop-writable" (func (param i32)))
    (import "" "f-new" (func (result i64)))
    (import "" "f-read" (func (param i32 i32) (result i32)))
    (import "" "f-write" (func (param i32 i32) (result i32)))
    (import "" "f-cancel-read" (func (param i32) (result i32)))
    (import "" "f-cancel-write" (func (param i32) (result i32)))
    (import "" "f-drop-readable" (func (param i32)))
    (import "" "f-drop-writable" (func (param i32))))
  (core instance $i (instantiate $m (with "" (instance
    (export "s-new" (func $s-new)) (export "s-read" (func $s-read)) (export "s-write" (func $s-write))
    (export "s-cancel-read" (func $s-cancel-read)) (export "s-cancel-write" (func $s-cancel-write))
    (export "s-drop-readable" (func $s-drop-readable)) (export "s-drop-writable" (func $s-drop-writable))
    (export "f-new" (func $f-new)) (export "f-read" (func $f-read)) (export "f-write" (func $f-write))
    (export "f-cancel-read" (func $f-cancel-read)) (export "f-cancel-write" (func $f-cancel-write))
    (export "f-drop-readable" (func $f-drop-readable)) (export "f-drop-writable" (func $f-drop-writable))))))
)
"""

# task.return from an async lift with a callback, and the task builtins (`thread.yield`: the
# spelling of `yield` in every release here; `backpressure.inc`/`.dec`: of `backpressure.set`).
TASK_BUILTINS = """
(component
  (core func $task-return (canon task.return (result u32)))
  (core func $yield (canon thread.yield))
  (core func $backpressure-inc (canon backpressure.inc))
  (core func $backpressure-dec (canon backpressure.dec))
  (core func $subtask-drop (canon subtask.drop))
  (core func $subtask-cancel (canon subtask.cancel))
  (core func $task-cancel (canon task.cancel))
  (core module $m
    (import "" "task.return" (func $task-return (param i32)))
    (import "" "yield" (func (result i32)))
    (import "" "backpressure.inc" (func))
    (import "" "backpressure.dec" (func))
    (import "" "subtask.drop" (func (param i32)))
    (import "" "subtask.cancel" (func (param i32) (result i32)))
    (import "" "task.cancel" (func))
    (func (export "run") (result i32) (call $task-return (i32.const 7)) i32.const 0)
    (func (export "cb") (param i32 i32 i32) (result i32) i32.const 0))
  (core instance $i (instantiate $m (with "" (instance
    (export "task.return" (func $task-return)) (export "yield" (func $yield))
    (export "backpressure.inc" (func $backpressure-inc)) (export "backpressure.dec" (func $backpressure-dec))
    (export "subtask.drop" (func $subtask-drop)) (export "subtask.cancel" (func $subtask-cancel))
    (export "task.cancel" (func $task-cancel))))))
  (func (export "run") async (result u32) (canon lift (core func $i "run") async (callback (func $i "cb")))))
"""

# An async lift without a callback (needs the async_stackful switch): no runtime callback.
STACKFUL = """
(component
  (core func $task-return (canon task.return (result u32)))
  (core module $m
    (import "" "task.return" (func $task-return (param i32)))
    (func (export "run") (param i32) (call $task-return (local.get 0))))
  (core instance $i (instantiate $m (with "" (instance (export "task.return" (func $task-return))))))
  (func (export "run") async (param "x" u32) (result u32) (canon lift (core func $i "run") async)))
"""

# An async lower of a sibling's async lift with a callback: a fused async adapter. The `async`
# function types are required from 46 and accepted by 45.
ASYNC_FUSED = """
(component
  (component $lifter
    (core func $task-return (canon task.return (result u32)))
    (core module $m
      (import "" "task.return" (func $task-return (param i32)))
      (func (export "cb") (param i32 i32 i32) (result i32) unreachable)
      (func (export "run") (param i32) (result i32) (call $task-return (local.get 0)) i32.const 0))
    (core instance $i (instantiate $m (with "" (instance (export "task.return" (func $task-return))))))
    (func (export "run") async (param "x" u32) (result u32)
      (canon lift (core func $i "run") async (callback (func $i "cb")))))
  (component $lowerer
    (import "run" (func $run async (param "x" u32) (result u32)))
    (core module $libc (memory (export "memory") 1))
    (core instance $libc (instantiate $libc))
    (core func $run (canon lower (func $run) async (memory $libc "memory")))
    (core func $subtask-drop (canon subtask.drop))
    (core module $m
      (import "libc" "memory" (memory 1))
      (import "" "run" (func $run (param i32 i32) (result i32)))
      (import "" "subtask.drop" (func (param i32)))
      (func (export "go") (drop (call $run (i32.const 42) (i32.const 1024)))))
    (core instance $i (instantiate $m (with "libc" (instance $libc))
      (with "" (instance (export "run" (func $run)) (export "subtask.drop" (func $subtask-drop))))))
    (func (export "go") (canon lift (core func $i "go"))))
  (instance $lifter (instantiate $lifter))
  (instance $lowerer (instantiate $lowerer (with "run" (func $lifter "run"))))
  (export "go" (func $lowerer "go")))
"""

# The `cancellable` waits: 45-49 parse it; from 50 `wast` rejects it ("no longer supported after
# WebAssembly/component-model#716").
CANCELLABLE = """
(component
  (core module $libc (memory (export "memory") 1))
  (core instance $libc (instantiate $libc))
  (core func $wait (canon waitable-set.wait cancellable (memory $libc "memory")))
  (core func $yield (canon thread.yield cancellable))
  (core module $m
    (import "" "wait" (func (param i32 i32) (result i32)))
    (import "" "yield" (func (result i32))))
  (core instance $i (instantiate $m (with "" (instance (export "wait" (func $wait)) (export "yield" (func $yield))))))
)
"""

# An async lower of a host import: only 45 takes a synchronous function type there; from 46 the
# `async` option needs an `async func` import, which no wasmtime-py host function implements
# ("type mismatch with async" at instantiation).
ASYNC_LOWER_HOST = """
(component
  (import "peek" (func $peek (param "x" u32) (result u32)))
  (core module $libc (memory (export "memory") 1))
  (core instance $libc (instantiate $libc))
  (core func $peek-lowered (canon lower (func $peek) async (memory $libc "memory")))
  (core module $m (import "" "peek" (func (param i32 i32) (result i32))))
  (core instance $i (instantiate $m (with "" (instance (export "peek" (func $peek-lowered))))))
)
"""

# Async shapes only some wheels take: name -> (first major, last major or None, why not elsewhere).
ASYNC_RELEASES = {
    "cancellable": (45, 49, "the `cancellable` option is rejected from 50 (component-model#716)"),
    "async_lower_host": (45, 45, "from 46 an `async` lower needs an `async func` import, which no "
                                 "wasmtime-py host function implements"),
}

SHAPES = {
    # name: (wat with host imports, wat without (None: needs them), host imports, calls, instances, async);
    # calls name synchronous exports only: the synchronous API cannot call an async export.
    "lower_lift": (LOWER_LIFT, None, {"add": lambda x: x + 100}, [("run", (1,), 102)], 1, False),
    "strings": (strings(True), strings(False), {"len": len, "peek": lambda s: None},
                [("echo-b", ("hello",), "hello")], 1, False),
    "resources": (resources(True), resources(False), {"note": lambda rep: None},
                  [("make", (7,), "drop"), ("make2", (8,), "keep")], 1, False),
    "fused_adapter": (fused_adapter(True), fused_adapter(False), {"log": lambda x: None},
                      [("run", (5,), 11)], 1, False),
    "lift_only": (LIFT_ONLY, LIFT_ONLY, {}, [("seven", (), 7)], 1, False),
    "two_in_one_store": (resources(False), resources(False), {}, [("make2", (1,), "keep")], 2, False),
    "async_callback": (ASYNC_CALLBACK, ASYNC_CALLBACK, {}, [], 1, True),
    "context": (CONTEXT, CONTEXT, {}, [("run", (), 5)], 1, True),  # a sync export: callable
    "context_get": (CONTEXT_GET, CONTEXT_GET, {}, [("run", (), 0)], 1, True),
    "waitable_set": (WAITABLE_SET, WAITABLE_SET, {}, [], 1, True),
    "streams_futures": (STREAMS_FUTURES, STREAMS_FUTURES, {}, [], 1, True),
    "task_builtins": (TASK_BUILTINS, TASK_BUILTINS, {}, [], 1, True),
    "stackful": (STACKFUL, STACKFUL, {}, [], 1, True),
    "async_fused": (ASYNC_FUSED, ASYNC_FUSED, {}, [], 1, True),
    "cancellable": (CANCELLABLE, CANCELLABLE, {}, [], 1, True),
    "async_lower_host": (ASYNC_LOWER_HOST, None, {"peek": lambda x: x}, [], 1, True),
}


# ------------------------------------------------------------- instantiation
MEMORY_RESERVATION = 16 << 20
MEMORY_GUARD = 64 << 10
_keep = []  # everything a component context depends on, kept alive until the process ends
_instances = {}  # shape -> (store, its first instance), for the flag sequence (Python API only)
_inside = {}  # shape -> what its host imports call first, while a flag sequence runs


def make_engine(component_model_async, default_memories):
    config = wasmtime.Config()
    ptr = config.ptr() if hasattr(config, "ptr") else config._ptr
    if not default_memories:
        # By default each linear memory reserves GiBs of PROT_NONE address space, which gcore
        # writes out in full (about 9 GB a core here). The context does not depend on it.
        ffi.wasmtime_config_memory_reservation_set(ptr, MEMORY_RESERVATION)
        ffi.wasmtime_config_memory_guard_size_set(ptr, MEMORY_GUARD)
    if component_model_async:
        # The stackful switch lets a lift be async without a callback; `more_async_builtins` is on
        # so that a builtin it gates in some release is not the reason a shape fails.
        for switch in ASYNC_SWITCHES:
            getattr(ffi, switch)(ptr, True)
    return wasmtime.Engine(config)


def _host(shape, impl, args):
    probe = _inside.get(shape)
    if probe is not None:
        probe()
    return impl(*args)


def instantiate_py(shape, engine, store, wat, host, calls, n):
    """Through wasmtime.component (39+): instantiate n times in `store`, then make each call once."""
    from wasmtime.component import Component, Linker, ResourceAny

    component = Component(engine, wat)
    linker = Linker(engine)
    if host:
        with linker.root() as root:
            for name, impl in host.items():
                root.add_func(name, lambda store, *args, impl=impl: _host(shape, impl, args))
    made = []
    for _ in range(n):
        instance = linker.instantiate(store, component)
        _keep.append(instance)
        _instances.setdefault(shape, (store, instance))
        for export, args, expected in calls:
            func = instance.get_func(store, export)
            result = func(store, *args)
            func.post_return(store)
            if isinstance(result, ResourceAny):
                if expected == "drop":
                    result.drop(store)  # runs the guest destructor
                else:
                    _keep.append(result)
            elif result != expected:
                raise AssertionError(f"{export}{args} returned {result!r}, expected {expected!r}")
            made.append(f"{export}{args}")
    _keep.extend([component, linker])
    return made


# Stores made and dropped before "ready" (39+): their contexts are freed memory the scan must not list as live.
DROPPED_STORES = 4


def drop_stores(engine, count):
    """Make `count` stores with a lower_lift instance each, call it, then drop them all; how many were made."""
    import gc

    from wasmtime.component import Component, Linker

    component = Component(engine, LOWER_LIFT)
    linker = Linker(engine)
    with linker.root() as root:
        root.add_func("add", lambda store, x: x + 100)
    stores = []
    for _ in range(count):
        store = wasmtime.Store(engine)
        instance = linker.instantiate(store, component)
        func = instance.get_func(store, "run")
        func(store, 1)
        func.post_return(store)
        stores.append(store)
    del stores, instance, func, store
    gc.collect()
    return count


def _check(error):
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


def instantiate_c(shape, engine, store, wat, host, calls, n):
    """Through the component C API (33-38), on the wheel's own bindings: instantiate n times, no calls."""
    data = wasmtime.wat2wasm(wat)
    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    component = ctypes.POINTER(ffi.wasmtime_component_t)()
    _check(ffi.wasmtime_component_new(engine.ptr(), buf, len(data), ctypes.byref(component)))
    linker = ffi.wasmtime_component_linker_new(engine.ptr())
    if host:
        from wasmtime import _bindings

        argtypes = _bindings._wasmtime_component_linker_instance_add_func.argtypes
        callback, finalizer = argtypes[3](lambda *args: 0), argtypes[5](lambda *args: None)
        _keep.extend([callback, finalizer])
        root = ffi.wasmtime_component_linker_root(linker)
        for name in host:
            raw = name.encode()
            _check(ffi.wasmtime_component_linker_instance_add_func(
                root, ctypes.create_string_buffer(raw), len(raw), callback, None, finalizer))
        ffi.wasmtime_component_linker_instance_delete(root)
    for _ in range(n):
        instance = ffi.wasmtime_component_instance_t()
        _check(ffi.wasmtime_component_linker_instantiate(linker, store._context(), component,
                                                         ctypes.byref(instance)))
        _keep.append(instance)
    _keep.extend([component, linker, buf])
    return []


# ------------------------------------------------------------ flag sequence
# The shapes whose flag words the parent compares with the emulator's, and the call each makes.
FLAG_CALLS = {"lower_lift": ("run", (1,), 102), "fused_adapter": ("run", (5,), 11)}
FLAG_SLOT = 16  # one VMGlobalDefinition per runtime component instance


def _post_return(func, store):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        func.post_return(store)


def flag_sequence(shape, flags_at, n, fd):
    """The shape's n flag words at each moment of: a call (and inside its host import), post_return,
    a call again, a second call without post_return (its error, if any), and post_return if it failed."""
    store, instance = _instances[shape]
    export, args, expected = FLAG_CALLS[shape]
    func = instance.get_func(store, export)

    def words():
        data = os.pread(fd, FLAG_SLOT * n, flags_at)
        if len(data) != FLAG_SLOT * n:
            raise OSError(f"read {len(data)} of {FLAG_SLOT * n} bytes at {flags_at:#x}")
        return [struct.unpack_from("<I", data, FLAG_SLOT * i)[0] for i in range(n)]

    def check(result):
        if result != expected:
            raise AssertionError(f"{export}{args} returned {result!r}, expected {expected!r}")

    def call():
        check(func(store, *args))

    seen = {"rest": words()}
    inside = []
    _inside[shape] = lambda: inside.append(words())
    try:
        call()
    finally:
        _inside.pop(shape, None)
    seen["inside"] = inside  # one list of words per host import call
    seen["after_call"] = words()
    _post_return(func, store)
    seen["after_post_return"] = words()
    call()
    seen["after_call_again"] = words()
    try:
        result = func(store, *args)
    except Exception as e:  # noqa: BLE001 - the outcome is what is measured
        text = str(e).split("\nStack backtrace:")[0].rstrip()  # a backtrace where RUST_BACKTRACE is set
        seen["second_call"] = f"{type(e).__name__}: {text}"
    else:
        check(result)
        seen["second_call"] = None
    seen["after_second_call"] = words()
    if seen["second_call"] is not None:
        _post_return(func, store)
        seen["after_second_post_return"] = words()
    return seen


def answer(line):
    """One request line from the parent, answered on one line."""
    if not line.startswith("flags "):
        return "error " + json.dumps(f"unknown request {line.strip()[:100]!r}")
    fd = os.open("/proc/self/mem", os.O_RDONLY)
    out = {}
    try:
        for shape, spec in json.loads(line[len("flags "):]).items():
            try:
                out[shape] = flag_sequence(shape, int(spec["flags_at"]), int(spec["instances"]), fd)
            except Exception:  # noqa: BLE001 - reported to the parent, the child lives on
                out[shape] = {"error": traceback.format_exc()}
    finally:
        os.close(fd)
    return "flags " + json.dumps(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3600, help="how long to wait (default 3600)")
    parser.add_argument("--default-memories", action="store_true",
                        help="keep Wasmtime's default memory reservation (GiBs per memory: huge cores)")
    args = parser.parse_args(argv)
    report = {"pid": os.getpid(), "wheel": WHEEL, "api": "python" if PY_COMPONENT_API else "c",
              "library": ffi.dll._name, "host_functions": HOST_FUNCTIONS,
              "memory_reservation": None if args.default_memories else MEMORY_RESERVATION,
              "instances": 0, "shapes": {}, "skipped": {}, "flag_shapes": []}
    engines = {}
    for name, (with_host, without_host, host, calls, n, needs_async) in SHAPES.items():
        if needs_async and not ASYNC:
            report["skipped"][name] = "no component-model-async switches in this C API"
            continue
        first, last, why = ASYNC_RELEASES.get(name, (0, None, ""))
        if not first <= MAJOR <= (last if last is not None else MAJOR):
            report["skipped"][name] = why
            continue
        if host and not HOST_FUNCTIONS:
            if without_host is None:
                report["skipped"][name] = "no host functions in this C API"
                continue
            wat, host = without_host, {}
        else:
            wat = with_host
        if needs_async not in engines:
            engines[needs_async] = make_engine(needs_async, args.default_memories)
        engine = engines[needs_async]
        store = wasmtime.Store(engine)
        _keep.append(store)
        instantiate = instantiate_py if PY_COMPONENT_API else instantiate_c
        made = instantiate(name, engine, store, wat, host, calls, n)
        report["instances"] += n
        report["shapes"][name] = {"instances": n, "host_imports": sorted(host), "calls": made}
    report["flag_shapes"] = [s for s in FLAG_CALLS if s in _instances and report["shapes"][s]["host_imports"]]
    report["dropped"] = drop_stores(engines[False], DROPPED_STORES) if PY_COMPONENT_API and False in engines else 0
    print("ready " + json.dumps(report), flush=True)
    parent, deadline = os.getppid(), time.monotonic() + args.seconds
    listening = True
    while time.monotonic() < deadline and os.getppid() == parent:  # not past a dead parent
        if not listening:
            time.sleep(1)
            continue
        ready, _, _ = select.select([sys.stdin], [], [], 1)
        if ready:
            line = sys.stdin.readline()
            if line:
                print(answer(line), flush=True)
            else:
                listening = False  # stdin closed: only sleep from now on
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except Exception:
        traceback.print_exc()
        print("failed", flush=True)
        code = 1
    sys.exit(code)
