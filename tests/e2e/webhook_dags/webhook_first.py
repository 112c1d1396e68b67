"""
The DAG of ``tests/e2e/test_webhooks.py``: deferrable image reages that Akool's callbacks complete
(``webhook_url="airflow"``), with a poll interval short enough that any poll would show in the ledger.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import dag

from airflow_provider_akool.operators.reage import AkoolImageReageOperator

MEDIA = os.environ.get("AKOOL_DEMO_MEDIA_BASE_URL", "http://127.0.0.1:8765/media/samples/").rstrip("/") + "/"
TASKS = 6


@dag(dag_id="webhook_first", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def webhook_first() -> None:
    for index in range(TASKS):
        AkoolImageReageOperator(
            task_id=f"reage_{index}",
            modify_image=f"{MEDIA}portrait.jpg",
            face_reage=5 + index,
            target_image=[{"path": f"{MEDIA}portrait.jpg", "opts": "1,2:3,4:5,6:7,8"}],
            deferrable=True,
            webhook_url="airflow",
            poll_interval=1.0,
            timeout=600,
            retries=0,
        )


webhook_first()
