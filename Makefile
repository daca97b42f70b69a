# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,torch,music,translation,captioning,export,timeseries,tagging,sentiment,speech,serve
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

# Two workers (one per core); each test file runs whole on one worker, so module fixtures
# (smoke models) are built once. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) benchmarks/rnn_speed.py

clean:
	rm -rf $(VENV) build *.egg-info

# The lab: every claim of docs/lab.md measured again (≤ 30 minutes on 2 CPU cores), then the page.
.PHONY: lab
lab: install
	$(PY) -m zoo.lab all
