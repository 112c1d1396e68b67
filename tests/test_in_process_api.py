"""dag.test()'s tasks share one in-process Execution API per test process, on every Airflow we support."""

from __future__ import annotations

from pathlib import Path

from tests.support import in_process_api


def test_every_task_of_a_process_is_served_by_one_in_process_api(airflow_db: Path) -> None:
    # Airflow 3.1 built a new app (about 2 s) and a new event-loop thread for each task: the floor's
    # dag.test() runs took about three times as long as on 3.3.2.
    from airflow.sdk.execution_time import supervisor

    assert supervisor.in_process_api_server() is supervisor.in_process_api_server()
    # Once shared (by Airflow or by the fixture), sharing again changes nothing.
    assert in_process_api.share_one_per_process() is False
