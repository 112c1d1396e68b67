"""
``airflow db migrate`` that writes its audit-log row after the migration, not before it:
``python -m tests.stack.migrate``, what the stack runs before it starts any other Airflow process.

Airflow's CLI inserts a row into the ``log`` table before every command it runs (``cli_action_loggers``'
``default_action_log``). On a new database that table does not exist until the migration creates it: the
insert fails, Airflow ignores the failure and loses the row, and PostgreSQL logs
``ERROR: relation "log" does not exist`` at every first start of the ``--celery`` stack. Here the same row is
written once the command has finished, so the first migration is in the audit log too and no query of it
fails.

With a database result backend (the ``--celery`` stack's), Celery's own tables are made here too, once. Left
to Celery, every worker and the scheduler make them on first use, at the same moment: PostgreSQL refuses all
but one ``CREATE SEQUENCE task_id_sequence`` (``ERROR: duplicate key value violates unique constraint``), and
Celery retries until the tables exist. Nothing is lost, but the database logs an error at every first start.
"""

from __future__ import annotations

import sys
from typing import Any

MIGRATE = ["db", "migrate"]


def audit_after_the_command() -> bool:
    """Have the CLI write its audit-log row after the command, not before; False if Airflow has none."""
    from airflow.utils import cli_action_loggers

    # The module's own list (no public way to take a callback out); an Airflow without it keeps its order.
    before: list[Any] | None = getattr(cli_action_loggers, "__pre_exec_callbacks", None)
    audit = getattr(cli_action_loggers, "default_action_log", None)
    if before is None or audit not in before:
        return False
    before.remove(audit)
    cli_action_loggers.register_post_exec_callback(audit)
    return True


def create_celery_result_tables() -> bool:
    """Make Celery's result tables when its result backend is a database; False when it is not one."""
    from airflow.configuration import conf

    executor = conf.get("core", "executor", fallback="")
    backend = conf.get("celery", "result_backend", fallback="") if "Celery" in executor else ""
    if not backend.startswith("db+"):
        return False
    # Airflow's own Celery app: the table names and engine options the workers will use.
    from airflow.providers.celery.executors.celery_executor_utils import app

    app.backend.ResultSession().close()
    return True


def main() -> None:
    """Run ``airflow db migrate`` with the audit-log row written at its end, then make Celery's tables."""
    # airflow.__main__ first: it imports Airflow's configuration before anything else of Airflow.
    from airflow.__main__ import main as airflow_main

    audit_after_the_command()
    sys.argv = ["airflow", *MIGRATE]
    airflow_main()
    create_celery_result_tables()


if __name__ == "__main__":
    main()
