# The two commands a fresh machine needs are `make setup` and `make test`
# (README, CONTRIBUTING.md). Everything else builds on them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup kafka postgres browser db test test-full state-full-size test-confluent unit integration lint check-rules demo bench docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Resolve the Kafka jars through Maven (cached in ~/.m2 after the first run).
kafka: setup
	$(BIN)/pipeline infra fetch

# PostgreSQL from Debian's packages, installed when missing.
postgres:
	@command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
		echo "installing PostgreSQL from Debian's packages"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q postgresql; }

# Chromium from Debian's packages for the console's browser tests (driven by
# Playwright through its executable, so no browser download), installed when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium from Debian's packages"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

# The project's PostgreSQL cluster under .state/postgres, on a free loopback
# port, with the migrations applied. `pipeline db down` (or `make clean`) stops it.
db: setup postgres
	$(BIN)/pipeline db up
	PIPELINE_DATABASE_URL=$$($(BIN)/pipeline db url) $(BIN)/pipeline db migrate

# The runtime, producer, replay and example-pipeline integration tests that
# depend on the client (marked both_clients) run once more on confluent-kafka;
# the rest of the suite runs on aiokafka, the default, and the contract suite
# on both in the first pass. `make test` leaves the longest (marked long: the
# 215k-record backfill, the demo, the redrive, a rolling restart, the table's
# catch-up, an interrupted replay, three replicas in key order, a copy replay,
# exactly-once through a SIGKILL) out of the confluent pass to stay within 25 minutes;
# `make test-confluent` runs them all.
CONFLUENT_TESTS := tests/integration/test_runtime.py \
	tests/integration/test_producer.py tests/integration/test_replay.py \
	tests/integration/test_example_pipeline.py

test: setup kafka db browser
	POSTGRES_URL=$$($(BIN)/pipeline db url) $(BIN)/python -m pytest --durations=10 -m 'not full_size'
	PIPELINE_CLIENT=confluent POSTGRES_URL=$$($(BIN)/pipeline db url) \
		$(BIN)/python -m pytest --durations=5 -m 'both_clients and not long and not full_size' \
		$(CONFLUENT_TESTS)

# What `make test` leaves out (marked full_size), each with a shorter version in it: the
# queue test at issue 46's 20,000 records (4,000), the poison test on the confluent client
# too (aiokafka), the chaos retention scenario (the other faults), the fresh-cluster
# commands (also `python -m tests.integration.fresh_cluster`), the gateway's contract fuzz
# at 300 examples per route (30). Without a shorter version: a queue replica frozen past
# its record lock, a queue's broker going away. About 11 minutes.
test-full: setup kafka db
	POSTGRES_URL=$$($(BIN)/pipeline db url) $(BIN)/python -m pytest --durations=10 -s -m full_size

# The state process tests at the size issue 44 names (100,000 events), on both clients:
# a command, not part of `make test` (about 10 minutes).
state-full-size: setup kafka
	STATE_TEST_EVENTS=100000 $(BIN)/python -m pytest -s tests/integration/test_state.py
	STATE_TEST_EVENTS=100000 PIPELINE_CLIENT=confluent $(BIN)/python -m pytest -s \
		tests/integration/test_state.py -m both_clients

test-confluent: setup kafka db
	PIPELINE_CLIENT=confluent POSTGRES_URL=$$($(BIN)/pipeline db url) \
		$(BIN)/python -m pytest --durations=5 -m both_clients $(CONFLUENT_TESTS)

unit: setup
	$(BIN)/python -m pytest tests/unit tests/contract -m 'not integration'

integration: setup kafka db browser
	POSTGRES_URL=$$($(BIN)/pipeline db url) $(BIN)/python -m pytest tests/integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# promtool, built from the Go module proxy into .state/tools (a few minutes the
# first time, cached after): checks the Prometheus config and alert rules and
# runs the alerts' unit tests (infra/prometheus/alerts_test.yml).
PROMETHEUS_VERSION := v0.316.0
PROMTOOL := .state/tools/promtool-$(PROMETHEUS_VERSION)

$(PROMTOOL):
	@mkdir -p .state/tools
	GOBIN=$(abspath .state/tools/bin) go install github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_VERSION)
	mv .state/tools/bin/promtool $(PROMTOOL)

check-rules: $(PROMTOOL)
	$(PROMTOOL) check config infra/prometheus/prometheus.yml
	cd infra/prometheus && $(abspath $(PROMTOOL)) test rules alerts_test.yml

# The documentation site (MkDocs, Material theme) into .state/site, with --strict: a broken
# link or a reference to a name that is gone fails the build. Its tools live in a venv of
# their own (.state/docs-venv), so their pins never move the product's; the CLI and
# settings pages are generated from the code first (docs/generate.py).
DOCS_VENV := .state/docs-venv
DOCS_STAMP := $(DOCS_VENV)/.installed

$(DOCS_STAMP):
	@test -x $(DOCS_VENV)/bin/python || $(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -m pip install -q 'mkdocs-material>=9.5,<10' 'mkdocstrings[python]>=0.26,<2'
	@touch $(DOCS_STAMP)

docs: setup $(DOCS_STAMP)
	$(BIN)/python docs/generate.py docs/reference
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs build --strict --quiet

demo: setup kafka postgres
	$(BIN)/python -m producers.demo

# The peers' packages go into a venv of their own on first use (bench/peers/environment.py),
# so that their pins never change the product's client versions.
bench: setup kafka postgres
	$(BIN)/python -m pip install -q -e '.[bench]'
	@set -e; for script in bench/*.py; do \
		echo "== $$script"; $(BIN)/python $$script; \
	done

clean:
	-$(BIN)/pipeline infra down
	-$(BIN)/pipeline db down
	rm -rf .state .pytest_cache .mypy_cache .ruff_cache
