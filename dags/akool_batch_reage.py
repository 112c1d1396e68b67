"""
Reage a batch of portraits in parallel: a check that the Akool account has the credit the batch needs, an
upstream task that lists the images, one mapped, deferrable reage task per image (each detects its faces
first), and a summary of all results. Below ``minimum_credit`` the check fails at once (no retry) and no
image is submitted.

Runs against the local emulator by default. For the real Akool, define the ``akool_default`` connection with
your API key and trigger the DAG with ``{"images": ["https://.../a.jpg", ...]}`` (or set
``AKOOL_DEMO_MEDIA_BASE_URL`` to a public folder holding the sample names below). Images in a private bucket
are named by URI, ``{"images": ["s3://aws_default@bucket/a.jpg", ...]}`` (the ``amazon`` extra): each reage
task signs its object for Akool to download, and ``make demo`` runs the batch so on a local S3 server. With
``AKOOL_DEMO_OUTPUT_PATH`` set (a folder, or any ``ObjectStoragePath`` URI) every result is also kept there,
beyond Akool's 7 days.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task

from airflow_provider_akool.operators.credit import AkoolCheckCreditOperator
from airflow_provider_akool.operators.reage import AkoolImageReageOperator

log = logging.getLogger(__name__)

# Read at parse time, without any network call: DAG files are parsed often.
MEDIA = os.environ.get("AKOOL_DEMO_MEDIA_BASE_URL", "http://127.0.0.1:8765/media/samples/").rstrip("/") + "/"
POLL_INTERVAL = float(os.environ.get("AKOOL_DEMO_POLL_INTERVAL", "10"))
# A folder: each result is kept as <akool id>.<ext> inside it (a name without "/" would be one file).
OUTPUT_PATH = (
    (os.environ["AKOOL_DEMO_OUTPUT_PATH"].rstrip("/") + "/")
    if os.environ.get("AKOOL_DEMO_OUTPUT_PATH")
    else None
)
PORTRAITS = [f"{MEDIA}portrait-{n}-faces-{faces}.jpg" for n, faces in enumerate((1, 2, 1, 3, 1), start=1)]


@dag(
    dag_id="akool_batch_reage",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["akool", "example"],
    params={
        "images": Param(
            PORTRAITS,
            type="array",
            description="The portraits to reage, one task each: http(s) URLs or s3://conn@bucket/key URIs.",
        ),
        "face_reage": Param(
            10, type="integer", minimum=-30, maximum=30, description="Years: + ages, - rejuvenates."
        ),
        "minimum_credit": Param(
            50,
            type="number",
            minimum=0,
            description="The Akool credit the batch needs: below it, nothing is submitted.",
        ),
    },
    doc_md=__doc__,
)
def akool_batch_reage() -> None:
    # Once, before the batch: a batch that cannot be paid for stops here, not half way through on 1006.
    check_credit = AkoolCheckCreditOperator(
        task_id="check_credit", minimum_credit="{{ params.minimum_credit }}"
    )

    @task
    def list_images(params: dict[str, Any]) -> list[str]:
        """List the images of the batch (a real DAG might read a bucket or a table here)."""
        return [str(url) for url in params["images"]]

    images = list_images()
    check_credit >> images
    reaged = AkoolImageReageOperator.partial(
        task_id="reage",
        face_reage="{{ params.face_reage }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=30 * 60,
        output_path=OUTPUT_PATH,
    ).expand(modify_image=images)

    @task
    def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Report every result of the batch."""
        # One request for every map index: iterating Airflow's lazy sequence fetches one result at a time
        # and ends on a miss, which Airflow logs at error level ("XCom not found").
        results = list(results[:])
        for result in results:
            log.info("%s %s -> %s", result["id"], result["status"], result["output_path"] or result["url"])
        return results

    summarize(reaged.output)


akool_batch_reage()
