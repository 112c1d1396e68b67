"""Stand-ins for what ``execute()`` gets outside a DAG run: a task instance, the task state store (3.3)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.support.waiting import wait_until


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


def kill_while_waiting(
    operator: Any, polls: Callable[[], int]
) -> tuple[StubTaskInstance, list[BaseException], threading.Thread]:
    """
    Run ``operator.execute`` in a thread and call ``on_kill`` once ``polls()`` counts two status requests;
    return the task instance, the list ``execute``'s error lands in, and the thread (in Airflow the process
    ends after ``on_kill``; here the wait goes on and sees the cancelled job: join it, then read the list).
    """
    ti = StubTaskInstance()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            operator.execute({"ti": ti})
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    wait_until(lambda: polls() >= 2)
    operator.on_kill()
    return ti, outcome, worker
