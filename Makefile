# Edge: the two front-door commands. Both bootstrap what they need on a fresh machine.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: run test lint bootstrap bench scale clean

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

clean:
	rm -rf var .pytest_cache
