"""Stand-ins for what ``execute()`` gets outside a DAG run: a task instance, the task state store (3.3)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any


class StubTaskInstance:
    """Just enough of a task instance for ``execute()`` outside a DAG run: it keeps what is pushed."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class FakeTaskStateStore:
    """``context["task_state_store"]`` in memory: what the task runner hands a task on Airflow 3.3."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


class RetryTaskInstance:
    """Just enough of a task instance for the mixin: XCom pushes, stats tags and a try number."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}
        self.stats_tags: dict[str, str] = {}
        self.try_number = 2

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def record_of(akool_id: str, job_id: str | None, *, age: float = 1.0) -> dict[str, Any]:
    """Return a ``task_state_store`` job record as the released version wrote it, ``age`` seconds old."""
    return {
        "id": akool_id,
        "job_id": job_id,
        "url": None,
        "submitted_at": time.time() - age,
        "kind": "reage",
    }
