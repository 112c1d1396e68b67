"""
Rejuvenate the speaker of a video without holding a worker: face detect on a still of the speaker, submit the
video reage without waiting, then a deferrable sensor waits in the triggerer, and a downstream task keeps the
video (in ``AKOOL_DEMO_OUTPUT_PATH`` when set: Akool's URL lasts 7 days, the emulator's only while it runs).

Runs against the local emulator by default. For the real Akool, define the ``akool_default`` connection with
your API key and trigger the DAG with ``{"video": "https://.../clip.mp4", "face_image": "https://.../still.jpg"}``
(or set ``AKOOL_DEMO_MEDIA_BASE_URL`` to a public folder holding the sample names below). Video jobs take
minutes: set ``AKOOL_DEMO_POLL_INTERVAL`` to 30 or more.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task

from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.operators.reage import AkoolDetectFacesOperator, AkoolVideoReageOperator
from airflow_provider_akool.sensors.reage import AkoolReageSensor
from airflow_provider_akool.storage import keep_result

log = logging.getLogger(__name__)

# Read at parse time, without any network call: DAG files are parsed often.
MEDIA = os.environ.get("AKOOL_DEMO_MEDIA_BASE_URL", "http://127.0.0.1:8765/media/samples/").rstrip("/") + "/"
POLL_INTERVAL = float(os.environ.get("AKOOL_DEMO_POLL_INTERVAL", "10"))
# A folder: the video is kept as <akool id>.mp4 inside it.
OUTPUT_PATH = (
    (os.environ["AKOOL_DEMO_OUTPUT_PATH"].rstrip("/") + "/")
    if os.environ.get("AKOOL_DEMO_OUTPUT_PATH")
    else None
)


@dag(
    dag_id="akool_video_reage",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["akool", "example"],
    params={
        "video": Param(f"{MEDIA}interview-faces-1.mp4", type="string", description="The video to change."),
        "face_image": Param(
            f"{MEDIA}interview-faces-1.jpg", type="string", description="A still of the speaker's face."
        ),
        "face_reage": Param(
            -15, type="integer", minimum=-30, maximum=30, description="Years: + ages, - rejuvenates."
        ),
    },
    doc_md=__doc__,
)
def akool_video_reage() -> None:
    face = AkoolDetectFacesOperator(task_id="detect_speaker", image_url="{{ params.face_image }}")
    submitted = AkoolVideoReageOperator(
        task_id="submit_video_reage",
        modify_video="{{ params.video }}",
        face_reage="{{ params.face_reage }}",
        target_image=face.output,
        wait_for_completion=False,
    )
    done = AkoolReageSensor(
        task_id="wait_for_video",
        result_ids=submitted.output,
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=3 * 60 * 60,
    )

    @task
    def publish(results: list[dict[str, Any]]) -> str:
        """Keep the video in ``AKOOL_DEMO_OUTPUT_PATH`` (unset: only log its URL; Akool keeps it 7 days)."""
        (video,) = results
        if OUTPUT_PATH is None:
            log.info("The rejuvenated video %s is at %s", video["id"], video["url"])
            return str(video["url"])
        # The sensor's tasks wait without downloading; the result is streamed to the folder here.
        kept = keep_result(AkoolHook(), video["url"], OUTPUT_PATH, akool_id=video["id"], overwrite=True)
        log.info("The rejuvenated video %s is kept at %s", video["id"], kept)
        return kept

    publish(done.output)


akool_video_reage()
