"""
The DAG of ``tests/e2e/test_crash.py``: an image reage that waits in its worker (not deferred) and may be
retried once, so that a test can kill the worker's task process in the middle of the wait.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag

from airflow_provider_akool.operators.reage import AkoolImageReageOperator

MEDIA = os.environ.get("AKOOL_DEMO_MEDIA_BASE_URL", "http://127.0.0.1:8765/media/samples/").rstrip("/") + "/"


@dag(dag_id="reliability_crash_resume", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def reliability_crash_resume() -> None:
    AkoolImageReageOperator(
        task_id="reage",
        modify_image=f"{MEDIA}portrait.jpg",
        face_reage=5,
        target_image=[{"path": f"{MEDIA}portrait.jpg", "opts": "1,2:3,4:5,6:7,8"}],
        deferrable=False,
        poll_interval=1.0,
        timeout=600,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )


reliability_crash_resume()
