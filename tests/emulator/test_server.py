"""EmulatorServer lifecycle, the CLI, and the media endpoints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from airflow_provider_akool.emulator import EmulatorClient, EmulatorConfig, EmulatorServer, create_app
from airflow_provider_akool.emulator.media import MP4_HEADER, SAMPLE_VIDEO_BYTES, pattern_block, solid_png

KEY = {"x-api-key": "emulator-api-key"}


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as emulator:
        yield emulator


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def test_start_and_stop_many_times_without_leaks() -> None:
    threads, fds = threading.active_count(), open_fds()
    for _ in range(5):
        with EmulatorServer() as emulator:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emulator.url)
            assert requests.get(f"{emulator.url}/_emulator/health", timeout=5).json() == {"ok": True}
        assert not emulator.running
    # Fewer is fine: threads other tests left (dag.test() comms) may end meanwhile; more would be a leak.
    assert threading.active_count() <= threads
    assert open_fds() <= fds + 2


def test_restart_keeps_port_and_state() -> None:
    emulator = EmulatorServer(EmulatorConfig(queued_seconds=0, processing_seconds=0))
    emulator.start()
    try:
        url = emulator.url
        requests.get(f"{url}/media/blob/1", timeout=5)
        emulator.stop()
        emulator.stop()  # idempotent
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/_emulator/health", timeout=2)
        emulator.start()
        assert emulator.url == url
        assert emulator.client.counts()["media"] == 1
    finally:
        emulator.stop()


def test_python_api(server: EmulatorServer) -> None:
    assert isinstance(server.client, EmulatorClient)
    assert server.config.api_key == "emulator-api-key"
    assert server.state.config is server.config
    assert server.running
    assert create_app().state.emulator.config.client_secret == "emulator-api-key"
    now = server.client.now()
    assert server.client.advance_clock(60) >= now + 60
    with pytest.raises(requests.HTTPError):
        server.client.advance_clock(-1)


def test_public_base_url_is_used_in_replies() -> None:
    config = EmulatorConfig(public_base_url="http://emulator.test:9000/")
    with EmulatorServer(config) as emulator:
        body = {
            "targetImage": [{"path": "https://a/b.jpg", "opts": "1,2:3,4:5,6:7,8"}],
            "face_reage": 3,
            "modifyImage": "https://a/b.jpg",
        }
        reply = requests.post(
            f"{emulator.url}/api/open/v3/faceswap/highquality/imgreage", json=body, headers=KEY, timeout=5
        ).json()
        assert reply["data"]["url"].startswith("http://emulator.test:9000/media/results/")


def test_cli_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_akool.emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for flag in ("--host", "--port", "--api-key", "--client-id", "--client-secret", "--queued-seconds"):
        assert flag in result.stdout
    for flag in (
        "--processing-seconds",
        "--video-processing-seconds",
        "--result-ttl-seconds",
        "--max-listbyids",
    ):
        assert flag in result.stdout
    assert "--log-level" in result.stdout


def test_cli_serves_and_prints_url_and_credentials() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_akool.emulator", "--port", "0", "--api-key", "cli-key"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", banner)
        assert match, banner
        url = match.group(0)
        lines = [process.stdout.readline() for _ in range(5)]
        assert any("cli-key" in line for line in lines)
        reply = requests.get(
            f"{url}/api/open/v3/faceswap/result/listbyids?_ids=x", headers={"x-api-key": "cli-key"}, timeout=5
        ).json()
        assert reply["code"] == 1000
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    assert process.returncode == 0


def test_cli_rejects_bad_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_akool.emulator", "--max-listbyids", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "max_listbyids" in result.stderr


@pytest.mark.parametrize(
    ("name", "media_type"), [("a.jpg", "image/jpeg"), ("b.jpeg", "image/jpeg"), ("c.png", "image/png")]
)
def test_sample_images(server: EmulatorServer, name: str, media_type: str) -> None:
    response = requests.get(f"{server.url}/media/samples/{name}", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert int(response.headers["content-length"]) == len(response.content)
    assert requests.get(f"{server.url}/media/samples/{name}", timeout=5).content == response.content


def test_sample_video_and_unknown_extension(server: EmulatorServer) -> None:
    response = requests.get(f"{server.url}/media/samples/clip.mp4", timeout=5)
    assert response.headers["content-type"] == "video/mp4"
    assert int(response.headers["content-length"]) == SAMPLE_VIDEO_BYTES == len(response.content)
    assert response.content.startswith(MP4_HEADER)
    assert requests.get(f"{server.url}/media/samples/notes.txt", timeout=5).status_code == 404


def test_blob_streams_deterministic_bytes(server: EmulatorServer) -> None:
    size = 3 * 65536 + 17
    with requests.get(f"{server.url}/media/blob/{size}", stream=True, timeout=5) as response:
        assert response.headers["content-length"] == str(size)
        assert response.headers["content-type"] == "application/octet-stream"
        content = b"".join(response.iter_content(65536))
    block = pattern_block()
    assert content == (block * 4)[:size]
    assert requests.get(f"{server.url}/media/blob/0", timeout=5).content == b""


def test_unknown_result_is_404(server: EmulatorServer) -> None:
    assert (
        requests.get(f"{server.url}/media/results/0123456789abcdef01234567.jpg", timeout=5).status_code == 404
    )
    assert requests.get(f"{server.url}/media/results/whatever.exe", timeout=5).status_code == 404


def test_solid_png_is_valid() -> None:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(solid_png(7, 5, (1, 2, 3))))
    assert image.size == (7, 5)
    assert image.convert("RGB").getpixel((6, 4)) == (1, 2, 3)


def test_a_frozen_clock_moves_only_when_advanced(server: EmulatorServer) -> None:
    client = server.client
    frozen = client.freeze_clock()
    time.sleep(0.05)
    assert client.now() == frozen
    assert client.advance_clock(5) == frozen + 5
    client.freeze_clock(False)
    time.sleep(0.05)
    assert client.now() > frozen + 5
    client.freeze_clock()
    client.reset()
    before = client.now()
    time.sleep(0.05)
    assert client.now() > before
