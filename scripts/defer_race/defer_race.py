"""The DAG of docs/webhooks.md's upstream reproduction: 50 tasks whose trigger fires as soon as it runs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import BaseOperator, dag


class DeferAndReturn(BaseOperator):
    def execute(self, context: Any) -> None:
        # Fires at once: the moment is already past.
        self.defer(
            trigger=DateTimeTrigger(moment=datetime.now(timezone.utc) - timedelta(seconds=1)),
            method_name="done",
        )

    def done(self, context: Any, event: Any = None) -> str:
        return "resumed"


@dag(schedule=None, start_date=datetime(2026, 1, 1))
def defer_race() -> None:
    for i in range(50):
        DeferAndReturn(task_id=f"t{i}")


defer_race()
