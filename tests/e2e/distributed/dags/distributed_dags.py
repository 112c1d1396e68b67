"""
The DAGs of the distributed suite (``tests/e2e/distributed/``), loaded only by its stack.

- ``distributed_reage_batch``: a mapped batch of deferrable image reages, one submission per map index
  (``AKOOL_DISTRIBUTED_BATCH`` of them, 200 by default).
- ``distributed_reage_single``: one deferrable image reage, for a user to mark failed while it waits.
- ``distributed_crash_resume``: an image reage that waits in its Celery worker (not deferred) and may be
  retried once, so that a test can kill the worker in the middle of the wait.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag

from airflow_provider_akool.operators.reage import AkoolImageReageOperator

MEDIA = os.environ.get("AKOOL_DEMO_MEDIA_BASE_URL", "http://127.0.0.1:8765/media/samples/").rstrip("/") + "/"
BATCH = int(os.environ.get("AKOOL_DISTRIBUTED_BATCH", "200"))
POLL_INTERVAL = float(os.environ.get("AKOOL_DISTRIBUTED_POLL_INTERVAL", "4"))
# The faces are given: no face-detect request per task, only the submission the test counts.
FACES = [{"path": f"{MEDIA}portrait.jpg", "opts": "1,2:3,4:5,6:7,8"}]
START = datetime(2026, 1, 1)


@dag(dag_id="distributed_reage_batch", schedule=None, start_date=START, catchup=False, max_active_tasks=1024)
def distributed_reage_batch() -> None:
    AkoolImageReageOperator.partial(
        task_id="reage",
        face_reage=5,
        target_image=FACES,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=1800,
    ).expand(modify_image=[f"{MEDIA}portrait.jpg" for _ in range(BATCH)])


@dag(dag_id="distributed_reage_single", schedule=None, start_date=START, catchup=False)
def distributed_reage_single() -> None:
    AkoolImageReageOperator(
        task_id="reage",
        modify_image=f"{MEDIA}portrait.jpg",
        face_reage=5,
        target_image=FACES,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=1800,
        # Ahead of the batch in the scheduler's queue: it must be deferred while the batch still submits.
        priority_weight=100,
    )


@dag(dag_id="distributed_crash_resume", schedule=None, start_date=START, catchup=False)
def distributed_crash_resume() -> None:
    AkoolImageReageOperator(
        task_id="reage",
        modify_image=f"{MEDIA}portrait.jpg",
        face_reage=5,
        target_image=FACES,
        deferrable=False,
        poll_interval=1.0,
        timeout=1800,
        retries=1,
        retry_delay=timedelta(seconds=1),
        priority_weight=100,
    )


distributed_reage_batch()
distributed_reage_single()
distributed_crash_resume()
