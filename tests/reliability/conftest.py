"""
Shared pieces of the reliability suite: the Airflow version (some guarantees need 3.3), a connection to the
session's emulator for module-scoped DAG runs, and the questions every case asks the emulator's ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
from packaging.version import Version

from tests.conftest import API_KEY

#: The Airflow under test: ``task_state_store`` (crash safety) and trigger ``on_kill`` need 3.3.
AIRFLOW_VERSION: tuple[int, ...] = Version(version("apache-airflow")).release
HAS_TASK_STATE_STORE = AIRFLOW_VERSION >= (3, 3)

SUBMIT_ENDPOINTS = ("imgreage", "vidreage", "bg_replace")
QUEUED, PROCESSING, SUCCESS, FAILED = 1, 2, 3, 4


@pytest.fixture(scope="module")
def module_emulator(emulator: Any, airflow_db: Any) -> Iterator[Any]:
    """The emulator, reset, with ``akool_default`` pointing at it, for DAG runs shared by a module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "AIRFLOW_CONN_AKOOL_DEFAULT",
            json.dumps({"conn_type": "akool", "host": emulator.url, "password": API_KEY}),
        )
        emulator.client.reset()
        yield emulator
        emulator.client.reset()


def submissions(ledger: dict[str, Any]) -> int:
    """How many submit requests reached the emulator (faulted or not)."""
    counts: dict[str, int] = ledger["counts"]
    return sum(counts[endpoint] for endpoint in SUBMIT_ENDPOINTS)


def running_jobs(ledger: dict[str, Any]) -> list[str]:
    """The ids of the jobs still queued or processing on the emulator: what would still be billed."""
    return [akool_id for akool_id, job in ledger["jobs"].items() if job["status"] in (QUEUED, PROCESSING)]
