# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmkeras-installed
# Quiet TensorFlow's C++ start-up chatter in everything make runs.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test test-fast demo dist benchmarks clean

install: $(STAMP)

# Editable installs put the checkout on sys.path (a .pth file) rather than behind an import hook: a
# script run beside a clone folder named mmkeras/ then still imports the package, not that folder.
# setuptools calls compat mode transitional; when it goes, editable_mode=strict is also path-based
# (a link tree under build/, which a new module joins only on the next install).
EDITABLE := --config-settings editable_mode=compat

# The demo needs only the package itself (no test, video or keras-hub extras).
DEMO_STAMP := $(VENV)/.mmkeras-demo-installed
$(DEMO_STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e . $(EDITABLE)
	touch $(DEMO_STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,audio]" $(EDITABLE)
	touch $(STAMP)

# Tests run in two processes side by side (pytest-xdist). On a 2-core machine two workers took
# the 500 tests from 28.5 to 17.8 minutes (2026-12-01). TEST_WORKERS=0 runs them in one process.
# Tests marked slow are collected first (tests/conftest.py), and handed out one at a time
# (--maxschedchunk 1), so each worker takes the next long test when it is free: xdist's default
# hands each worker a block of consecutive tests, which gave every slow test to one of them.
# (--dist loadgroup, which would keep the tests of one fixture on one worker, does not group
# with pytest 9: tests/conftest.py orders them instead.)
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --maxschedchunk 1)

test: $(STAMP)
	$(PY) -m pytest -q $(XDIST) --durations=25

# Everything except tests marked slow: for the edit-test loop, never for CI.
test-fast: $(STAMP)
	$(PY) -m pytest -q $(XDIST) -m "not slow"

demo: $(DEMO_STAMP)
	$(VENV)/bin/mmkeras demo --workdir demo_run

# A wheel and an sdist in dist/, checked with twine: `pip install dist/mmkeras-*.whl` anywhere
# (in Colab, upload the wheel and point the notebooks' MMKERAS_SOURCE at it).
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) demo_run build dist *.egg-info
