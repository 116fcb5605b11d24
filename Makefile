# The two set-up commands: `make dev` runs the whole system, `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test schema bench

# (Re)create the virtualenv and install the project whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

## Start API + web app + worker (+ bot with TELEGRAM_BOT_TOKEN) on embedded servers with demo data.
dev: $(VENV)/.installed
	$(BIN)/unified-sessions dev

## Lint, format check and the whole test suite.
test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

## Regenerate schema.graphql from the code.
schema: $(VENV)/.installed
	$(BIN)/python -m graphql_api.schema.export

## Print the speed figures (needs a running PostgreSQL: TEST_DATABASE_URL, else embedded).
bench: $(VENV)/.installed
	$(BIN)/python scripts/bench.py
