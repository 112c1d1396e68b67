"""The emulator downloads input URLs served on loopback, as Akool downloads inputs, and nothing else."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from PIL import Image

from airflow_provider_akool.emulator import EmulatorConfig, EmulatorServer
from airflow_provider_akool.emulator.inputs import is_loopback_url

KEY = {"x-api-key": "emulator-api-key"}
API = "/api/open/v3"
OPTS = "10,10:20,10:15,15:15,20"


def png(colour: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


class Files(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` by path (any query string is ignored, as a signed URL's is); 404 otherwise."""

    files: dict[str, bytes] = {}
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = self.files.get(self.path.split("?", 1)[0])
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def files() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(queued_seconds=0, processing_seconds=0, bg_processing_seconds=0)
    with EmulatorServer(config) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(server: EmulatorServer) -> None:
    server.client.reset()
    Files.files = {"/in/face.png": png((200, 120, 90)), "/in/other.png": png((20, 40, 60), (640, 480))}
    Files.seen = []


def submit_image(server: EmulatorServer, image: str, path: str | None = None) -> str:
    body = {"targetImage": [{"path": path or image, "opts": OPTS}], "face_reage": 10, "modifyImage": image}
    reply = requests.post(
        f"{server.url}{API}/faceswap/highquality/imgreage", json=body, headers=KEY, timeout=10
    )
    assert reply.json()["code"] == 1000, reply.text
    akool_id: str = reply.json()["data"]["_id"]
    return akool_id


def status(server: EmulatorServer, akool_id: str) -> int:
    reply = requests.get(
        f"{server.url}{API}/faceswap/result/listbyids", params={"_ids": akool_id}, headers=KEY, timeout=10
    )
    result: int = reply.json()["data"]["result"][0]["faceswap_status"]
    return result


def test_a_loopback_input_is_downloaded_and_its_digest_recorded_never_its_url(
    server: EmulatorServer, files: str
) -> None:
    url = f"{files}/in/face.png?Signature=s3cr3t&Expires=1"
    akool_id = submit_image(server, url)
    assert Files.seen == ["/in/face.png?Signature=s3cr3t&Expires=1"] * 2
    job = server.client.ledger()["jobs"][akool_id]
    digest = hashlib.sha256(Files.files["/in/face.png"]).hexdigest()
    size = len(Files.files["/in/face.png"])
    assert job["fetched_inputs"] == [
        {"field": "modifyImage", "http_status": 200, "sha256": digest, "bytes": size, "error": None},
        {"field": "targetImage[0].path", "http_status": 200, "sha256": digest, "bytes": size, "error": None},
    ]
    assert "s3cr3t" not in str(server.client.ledger())
    assert status(server, akool_id) == 3
    # The result is drawn on the downloaded image (its size), not on a placeholder card.
    result = requests.get(f"{server.url}/media/results/{akool_id}.jpg", timeout=10)
    assert Image.open(io.BytesIO(result.content)).size == (320, 240)


def test_an_input_that_cannot_be_downloaded_fails_the_job(server: EmulatorServer, files: str) -> None:
    akool_id = submit_image(server, f"{files}/in/face.png", path=f"{files}/in/expired.png?Signature=old")
    job = server.client.ledger()["jobs"][akool_id]
    assert [(f["field"], f["http_status"], f["error"]) for f in job["fetched_inputs"]] == [
        ("modifyImage", 200, None),
        ("targetImage[0].path", 404, "HTTP 404 downloading targetImage[0].path"),
    ]
    assert status(server, akool_id) == 4


def test_a_background_change_input_that_cannot_be_downloaded_says_why(
    server: EmulatorServer, files: str
) -> None:
    body = {
        "origin_img": f"{files}/in/gone.png",
        "modify_origin_img_size": "100x100",
        "overlay_origin_x": 0,
        "overlay_origin_y": 0,
        "canvas_size": "200x200",
    }
    reply = requests.post(f"{server.url}{API}/content/image/bg/replace", json=body, headers=KEY, timeout=10)
    akool_id = reply.json()["data"]["_id"]
    info = requests.get(
        f"{server.url}{API}/content/image/infobymodelid",
        params={"image_model_id": akool_id},
        headers=KEY,
        timeout=10,
    ).json()["data"]
    assert info["image_status"] == 4
    assert info["error_reasons"][0]["message"] == (
        "background change processing error: HTTP 404 downloading origin_img"
    )


def test_other_hosts_and_the_emulators_own_samples_are_never_downloaded(
    server: EmulatorServer, files: str
) -> None:
    for url in ("https://example.com/a.jpg", f"{server.url}/media/samples/faces-1.jpg"):
        akool_id = submit_image(server, url)
        assert "fetched_inputs" not in server.client.ledger()["jobs"][akool_id]
    assert Files.seen == []


def test_fetching_can_be_turned_off(files: str) -> None:
    config = EmulatorConfig(queued_seconds=0, processing_seconds=0, fetch_inputs=False)
    with EmulatorServer(config) as quiet:
        akool_id = submit_image(quiet, f"{files}/in/missing.png")
        assert "fetched_inputs" not in quiet.client.ledger()["jobs"][akool_id]
        assert status(quiet, akool_id) == 3
    assert Files.seen == []


def test_detect_places_faces_by_the_downloaded_bytes_not_the_url(server: EmulatorServer, files: str) -> None:
    def detect(url: str) -> dict[str, Any]:
        body = {"image_url": url, "single_face": False}
        reply: dict[str, Any] = requests.post(f"{server.url}/detect", json=body, timeout=10).json()
        return reply

    # Two signatures of one object: the same faces; another object: other faces, on its own size.
    first = detect(f"{files}/in/face.png?Signature=a")
    assert first["error_code"] == 0
    assert detect(f"{files}/in/face.png?Signature=b")["landmarks_str"] == first["landmarks_str"]
    other = detect(f"{files}/in/other.png")
    assert other["landmarks_str"] != first["landmarks_str"]
    assert other["region"][0][0] + other["region"][0][2] > 320  # placed on a 640 px wide image
    missing = detect(f"{files}/in/missing.png")
    assert missing["error_code"] != 0
    assert "HTTP 404 downloading image_url" in missing["error_msg"]


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:9000/a", True),
        ("http://127.8.9.10/a", True),
        ("http://localhost:80/a", True),
        ("http://[::1]:9000/a", True),
        ("https://example.com/a", False),
        ("http://10.0.0.1/a", False),
        ("ftp://127.0.0.1/a", False),
        ("http://[::1/a", False),
    ],
)
def test_only_loopback_urls_count_as_loopback(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback
