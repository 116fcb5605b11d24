# The two set-up commands: `make dev` runs the whole system, `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test schema bench lock

# (Re)create the virtualenv and install the project whenever its dependencies change.
# constraints.txt pins the versions the test suite last passed with (refresh: `make lock`).
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -c constraints.txt
	touch $@

## Re-pin constraints.txt to the newest releases pyproject.toml allows (then run `make test`).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e '.[test]'
	.lock-venv/bin/python -m pip freeze --exclude-editable > constraints.txt
	rm -rf .lock-venv

## Start API + web app + worker (+ bot with TELEGRAM_BOT_TOKEN) on embedded servers with demo data.
dev: $(VENV)/.installed
	$(BIN)/unified-sessions dev

## Lint, format check, type check and the whole test suite.
test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

## Regenerate schema.graphql from the code.
schema: $(VENV)/.installed
	$(BIN)/python -m graphql_api.schema.export

## Print the speed figures: the hot GraphQL operations beside a raw Starlette + asyncpg endpoint,
## under wrk (/usr/bin/wrk). On BENCH_DATABASE_URL's PostgreSQL (its data is kept and reused in
## the database us_bench_3m), else an embedded one. BENCH_ARGS: e.g. --duration 20 --only Q1.
bench: $(VENV)/.installed
	BENCH_DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python scripts/bench.py $(BENCH_ARGS)
