# Every target builds its own virtual environment from the committed uv.lock; nothing installed by hand counts.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
BIN := $(VENV)/bin
# The oldest Airflow we support (the floor in pyproject.toml), in a venv of its own from the same lock.
FLOOR_VENV := .venv-floor

.PHONY: help venv floor-venv test test-distributed test-floor lint typecheck deps-check package-check unit demo emulator bench clean

help:
	@echo "make demo      run the example DAGs end to end against the local Akool emulator"
	@echo "make test      lint, type-check and run the whole test suite"
	@echo "make emulator  serve the Akool emulator on http://127.0.0.1:8765"
	@echo "make airflow   run Airflow (UI, scheduler, triggerer) with the example DAGs against the emulator"
	@echo "make airflow ARGS=--celery   the same on PostgreSQL, Redis, Celery (two workers), two triggerers"

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

# Every import of the shipped package is a declared dependency, and the provider outside emulator/ imports
# nothing that only the emulator extra installs (see [tool.deptry] in pyproject.toml).
deps-check: venv
	$(BIN)/deptry airflow_provider_akool
	$(BIN)/deptry airflow_provider_akool --extend-exclude 'airflow_provider_akool/emulator' \
		--optional-dependencies-dev-groups emulator

# Build the sdist and wheel, twine-check them and their contents, install the wheel[emulator] with uv.lock's
# newest Airflow into a fresh venv, and from there: airflow providers list, import every class the provider
# info names, run dags/akool_image_reage.py against the emulator. About 50 s. See scripts/package_check.py.
package-check: venv
	PYTHON=$(PYTHON) $(BIN)/python scripts/package_check.py

unit: venv
	$(BIN)/pytest -m "not e2e and not distributed"

# Everything: unit and the e2e suite on the single-machine stack (the browser too), then the distributed suite
# on its own stack (a second pytest run: one stack at a time on two cores).
test: lint typecheck deps-check package-check browser-deps distributed-deps
	$(BIN)/pytest -m "not distributed"
	$(BIN)/pytest -m distributed

# The distributed suite alone (-m distributed, tests/e2e/distributed/: PostgreSQL, Redis, Celery with two
# workers, two triggerers; about 7 minutes on two cores). `make test` runs it too.
test-distributed: venv distributed-deps
	$(BIN)/pytest -m distributed

# The suite on the oldest Airflow we support, but the distributed suite (the floor venv has no Celery
# provider or PostgreSQL driver: the newest Airflow proves that stack) and the tests marked
# airflow_independent (the emulator, property tests, webhook crypto, make demo: see tests/conftest.py),
# which do not depend on the Airflow version and run in make test.
test-floor: floor-venv
	$(FLOOR_VENV)/bin/pytest -m "not distributed and not airflow_independent"

demo: venv
	$(BIN)/python scripts/demo.py

emulator: venv
	$(BIN)/python -m airflow_provider_akool.emulator

# Trigger waits at N = 100, 1000, 5000 with the shared poller and without, import times, keeping a 300 MB
# result: prints the tables and the targets, writes benchmarks/results.json. See docs/performance.md.
bench: venv
	$(BIN)/python benchmarks/run_all.py --json benchmarks/results.json

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .pytest_cache .mypy_cache .ruff_cache demo-output

# Airflow's API server, scheduler, triggerer and DAG processor plus the emulator, all on 127.0.0.1, with the
# example DAGs and an akool_default connection; prints the URL and the login; Ctrl-C stops everything.
# See docs/airflow-stack.md. Options through ARGS, e.g. make airflow ARGS="--fresh --port 9090".
.PHONY: airflow airflow-figures browser-deps distributed-deps screenshots
airflow: venv
	$(BIN)/python -m tests.stack $(ARGS)

# How long `make airflow` takes to start (fresh home, then again with the same home) and how much memory the
# stack takes, idle and while every example DAG runs: prints the figures of docs/airflow-stack.md, the one
# place that states them. About 3 minutes; ARGS=--celery measures `make airflow ARGS=--celery` too (3 more).
# Run it alone (here: flock /tmp/akool-heavy.lock make airflow-figures). See scripts/stack_figures.py.
airflow-figures: venv
	$(BIN)/python scripts/stack_figures.py $(ARGS)

# PostgreSQL and Redis for make airflow ARGS=--celery and the distributed tests: Debian's packages, installed
# with apt where missing (only the programs: the stack runs them itself). Where apt cannot be used the
# distributed tests skip, loudly.
distributed-deps: venv
	@if ! $(BIN)/python -m tests.stack --install-deps; then \
		echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
		echo "!!! postgresql or redis-server is missing and apt-get could not install it (not root, or no !!!"; \
		echo "!!! apt): the distributed tests in tests/e2e/distributed/ will be SKIPPED. Install them.    !!!"; \
		echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	fi

# Refresh the README's screenshots from a real stack (the browser tests, writing into docs/images/).
screenshots: venv browser-deps
	AKOOL_SCREENSHOT_DIR=$(CURDIR)/docs/images $(BIN)/pytest tests/e2e/test_browser.py -m e2e

# The browser tests drive Debian's Chromium (Playwright's own browser download does not work here).
# Where apt cannot be used they skip, loudly.
browser-deps:
	@if [ -x /usr/bin/chromium ]; then \
		echo "chromium: $$(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
		&& apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; then \
		echo "chromium installed: $$(/usr/bin/chromium --version 2>/dev/null)"; \
	else \
		echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
		echo "!!! /usr/bin/chromium is missing and apt-get could not install it (not root, or no apt):    !!!"; \
		echo "!!! the browser tests in tests/e2e/test_browser.py will be SKIPPED. Install Debian's chromium. !!!"; \
		echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	fi
