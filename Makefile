# triage: the two commands that matter are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test check bench lint fmt clean

## Start triage (web + Celery worker + beat) with embedded PostgreSQL/Redis unless configured.
run: $(VENV)/.dev-installed
	$(BIN)/python -m triage.devstack run

## Lint, type-check and run the whole test suite against real PostgreSQL and Redis.
test: $(VENV)/.test-installed
	$(BIN)/python -m triage.devstack test $(ARGS)

## The everyday loop: lint, type-check and the tests that start no extra process.
check: $(VENV)/.test-installed
	$(BIN)/python -m triage.devstack check

## Run every benchmark in bench/ and print one table.
bench: $(VENV)/.test-installed
	$(BIN)/python -m triage.devstack bench

lint: $(VENV)/.test-installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

fmt: $(VENV)/.test-installed
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "triage needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.dev-installed: $(BIN)/python requirements/base.txt requirements/dev.txt
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	touch $@

$(VENV)/.test-installed: $(BIN)/python requirements/base.txt requirements/dev.txt requirements/test.txt requirements/deploy-test.txt
	$(BIN)/python -m pip install --quiet -r requirements/test.txt
	touch $@ $(VENV)/.dev-installed

clean:
	rm -rf $(VENV) staticfiles .coverage htmlcov .mypy_cache .ruff_cache .pytest_cache
