# Two entry points, both from nothing: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench install clean

demo: $(STAMP)
	$(BIN)/vmctx-emu demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

install: $(STAMP)

# The test extra is installed for demo too, so one environment serves both targets.
$(STAMP): setup.cfg setup.py pyproject.toml $(wildcard native/*.c native/*.h native/*.py)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info vmctx_emu/_native*.so
