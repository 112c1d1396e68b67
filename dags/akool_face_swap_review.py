"""
Swap a face, let a person approve the result, and publish only an approved one.

Face detect finds the face of the picture, Akool puts the face of the source portrait in its place (the
result is kept for review), then a human-in-the-loop step (Airflow's ``ApprovalOperator``, Airflow 3.1+)
shows the picture, the face put in and the result side by side. "Approve" publishes the result to its final
place; "Reject" skips the publishing, so a rejected result never gets there.

Answer it in the UI (the task's "Required Actions", or Browse -> Required Actions) or through the REST API
(``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails`` with
``{"chosen_options": ["Approve"]}``). ``make demo`` does not run this DAG: it waits for a person.

Runs against the local emulator by default; for the real Akool, give pictures Akool can download (the
``picture`` and ``source`` params, or ``AKOOL_DEMO_MEDIA_BASE_URL``). Results are kept for review under
``AKOOL_DEMO_OUTPUT_PATH`` (a folder or an ``ObjectStoragePath`` URI; default a temporary folder) in
``review/`` and published to ``published/`` beside it, or to ``AKOOL_REVIEW_PUBLISH_PATH``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import ObjectStoragePath, Param, dag, task

from airflow_provider_akool.operators.faceswap import AkoolImageFaceSwapOperator
from airflow_provider_akool.operators.reage import AkoolDetectFacesOperator

log = logging.getLogger(__name__)

# Read at parse time, without any network call: DAG files are parsed often.
MEDIA = os.environ.get("AKOOL_DEMO_MEDIA_BASE_URL", "http://127.0.0.1:8765/media/samples/").rstrip("/") + "/"
POLL_INTERVAL = float(os.environ.get("AKOOL_DEMO_POLL_INTERVAL", "10"))
OUTPUT_FOLDER = (
    os.environ.get("AKOOL_DEMO_OUTPUT_PATH") or os.path.join(tempfile.gettempdir(), "akool-results")
).rstrip("/")
#: Where results wait for review, and where an approved one is published.
REVIEW_PATH = f"{OUTPUT_FOLDER}/review/"
PUBLISH_PATH = (os.environ.get("AKOOL_REVIEW_PUBLISH_PATH") or f"{OUTPUT_FOLDER}/published").rstrip("/") + "/"

REVIEW_BODY = """\
Akool swapped the face of **{{ params.source }}** into **{{ params.picture }}**.

| picture | face put in | result |
| --- | --- | --- |
| ![picture]({{ params.picture }}) | ![face put in]({{ params.source }}) \
| ![result]({{ ti.xcom_pull(task_ids='swap')['url'] }}) |

Approve to publish the result to `{{ params.publish_to }}`; reject to leave it unpublished.
"""


@dag(
    dag_id="akool_face_swap_review",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["akool", "example", "human-in-the-loop"],
    params={
        "picture": Param(f"{MEDIA}family-faces-1.jpg", type="string", description="The picture changed."),
        "source": Param(f"{MEDIA}alice.jpg", type="string", description="A portrait: the face put in."),
        "publish_to": Param(PUBLISH_PATH, type="string", description="Where an approved result goes."),
    },
    doc_md=__doc__,
)
def akool_face_swap_review() -> None:
    face = AkoolDetectFacesOperator(task_id="detect_face", image_url="{{ params.picture }}")
    swap = AkoolImageFaceSwapOperator(
        task_id="swap",
        modify_image="{{ params.picture }}",
        source_image="{{ params.source }}",
        target_image=face.output,
        poll_interval=POLL_INTERVAL,
        timeout=30 * 60,
        output_path=REVIEW_PATH,
    )
    review = ApprovalOperator(
        task_id="review",
        subject="Publish this face swap?",
        body=REVIEW_BODY,
        response_timeout=timedelta(days=6),  # Akool keeps the result 7 days
    )

    @task
    def publish(result: dict[str, Any], params: dict[str, Any]) -> str:
        """Copy the approved result from review to its final place (runs only when approved)."""
        kept = ObjectStoragePath(result["output_path"])
        final = ObjectStoragePath(params["publish_to"]) / kept.name
        final.parent.mkdir(parents=True, exist_ok=True)
        with kept.open("rb") as source, final.open("wb") as target:
            target.write(source.read())
        log.info("Published face swap %s to %s", result["id"], final)
        return str(final)

    swap >> review >> publish(swap.output)


akool_face_swap_review()
