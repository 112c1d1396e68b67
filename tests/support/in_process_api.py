"""
One in-process Execution API per test process, on an Airflow that builds one per task.

``dag.test()`` runs each task against an Execution API served in the test's own process. Airflow 3.1 builds
a new one for every task (``airflow.sdk.execution_time.supervisor.in_process_api_server``): the whole FastAPI
app with its versioned routes, about two seconds of CPU on this machine, and an a2wsgi event-loop thread that
is never stopped. Later Airflow (3.3.2 here) keeps one per process with ``functools.lru_cache(maxsize=1)``.
On the floor that rebuild was most of a ``dag.test()`` run: a DAG of sixteen tasks that each fail before any
request took 41 s on 3.1.8 against 2.3 s on 3.3.2. :func:`share_one_per_process` does what later Airflow
does, and nothing where Airflow already does it; the app, its routes and the tasks' calls are Airflow's own.
"""

from __future__ import annotations

import functools


def share_one_per_process() -> bool:
    """Cache ``in_process_api_server`` as later Airflow does; True if this Airflow needed it."""
    from airflow.sdk.execution_time import supervisor

    build = supervisor.in_process_api_server
    if hasattr(build, "cache_clear"):
        return False
    supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(build)  # type: ignore[assignment]
    return True
