# Every target builds its own virtual environment from the committed uv.lock; nothing installed by hand counts.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
BIN := $(VENV)/bin
# The oldest Airflow we support (the floor in pyproject.toml), in a venv of its own from the same lock.
FLOOR_VENV := .venv-floor
# Test processes for the suites that start no Airflow stack (pytest-xdist; each module stays on one process,
# as its module fixtures run DAGs once for all its tests). They mostly wait on sockets and subprocesses, so
# more processes than cores pay: docs/testing.md has the figures.
WORKERS ?= 4
XDIST := -n $(WORKERS) --dist loadfile
# Runs a part of the suite and records its minutes for the table at the end (docs/testing.md).
TIMED := $(PYTHON) scripts/timed.py
REPORTS := .reports
UNIT := -m "not e2e and not distributed"

.PHONY: help venv floor-venv test test-fast test-distributed test-floor test-under-load lint typecheck deps-check \
	package-check checks unit e2e floor-unit floor-e2e demo emulator bench clean

help:
	@echo "make demo      run the example DAGs end to end against the local Akool emulator"
	@echo "make test      lint, type-check and run the whole test suite, then print each part's minutes"
	@echo "make test-fast lint and the unit tests (a few minutes): the inner loop"
	@echo "make emulator  serve the Akool emulator on http://127.0.0.1:8765"
	@echo "make airflow   run Airflow (UI, scheduler, triggerer) with the example DAGs against the emulator"
	@echo "make airflow ARGS=--celery   the same on PostgreSQL, Redis, Celery (two workers), two triggerers"

# uv's options for the sync: `make demo` sets --quiet (a new user's first command: its own summary, not uv's
# list of a few hundred packages, is what they should read; uv still prints errors).
UV_SYNC_FLAGS ?=

$(VENV)/.synced: uv.lock pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked $(UV_SYNC_FLAGS)
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

# Against the newest Airflow and the floor: the two have different stubs (3.1 types the model's fields as
# columns and lacks some names).
typecheck: venv floor-venv
	$(BIN)/mypy
	$(FLOOR_VENV)/bin/mypy

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

checks: lint typecheck deps-check package-check

# Every test that starts no Airflow stack, on $(WORKERS) processes.
unit: venv
	$(BIN)/pytest $(XDIST) $(UNIT)

# The inner loop: lint and the unit tests.
test-fast: lint unit

# The e2e suite on the single-machine stack (the browser tests too): one process, one stack at a time.
e2e: venv browser-deps
	@mkdir -p $(REPORTS)
	$(BIN)/pytest -m "e2e and not distributed" --junitxml=$(REPORTS)/e2e.xml

# Everything, part by part, each timed: the checks, the unit tests, the e2e suite (the browser's share
# reported apart), then the distributed suite on its own stack. Prints the table of docs/testing.md.
test: venv floor-venv browser-deps distributed-deps
	@$(TIMED) --reset
	@$(TIMED) "lint/type/deps/package" -- $(MAKE) --no-print-directory checks
	@$(TIMED) unit -- $(MAKE) --no-print-directory unit
	@$(TIMED) e2e --junit $(REPORTS)/e2e.xml --split tests/e2e/test_browser.py=browser -- \
		$(MAKE) --no-print-directory e2e
	@$(TIMED) distributed -- $(MAKE) --no-print-directory test-distributed
	@$(TIMED) --table

# The distributed suite alone (-m distributed, tests/e2e/distributed/: PostgreSQL, Redis, Celery with two
# workers, two triggerers; about 7 minutes on two cores). `make test` runs it too.
test-distributed: venv distributed-deps
	$(BIN)/pytest -m distributed

# The suite on the oldest Airflow we support, but the distributed suite (the floor venv has no Celery
# provider or PostgreSQL driver: the newest Airflow proves that stack) and the tests marked
# airflow_independent: those that reach no part of Airflow that differs between versions (tests/floor.py
# decides from their imports and fixtures; tests/test_floor.py keeps the rule honest). They run in make test.
# One timed part; .ci/run passes PARTS_KEEP=1 so that its table has make test's parts too.
test-floor: floor-venv browser-deps
	@[ -n "$(PARTS_KEEP)" ] || $(TIMED) --reset
	@$(TIMED) floor -- $(MAKE) --no-print-directory floor-unit floor-e2e
	@$(TIMED) --table

floor-unit: floor-venv
	$(FLOOR_VENV)/bin/pytest $(XDIST) -m "not e2e and not distributed and not airflow_independent"

floor-e2e: floor-venv browser-deps
	$(FLOOR_VENV)/bin/pytest -m "e2e and not distributed and not airflow_independent"

# The unit suite three times in a row while two other processes keep both cores busy: no test may depend on
# how fast the machine is (docs/testing.md). Prints each run's outcome and minutes; not part of CI.
test-under-load: venv
	$(BIN)/python scripts/under_load.py --runs 3 -- $(BIN)/pytest $(XDIST) $(UNIT) -q -p no:cacheprovider

# Target-specific, so it reaches the venv step that demo depends on.
demo: UV_SYNC_FLAGS = --quiet
demo: venv
	$(BIN)/python scripts/demo.py

emulator: venv
	$(BIN)/python -m airflow_provider_akool.emulator

# Trigger waits at N = 100, 1000, 5000 with the shared poller and without, import times, keeping a 300 MB
# result: prints the tables and the targets, writes benchmarks/results.json. See docs/performance.md.
bench: venv
	$(BIN)/python benchmarks/run_all.py --json benchmarks/results.json

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .pytest_cache .mypy_cache .ruff_cache demo-output $(REPORTS)

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
	AKOOL_SCREENSHOT_DIR=$(CURDIR)/docs/images $(BIN)/pytest tests/e2e/test_browser.py \
		tests/e2e/test_browser_review.py -m e2e

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
