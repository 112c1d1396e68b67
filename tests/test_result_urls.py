"""A result URL that is not http(s) never leaves the protocol, and never becomes the UI link."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_akool import protocol
from airflow_provider_akool.links import safe_link
from tests.support.akool_replies import SEED_MODIFY_IMAGE, SEED_TARGET

AKOOL_ID = "6b01b4f8296c2e5c1174aa5d"
NOT_HTTP = {
    "javascript": "javascript:alert(document.domain)",
    "javascript_upper": "JavaScript:alert(1)",
    "data": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "file": "file:///etc/passwd",
    "ftp": "ftp://cdn.example/r.jpg",
    "no_host": "https://",
    "relative": "/media/results/r.jpg",
    "leading_space_javascript": " javascript:alert(1)",
    "newline_inside": "https://cdn.example/r.jpg\njavascript:alert(1)",
}


def ok(data: Any) -> protocol.HttpReply:
    body = json.dumps({"code": 1000, "msg": "OK", "data": data}).encode()
    return protocol.HttpReply(status=200, headers={}, content=body)


@pytest.mark.parametrize("url", NOT_HTTP.values(), ids=NOT_HTTP.keys())
class TestTheProtocolDropsThem:
    def test_in_a_reage_submission(self, url: str) -> None:
        request = protocol.build_image_reage(SEED_MODIFY_IMAGE, 10, SEED_TARGET)
        job = protocol.interpret(request, ok({"_id": AKOOL_ID, "url": url, "job_id": "2024-1"}))
        assert job.id == AKOOL_ID
        assert job.url is None

    def test_in_a_listbyids_entry(self, url: str) -> None:
        request = protocol.build_list_reage_results([AKOOL_ID])
        entry = {"_id": AKOOL_ID, "faceswap_status": 3, "url": url, "job_id": "2024-1"}
        results = protocol.interpret(request, ok({"result": [entry]}))
        assert results[AKOOL_ID].url is None

    def test_in_a_background_change_result(self, url: str) -> None:
        request = protocol.build_image_result(AKOOL_ID)
        result = protocol.interpret(request, ok({"_id": AKOOL_ID, "image_status": 3, "image": url}))
        assert result.image_url is None

    def test_as_the_link(self, url: str) -> None:
        assert safe_link(url) == ""


def test_http_and_https_urls_pass_unchanged() -> None:
    for url in ("https://cdn.example/r.jpg?sig=a", "http://127.0.0.1:8765/media/results/r.jpg"):
        request = protocol.build_list_reage_results([AKOOL_ID])
        entry = {"_id": AKOOL_ID, "faceswap_status": 3, "url": url}
        assert protocol.interpret(request, ok({"result": [entry]}))[AKOOL_ID].url == url
        assert safe_link(url) == url
    assert safe_link(None) == ""
    assert safe_link(5) == ""
