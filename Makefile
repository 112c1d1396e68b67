# Every target builds its own virtual environment from the committed uv.lock; nothing installed by hand counts.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help venv test lint typecheck unit demo emulator bench clean

help:
	@echo "make demo      run the example DAGs end to end against the local Akool emulator"
	@echo "make test      lint, type-check and run the whole test suite"
	@echo "make emulator  serve the Akool emulator on http://127.0.0.1:8765"

$(VENV)/.synced: uv.lock pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --locked
	@touch $@

venv: $(VENV)/.synced

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -m "not e2e"

test: lint typecheck
	$(BIN)/pytest

demo: venv
	$(BIN)/python scripts/demo.py

emulator: venv
	$(BIN)/python -m airflow_provider_akool.emulator

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-output
