"""
Airflow's own auth manager and JWTs for the tests of the Akool views (tests/plugins/test_views.py and
tests/kinds/test_kinds.py): :class:`HidesOneDag`, the ``auth`` fixture that sets it up as the API server does,
and :func:`token`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

OPEN_DAG = "akool_views_open"
HIDDEN_DAG = "akool_views_hidden"


class HidesOneDag(SimpleAuthManager):
    """
    Airflow's simple auth manager, but the ``viewer`` may not read :data:`HIDDEN_DAG`, and ``scoped`` may read
    only :data:`OPEN_DAG` (other tests of the session leave Akool jobs in the same database);
    ``no_xcom`` may read every DAG and its task instances but no XCom, and ``no_ti`` every DAG but no task
    instance.
    """

    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

        if user.get_name() == "viewer" and details is not None and details.id == HIDDEN_DAG:
            return False
        if user.get_name() == "scoped" and (details is None or details.id != OPEN_DAG):
            return False
        if user.get_name() == "no_xcom" and access_entity == DagAccessEntity.XCOM:
            return False
        if user.get_name() == "no_ti" and access_entity == DagAccessEntity.TASK_INSTANCE:
            return False
        return bool(
            super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
        )


@pytest.fixture(scope="module")
def auth() -> Iterator[Any]:
    """Airflow's auth manager, set up as the API server does, with :class:`HidesOneDag`."""
    from airflow.api_fastapi import app as api_app

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__CORE__AUTH_MANAGER", f"{HidesOneDag.__module__}.HidesOneDag")
        patch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "akool-views-test-secret-" + "x" * 64)
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer")
        manager = api_app.init_auth_manager()
        try:
            yield manager
        finally:
            api_app.purge_cached_app()


def token(auth: Any, name: str, role: str = "viewer", seconds: int = 3600) -> str:
    return str(
        auth.generate_jwt(SimpleAuthManagerUser(username=name, role=role), expiration_time_in_seconds=seconds)
    )
