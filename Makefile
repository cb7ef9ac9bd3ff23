# `make run` and `make test` set everything up on a fresh machine; both are quick once it is done.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One stamp per requirements set: `make run` installs what the service needs, `make test` adds the
# linters, the test tools and the optional Dask extra (its tests run against a real LocalCluster).
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

.PHONY: run test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(DEV): $(RUNTIME) requirements-dev.txt requirements-dask.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -r requirements-dask.txt
	touch $@

run: $(RUNTIME)
	$(BIN)/python main.py

test: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(DEV)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/web_load.py
	$(BIN)/python bench/dask.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
