# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,torch,music,translation,captioning,export,timeseries
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install demo test test-slow bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@# Compile the native recurrence kernels once now (they would build on first use).
	$(PY) -m zoo.layers.native > /dev/null || echo "native kernels not built: the graph kernels will be used"
	touch $@

install: $(STAMP)

demo: install
	$(PY) -m zoo.demo

test: install
	$(PY) -m pytest -q -m "not slow"

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) benchmarks/rnn_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
