# Qingshou — two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test check lint types bench install clean schemas unit e2e fault fuzz

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or make PYTHON=python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev,train]"
	@touch $(STAMP)

install: $(STAMP)  ## create the venv and install the project with its dev tools

run: $(STAMP)  ## start the broker and the four services on SQLite (Ctrl-C stops all)
	$(PY) -m services.scoring setup
	$(PY) -m shared.devrun

test: $(STAMP)  ## the whole suite: unit, service, API, end-to-end (SQLite and PostgreSQL)
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest -m "not e2e"

e2e: $(STAMP)
	$(PY) -m pytest -m e2e

fault: $(STAMP)  ## the tests that kill things: broker and services killed mid-stream, poison, DLQ re-drive
	$(PY) -m pytest -k "killing or poison or redriven" tests/e2e tests/integration/test_dlq_redrive.py
	$(PY) -m pytest -m fault -s tests/e2e/test_faults.py  # QS_FAULT_CASES (10000) each; var/fault-results.txt

fuzz: $(STAMP)  ## schemathesis against every service's OpenAPI with many examples per operation
	QS_FUZZ_EXAMPLES=$${QS_FUZZ_EXAMPLES:-200} $(PY) -m pytest --timeout 3600 tests/integration/test_api_fuzz.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(STAMP)
	$(VENV)/bin/mypy shared services tests bench

check: lint types test  ## lint + types + tests

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,train,bench]"
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## benchmarks (not part of `make test`); each prints its figure and ceiling
	$(PY) bench/pipeline.py
	$(PY) bench/scorecard_quality.py
	$(PY) bench/scoring_throughput.py
	$(PY) bench/contact_decisions.py
	$(PY) bench/cases_api.py
	$(PY) bench/import.py
	$(PY) bench/contact_simulation.py
	$(PY) bench/audit.py
	$(PY) bench/compliance_consumer.py

schemas: $(STAMP)  ## regenerate the published JSON Schemas of the events
	$(PY) -m shared.contracts.schemas --write

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
