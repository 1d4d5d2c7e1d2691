# Two commands set up and run everything on a fresh machine:
#   make demo   theory-vs-finite-width validation of kernels/ (CPU, a few minutes)
#   make test   the test suite (fast tests and the slow validations)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= runs/width_check
SUITE ?= quick

.PHONY: demo test test-fast bench venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: venv
	$(PY) -m kernels.width_check --out=$(OUT)

# A test whose worker process dies runs once more, in a fresh worker, and the summary counts
# it as rerun. (The crashes seen so far came from workers that passed the kernel's limit on
# memory mappings; tests/conftest.py now releases compiled programs after each module.)
# No failed assertion or exception is rerun: the pattern '(?!)' matches none.
RERUN_CRASHED := --reruns 1 --only-rerun '(?!)'

test: venv
	$(PY) -m pytest -n 2 $(RERUN_CRASHED) --durations=15 tests

test-fast: venv
	$(PY) -m pytest -n 2 $(RERUN_CRASHED) -m "not slow" tests

bench: venv
	$(PY) -m benchmarks.run_all --suite=$(SUITE)

clean:
	rm -rf $(VENV) runs .pytest_cache
