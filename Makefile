# Edge: the two front-door commands. Both bootstrap what they need on a fresh machine.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: run test lint bootstrap bench scale faults clean

bootstrap:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --user --quiet uv
	@$(UV) sync --frozen --quiet

## Start the whole stack on this machine (embedded NATS, S3 store and SQLite).
run: bootstrap
	@$(UV) run --frozen edge-run

## Run every test (lint and type check first).
test: bootstrap lint
	@$(UV) run --frozen pytest

lint: bootstrap
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .
	@$(UV) run --frozen mypy -p edge_core -p edge_embedded -p edge_sql -p edge_testing -p edge_receiver -p edge_registry -p edge_uploader -p edge_monitor

bench: bootstrap
	@$(UV) run --frozen python bench/run.py $(ARGS)

## Several processes of each service on a three-node NATS cluster and PostgreSQL: instances/s
## with 1 and 2 receivers and uploaders, time to recover from kills (into bench/RESULTS.md).
scale: bootstrap
	@$(UV) run --frozen python bench/scale.py $(ARGS)

## Crash and outage accounting: every fault, more images, longer fuzzing; prints the tables.
## EDGE_FAULTS (all, or names such as receiver,nats), EDGE_FAULTS_IMAGES and
## EDGE_FUZZ_EXAMPLES change how much is done.
faults: bootstrap
	@EDGE_FAULTS=$${EDGE_FAULTS:-all} EDGE_FAULTS_IMAGES=$${EDGE_FAULTS_IMAGES:-100} \
	EDGE_FUZZ_EXAMPLES=$${EDGE_FUZZ_EXAMPLES:-300} $(UV) run --frozen pytest -p no:cacheprovider \
	    tests/faults services/receiver/tests/test_fuzz.py \
	    services/registry/tests/test_api_fuzz.py services/monitor/tests/test_api_fuzz.py

clean:
	rm -rf var .pytest_cache
