"""
Akool results in the Airflow UI (Airflow 3.1+): the "Akool" tab on each task instance and the "Akool" page.

Airflow loads plugins in every component (workers, triggerer, scheduler), but only the API server mounts
their FastAPI apps: the app (``views_app.py``, FastAPI and the database queries) is imported when the API
server asks for ``fastapi_apps``, so a task never pays for it. See ``views_app.py`` for what the views show
and how each route checks its caller.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

# The webhook receiver has a prefix of its own (/akool-webhook): a mount takes every path under its prefix.
URL_PREFIX = "/akool"


class _AppsOnDemand:
    """``fastapi_apps``, built when read (by the API server), on the class as on an instance."""

    def __get__(self, instance: object, owner: type | None = None) -> list[dict[str, Any]]:
        from airflow_provider_akool.plugins.views_app import app

        return [{"app": app, "url_prefix": URL_PREFIX, "name": "Akool results"}]


class AkoolViewsPlugin(AirflowPlugin):
    """The "Akool" task-instance tab and the "Akool" page (Browse), on Airflow 3.1+."""

    name = "akool_views"
    fastapi_apps = _AppsOnDemand()
    external_views = [
        {
            "name": "Akool",
            "href": f"{URL_PREFIX}/task/{{DAG_ID}}/{{RUN_ID}}/{{TASK_ID}}/{{MAP_INDEX}}",
            "destination": "task_instance",
            "url_route": "akool_result",
        },
        {
            "name": "Akool",
            "href": f"{URL_PREFIX}/jobs",
            "destination": "nav",
            "category": "browse",
            "url_route": "akool_jobs",
        },
    ]
