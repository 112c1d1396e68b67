"""
Shared pieces of the reliability suite: the Airflow version (some guarantees need 3.3), a connection to the
session's emulator for module-scoped DAG runs, and the questions every case asks the emulator's ledger.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from packaging.version import Version

#: The Airflow under test: ``task_state_store`` (crash safety) and trigger ``on_kill`` need 3.3.
AIRFLOW_VERSION: tuple[int, ...] = Version(version("apache-airflow")).release
HAS_TASK_STATE_STORE = AIRFLOW_VERSION >= (3, 3)

SUBMIT_ENDPOINTS = ("imgreage", "vidreage", "bg_replace")
QUEUED, PROCESSING, SUCCESS, FAILED = 1, 2, 3, 4


def submissions(ledger: dict[str, Any]) -> int:
    """How many submit requests reached the emulator (faulted or not)."""
    counts: dict[str, int] = ledger["counts"]
    return sum(counts[endpoint] for endpoint in SUBMIT_ENDPOINTS)


def running_jobs(ledger: dict[str, Any]) -> list[str]:
    """The ids of the jobs still queued or processing on the emulator: what would still be billed."""
    return [akool_id for akool_id, job in ledger["jobs"].items() if job["status"] in (QUEUED, PROCESSING)]
