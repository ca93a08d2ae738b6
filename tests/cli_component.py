"""A component the official `wasmtime` CLI runs and keeps alive (`wasmtime run`), for scanning real CLIs."""

import subprocess

# Nine non-zero counts: 2 lowerings (one with memory and realloc), a memory, a realloc, an async
# lift's callback, a post-return, 3 trampolines, context.get/set (unsafe intrinsics), a resource.
COMPONENT = """
(component
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock (export "now" (func (result u64)))))
  (import "wasi:cli/environment@0.2.0" (instance $env (export "get-arguments" (func (result (list string))))))
  (alias export $clock "now" (func $now))
  (alias export $env "get-arguments" (func $args))
  (core module $libc
    (memory (export "mem") 1)
    (global $bump (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      global.get $bump
      global.get $bump local.get 3 i32.add global.set $bump)
    (func (export "dtor") (param i32))
    (func (export "cb") (param i32 i32 i32) (result i32) i32.const 0)
    (func (export "post") (param i32)))
  (core instance $libc (instantiate $libc))
  (alias core export $libc "mem" (core memory $mem))
  (alias core export $libc "realloc" (core func $realloc))
  (alias core export $libc "dtor" (core func $dtor))
  (alias core export $libc "cb" (core func $cb))
  (alias core export $libc "post" (core func $post))
  (type $thing (resource (rep i32) (dtor (func $dtor))))
  (core func $new (canon resource.new $thing))
  (core func $now-lowered (canon lower (func $now)))
  (core func $args-lowered (canon lower (func $args) (memory $mem) (realloc $realloc)))
  (core func $get (canon context.get i32 0))
  (core func $set (canon context.set i32 0))
  (core module $m
    (import "host" "now" (func $now (result i64)))
    (import "host" "args" (func $args (param i32)))
    (import "host" "new" (func $new (param i32) (result i32)))
    (import "host" "get" (func $get (result i32)))
    (import "host" "set" (func $set (param i32)))
    (func (export "run") (result i32)
      i32.const 64 call $args
      i32.const 7 call $set
      i32.const 7 call $new drop
      (loop $l call $now drop br $l)
      i32.const 0)
    (func (export "async-run") (result i32) i32.const 0)
    (func (export "seven") (result i32) call $get))
  (core instance $i (instantiate $m (with "host" (instance
    (export "now" (func $now-lowered)) (export "args" (func $args-lowered)) (export "new" (func $new))
    (export "get" (func $get)) (export "set" (func $set))))))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run-inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-inst))
  (func (export "async-run") async (canon lift (core func $i "async-run") async (callback (func $cb))))
  (func (export "seven") (result u32) (canon lift (core func $i "seven") (post-return (func $post)))))
"""
# Linear memories kept small, so a core of the process stays small (the default reserves gigabytes).
SMALL_MEMORY = ["-O", "memory-reservation=16777216", "-O", "memory-guard-size=65536"]


def run_args(major):
    """The arguments of `wasmtime run` for COMPONENT on a CLI of this major release."""
    return ["run", *(["-W", "component-model-async=y"] if major < 46 else []), *SMALL_MEMORY]


def start(exe, component, major):
    """`exe run COMPONENT x y` (its `run` loops forever once it has made its calls)."""
    return subprocess.Popen([str(exe), *run_args(major), str(component), "x", "y"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
