# The two set-up commands of the README: `make demo` and `make test`.
# Everything the project needs is installed here, into .venv, from pinned versions.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test lint typecheck bench-storage bench-executor bench-backends clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"

# Re-install whenever the dependency declarations change.
$(VENV)/.installed-run: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.installed-run

$(VENV)/.installed-bench: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e '.[test,bench]'
	touch $@ $(VENV)/.installed-test $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	$(BIN)/xhub demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

test: $(VENV)/.installed-test lint typecheck
	$(BIN)/python -m pytest

bench-storage: $(VENV)/.installed-bench
	$(BIN)/python bench/storage_ranged_get.py

bench-executor: $(VENV)/.installed-bench
	$(BIN)/python bench/executor_overhead.py

bench-backends: $(VENV)/.installed-bench
	$(BIN)/python bench/backends_overhead.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
