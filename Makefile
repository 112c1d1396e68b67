# Every target builds its own virtual environment from the committed uv.lock; nothing installed by hand counts.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
BIN := $(VENV)/bin
# The oldest Airflow we support (the floor in pyproject.toml), in a venv of its own from the same lock.
FLOOR_VENV := .venv-floor

.PHONY: help venv floor-venv test test-floor lint typecheck unit demo emulator bench clean

help:
	@echo "make demo      run the example DAGs end to end against the local Akool emulator"
	@echo "make test      lint, type-check and run the whole test suite"
	@echo "make emulator  serve the Akool emulator on http://127.0.0.1:8765"

$(VENV)/.synced: uv.lock pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked
	@touch $@

$(FLOOR_VENV)/.synced: uv.lock pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	UV_PROJECT_ENVIRONMENT=$(FLOOR_VENV) $(UV) sync --locked --no-default-groups --group dev --group airflow-floor
	@touch $@

venv: $(VENV)/.synced

floor-venv: $(FLOOR_VENV)/.synced

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -m "not e2e"

test: lint typecheck
	$(BIN)/pytest

# The same suite on the oldest Airflow we support.
test-floor: floor-venv
	$(FLOOR_VENV)/bin/pytest

demo: venv
	$(BIN)/python scripts/demo.py

emulator: venv
	$(BIN)/python -m airflow_provider_akool.emulator

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .pytest_cache .mypy_cache .ruff_cache demo-output
