"""
Put product photos on brand backgrounds with Akool background change, keep the results, check them, and
let another DAG pick up every new result through an Asset.

``akool_background_change``: an upstream task lists the product photos (cut-outs with a transparent
background); each photo is composed twice, by one mapped, deferrable task per composition: a catalogue shot
on the brand colour, and a banner with a template image over the brand colour. The results are kept under
``AKOOL_DEMO_OUTPUT_PATH`` (a folder, or any ``ObjectStoragePath`` URI such as ``s3://bucket/prefix/``;
without it, a folder in the system's temporary directory), then a downstream task opens every kept file
and checks that it is an image of the canvas size. Each composition updates the ``akool_product_photos``
asset once its file is kept.

``publish_product_photos`` is scheduled on that asset: it runs when new results are kept and reads the
files the events name (the event's ``extra`` carries ``id``, ``url`` and ``output_path``). Triggered by
hand, it takes the results of the latest producing run instead.

Akool's current documentation marks the background-change endpoint deprecated; it is still served.

Runs against the local emulator by default (``make emulator``, or ``make demo`` which starts its own). For
the real Akool, define the ``akool_default`` connection with your API key, trigger the DAG with
``{"products": ["https://.../photo.png"], "template_url": "https://.../backdrop.jpg"}`` (or set
``AKOOL_DEMO_MEDIA_BASE_URL`` to a public folder holding the sample names below), and point
``AKOOL_DEMO_OUTPUT_PATH`` at storage every worker can read.
"""

from __future__ import annotations

import logging
import os
import struct
import tempfile
from datetime import datetime
from typing import Any

from airflow.sdk import Asset, ObjectStoragePath, Param, dag, task

from airflow_provider_akool import validation
from airflow_provider_akool.operators.background_change import AkoolBackgroundChangeOperator

log = logging.getLogger(__name__)

# Read at parse time, without any network call: DAG files are parsed often.
MEDIA = os.environ.get("AKOOL_DEMO_MEDIA_BASE_URL", "http://127.0.0.1:8765/media/samples/").rstrip("/") + "/"
POLL_INTERVAL = float(os.environ.get("AKOOL_DEMO_POLL_INTERVAL", "10"))
# A folder (trailing slash): every mapped task keeps its own "<akool id>.png" there. This DAG needs the
# files, so without a configured location it keeps them in a local folder (fine for one machine only).
OUTPUT_FOLDER = (
    os.environ.get("AKOOL_DEMO_OUTPUT_PATH") or os.path.join(tempfile.gettempdir(), "akool-results")
).rstrip("/") + "/"

#: Updated by every kept composition; ``publish_product_photos`` is scheduled on it.
PRODUCT_PHOTOS = Asset(name="akool_product_photos", uri="akool://background-change/product-photos")

PRODUCTS = [f"{MEDIA}sneaker-640x480.png", f"{MEDIA}mug-480x640.png", f"{MEDIA}lamp.png"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_size(path: str) -> tuple[int, int]:
    """Return (width, height) of a kept image: with Pillow where installed, else from the PNG header."""
    with ObjectStoragePath(path).open("rb") as kept:
        try:
            from PIL import Image
        except ImportError:
            header = kept.read(24)
            if not header.startswith(PNG_SIGNATURE) or header[12:16] != b"IHDR":
                raise ValueError(f"{path} is not a PNG image") from None
            width, height = struct.unpack(">II", header[16:24])
            return int(width), int(height)
        with Image.open(kept) as image:
            image.load()  # decodes the whole file: a truncated one fails here
            return int(image.width), int(image.height)


@dag(
    dag_id="akool_background_change",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["akool", "example"],
    params={
        "products": Param(PRODUCTS, type="array", description="Product photos (cut-outs), one task each."),
        "brand_colour": Param("#c9aafb", type="string", pattern="^#[0-9a-fA-F]{6}$"),
        "template_url": Param(
            f"{MEDIA}studio-backdrop-faces-0.jpg", type="string", description="The banners' background."
        ),
        "canvas_size": Param("800x800", type="string", pattern="^[0-9]+x[0-9]+$"),
    },
    doc_md=__doc__,
)
def akool_background_change() -> None:
    @task
    def list_product_photos(params: dict[str, Any]) -> list[str]:
        """List the photos to compose (a real DAG might read a product catalogue here)."""
        return [str(url) for url in params["products"]]

    @task
    def plan_compositions(photos: list[str], params: dict[str, Any]) -> list[dict[str, Any]]:
        """Lay every photo out twice: a catalogue shot on the brand colour and a banner on the template."""
        width, height = (
            int(side) for side in validation.size("canvas_size", params["canvas_size"]).split("x")
        )
        compositions: list[dict[str, Any]] = []
        for photo in photos:
            # Catalogue: the photo at three quarters of the canvas, centred on the brand colour.
            compositions.append(
                {
                    "origin_img": photo,
                    "modify_origin_img_size": (width * 3 // 4, height * 3 // 4),
                    "overlay_origin_x": width // 8,
                    "overlay_origin_y": height // 8,
                }
            )
            # Banner: the template over the lower 60% (the brand colour shows above it), the photo on top.
            compositions.append(
                {
                    "origin_img": photo,
                    "modify_origin_img_size": f"{width // 2}x{height // 2}",
                    "overlay_origin_x": width // 4,
                    "overlay_origin_y": height // 3,
                    "template_url": params["template_url"],
                    "modify_template_size": f"{width}x{height * 3 // 5}",
                    "overlay_template_x": 0,
                    "overlay_template_y": height * 2 // 5,
                }
            )
        return compositions

    composed = AkoolBackgroundChangeOperator.partial(
        task_id="change_background",
        canvas_size="{{ params.canvas_size }}",
        color_code="{{ params.brand_colour }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=30 * 60,
        output_path=OUTPUT_FOLDER,
        # Airflow emits the asset event when the task succeeds, which is after the file was kept.
        outlets=[PRODUCT_PHOTOS],
    ).expand_kwargs(plan_compositions(list_product_photos()))

    @task
    def check_kept_files(results: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
        """Open every kept file and check that it is an image of the canvas size."""
        expected = validation.size("canvas_size", params["canvas_size"])
        checked = []
        # results[:] is one request for every map index; iterating Airflow's lazy sequence would fetch
        # one result at a time and end on a miss, which Airflow logs at error level ("XCom not found").
        for result in results[:]:
            width, height = image_size(result["output_path"])
            if f"{width}x{height}" != expected:
                raise ValueError(f"{result['output_path']} is {width}x{height}, not the canvas {expected}")
            log.info("Kept %s: %dx%d at %s", result["id"], width, height, result["output_path"])
            checked.append(
                {"id": result["id"], "output_path": result["output_path"], "size": [width, height]}
            )
        return checked

    check_kept_files(composed.output)


@dag(
    dag_id="publish_product_photos",
    schedule=[PRODUCT_PHOTOS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["akool", "example"],
    doc_md=__doc__,
)
def publish_product_photos() -> None:
    @task(inlets=[PRODUCT_PHOTOS])
    def publish_new_photos(
        triggering_asset_events: Any = None, inlet_events: Any = None
    ) -> list[dict[str, Any]]:
        """Read the files of the asset events that triggered this run (or of the latest producing run)."""
        events = list(triggering_asset_events.get(PRODUCT_PHOTOS, [])) if triggering_asset_events else []
        if not events:
            # Triggered by hand: the events of the latest run that produced results. (The list holds every
            # event of the asset; a long-lived deployment would narrow it down.)
            history = list(inlet_events[PRODUCT_PHOTOS])
            latest_run = history[-1].source_run_id if history else None
            events = [event for event in history if event.source_run_id == latest_run]
        published = []
        for event in events:
            output_path = (event.extra or {}).get("output_path")
            if not output_path:
                continue
            width, height = image_size(output_path)
            log.info("Publishing %s (%dx%d) from %s", event.extra.get("id"), width, height, output_path)
            published.append(
                {"id": event.extra.get("id"), "output_path": output_path, "size": [width, height]}
            )
        log.info("Published %d new product photo(s)", len(published))
        return published

    publish_new_photos()


akool_background_change()
publish_product_photos()
