"""
Age the faces of a portrait: an upstream task picks the image, face detect finds the faces, Akool reages
them, and a downstream task fetches the result.

Runs against the local emulator by default (``make emulator``, or ``make demo`` which starts its own). For the
real Akool, define the ``akool_default`` connection with your API key and give images Akool can download:
trigger the DAG with ``{"images": ["https://.../portrait.jpg"]}``, or set ``AKOOL_DEMO_MEDIA_BASE_URL`` to a
public folder holding the sample names below. With ``AKOOL_DEMO_OUTPUT_PATH`` set (a folder, or any
``ObjectStoragePath`` URI) the result is also kept there, beyond Akool's 7 days.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task

from airflow_provider_akool.operators.reage import AkoolDetectFacesOperator, AkoolImageReageOperator

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


@dag(
    dag_id="akool_image_reage",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["akool", "example"],
    params={
        "images": Param(
            [f"{MEDIA}family-faces-2.jpg", f"{MEDIA}notes.txt"],
            type="array",
            description="Candidate images; the first JPEG or PNG is reaged.",
        ),
        "face_reage": Param(
            20, type="integer", minimum=-30, maximum=30, description="Years: + ages, - rejuvenates."
        ),
    },
    doc_md=__doc__,
)
def akool_image_reage() -> None:
    @task
    def pick_image(params: dict[str, Any]) -> str:
        """Pick the first candidate that is an image Akool takes."""
        for url in params["images"]:
            if url.lower().split("?", 1)[0].endswith((".jpg", ".jpeg", ".png")):
                return str(url)
        raise ValueError(f"none of {params['images']} is a .jpg, .jpeg or .png image")

    image = pick_image()
    faces = AkoolDetectFacesOperator(task_id="detect_faces", image_url=image, single_face=False)
    reaged = AkoolImageReageOperator(
        task_id="reage",
        modify_image=image,
        face_reage="{{ params.face_reage }}",
        target_image=faces.output,
        poll_interval=POLL_INTERVAL,
        timeout=30 * 60,
        output_path=OUTPUT_PATH,
    )

    @task
    def fetch_result(result: dict[str, Any]) -> dict[str, Any]:
        """Download the reaged image (Akool keeps it for 7 days) and say what came back."""
        from airflow_provider_akool.hooks.akool import AkoolHook

        size = 0
        with AkoolHook().stream_result(result["url"]) as chunks:
            for index, chunk in enumerate(chunks):
                if index == 0 and not chunk.startswith((b"\xff\xd8", b"\x89PNG")):
                    raise ValueError(f"the result at {result['url']} is not a JPEG or PNG image")
                size += len(chunk)
        log.info("Reaged image %s: %d bytes at %s", result["id"], size, result["url"])
        return {"id": result["id"], "url": result["url"], "bytes": size}

    fetch_result(reaged.output)


akool_image_reage()
