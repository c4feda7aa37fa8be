# clm — run `make help` for the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

.PHONY: install
install: $(STAMP) ## Create .venv and install clm with its development tools

.PHONY: run
run: $(STAMP) ## Start the whole system on embedded PostgreSQL and Kafka (Ctrl-C stops it)
	$(VENV)/bin/clm run

.PHONY: test
test: $(STAMP) ## Run the whole test suite on real PostgreSQL and Kafka
	@command -v $${CLM_TEST_CHROMIUM:-chromium} >/dev/null 2>&1 || echo "note: no chromium here, so the console's browser tests are skipped (apt-get install -y chromium runs them)"
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff (lint + format check), mypy and the import contracts (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy clm shared services bench
	$(VENV)/bin/lint-imports

.PHONY: format
format: $(STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: bench-ingest
bench-ingest: $(STAMP) ## Measure Tracking API throughput (events/s accepted and durable on clm.events)
	$(PY) -m bench.ingest $(BENCH_ARGS)

.PHONY: bench
bench: $(STAMP) ## Trigger engine end to end on a synthetic storefront (events/s, raw rate, latency)
	$(PY) -m bench.engine $(BENCH_ARGS)

.PHONY: bench-fold
bench-fold: $(STAMP) ## The engine's pure fold alone (decode, core, state encoding): CPU µs per event
	$(PY) -m bench.fold $(BENCH_ARGS)

.PHONY: chaos
chaos: $(STAMP) ## Crash-and-fault run of clm run with an oracle: expected, delivered, missing, duplicate, wrongly sent
	$(PY) -m bench.chaos $(CHAOS_ARGS)

.PHONY: clean
clean: ## Remove the embedded data dir (.clm) and caches
	rm -rf .clm .pytest_cache .mypy_cache .ruff_cache
