# The two commands a fresh machine needs are `make setup` and `make test`
# (README). Everything else builds on them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup kafka test unit integration lint demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Resolve the Kafka jars through Maven (cached in ~/.m2 after the first run).
kafka: setup
	$(BIN)/pipeline infra fetch

test: setup kafka
	$(BIN)/python -m pytest

unit: setup
	$(BIN)/python -m pytest tests/unit

integration: setup kafka
	$(BIN)/python -m pytest tests/integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: setup kafka
	$(BIN)/python -m producers.demo

bench: setup kafka
	$(BIN)/python -m pip install -q -e '.[bench]'
	@set -e; for script in bench/*.py; do \
		echo "== $$script"; $(BIN)/python $$script; \
	done

clean:
	-$(BIN)/pipeline infra down
	rm -rf .state .pytest_cache .mypy_cache .ruff_cache
