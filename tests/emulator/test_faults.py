"""Every fault kind as a requests client sees it, plus ordering, counts, path filters and the ledger."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests

from airflow_provider_akool.emulator import EmulatorServer
from airflow_provider_akool.emulator.envelope import MESSAGES

KEY = {"x-api-key": "emulator-api-key"}
API = "/api/open/v3"
LIST = f"{API}/faceswap/result/listbyids?_ids=0123456789abcdef01234567"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(server: EmulatorServer) -> None:
    server.client.reset()


def get(server: EmulatorServer, path: str = LIST, timeout: float = 5) -> requests.Response:
    return requests.get(f"{server.url}{path}", headers=KEY, timeout=timeout)


def submit(server: EmulatorServer, timeout: float = 5) -> requests.Response:
    body = {
        "targetImage": [{"path": "https://a/b.jpg", "opts": "1,2:3,4:5,6:7,8"}],
        "face_reage": 3,
        "modifyImage": "https://a/b.jpg",
    }
    return requests.post(
        f"{server.url}{API}/faceswap/highquality/imgreage", json=body, headers=KEY, timeout=timeout
    )


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_500_is_an_html_error_page(server: EmulatorServer, status: int) -> None:
    server.client.add_fault("http_500", status=status)
    response = get(server)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith(f"<html>{status} ")
    assert get(server).json()["code"] == 1000


def test_http_502_page_is_exact(server: EmulatorServer) -> None:
    server.client.add_fault("http_500", status=502)
    assert get(server).text == "<html>502 Bad Gateway</html>"


def test_drop_close_is_a_connection_error(server: EmulatorServer) -> None:
    server.client.add_fault("drop")
    with pytest.raises(requests.ConnectionError) as caught:
        get(server)
    assert "Remote end closed connection without response" in str(caught.value)
    assert get(server).status_code == 200


def test_drop_reset_is_a_connection_error(server: EmulatorServer) -> None:
    server.client.add_fault("drop", mode="reset")
    with pytest.raises(requests.ConnectionError) as caught:
        get(server)
    assert "reset" in str(caught.value).lower()


def test_drop_mid_body_is_a_chunked_encoding_error(server: EmulatorServer) -> None:
    server.client.add_fault("drop", mode="mid_body", path="/media/blob/")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(server, "/media/blob/200000")
    assert len(get(server, "/media/blob/200000").content) == 200000


def test_drop_as_seen_by_httpx(server: EmulatorServer) -> None:
    server.client.add_fault("drop", count=2)
    with httpx.Client() as client:
        for _ in range(2):
            with pytest.raises(httpx.RemoteProtocolError):
                client.get(f"{server.url}{LIST}", headers=KEY)
    server.client.add_fault("drop", mode="reset")
    with pytest.raises(httpx.ReadError):
        httpx.get(f"{server.url}{LIST}", headers=KEY)
    server.client.add_fault("drop", mode="mid_body", path="/media/blob/")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.url}/media/blob/200000")


def test_drop_before_the_endpoint_creates_no_job(server: EmulatorServer) -> None:
    server.client.add_fault("drop", path="imgreage")
    with pytest.raises(requests.ConnectionError):
        submit(server)
    assert server.client.ledger()["jobs"] == {}
    assert server.client.counts()["imgreage"] == 1


@pytest.mark.parametrize("kind", ["drop", "http_500", "not_json", "missing_fields"])
def test_after_runs_the_endpoint_then_loses_the_reply(server: EmulatorServer, kind: str) -> None:
    server.client.add_fault(kind, path="imgreage", after=True)
    try:
        response = submit(server)
    except requests.ConnectionError:
        pass
    else:
        assert response.status_code != 200 or "data" not in response.text
    (job,) = server.client.ledger()["jobs"].values()
    assert job["kind"] == "imgreage"


def test_slow_delays_the_reply_but_not_other_requests(server: EmulatorServer) -> None:
    server.client.add_fault("slow", seconds=10.0, path="imgreage")
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        submit(server, timeout=0.3)
    # Another request is served meanwhile, long before the held reply would go (a bound far from what a
    # busy machine takes for two requests).
    assert get(server).json()["code"] == 1000
    assert time.monotonic() - started < 5.0
    # The submit was processed before the delay: the job exists although the client timed out.
    (job,) = server.client.ledger()["jobs"].values()
    assert job["kind"] == "imgreage"


def test_slow_reply_arrives_complete(server: EmulatorServer) -> None:
    server.client.add_fault("slow", seconds=0.2)
    started = time.monotonic()
    assert get(server).json()["code"] == 1000
    assert time.monotonic() - started >= 0.2


def test_code_1005(server: EmulatorServer) -> None:
    server.client.add_fault("code_1005")
    response = get(server)
    assert response.status_code == 200
    assert response.json() == {"code": 1005, "msg": "Operation is too frequent", "data": None}


def test_code_1005_on_detect_uses_the_detect_envelope(server: EmulatorServer) -> None:
    server.client.add_fault("code_1005", path="/detect")
    reply = requests.post(f"{server.url}/detect", json={"image_url": "https://a/b.jpg"}, timeout=5).json()
    assert reply["error_code"] == 1005


def test_http_429_has_retry_after(server: EmulatorServer) -> None:
    server.client.add_fault("http_429", retry_after=7)
    response = get(server)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["code"] == 1005


def test_not_json(server: EmulatorServer) -> None:
    server.client.add_fault("not_json")
    response = get(server)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()


def test_missing_fields(server: EmulatorServer) -> None:
    server.client.add_fault("missing_fields")
    assert get(server).json() == {"code": 1000, "msg": "OK"}


def test_banned_and_quota_faults(server: EmulatorServer) -> None:
    server.client.add_fault("quota")
    server.client.add_fault("banned", path="listbyids")
    assert get(server).json()["code"] == 1200  # quota skipped: not a submit
    assert submit(server).json()["code"] == 1006
    assert submit(server).json()["code"] == 1000
    assert get(server).json()["code"] == 1000


def test_expire_tokens_fault(server: EmulatorServer) -> None:
    token = requests.post(
        f"{server.url}{API}/getToken",
        json={"clientId": "emulator-client-id", "clientSecret": "emulator-api-key"},
        timeout=5,
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{server.url}{LIST}", headers=headers, timeout=5).json()["code"] == 1000
    reply = server.client.add_fault("expire_tokens")
    assert reply["tokens_expired"] >= 1
    assert requests.get(f"{server.url}{LIST}", headers=headers, timeout=5).json()["code"] == 1101
    assert server.client.faults() == []


def test_faults_apply_in_order_with_counts_and_paths(server: EmulatorServer) -> None:
    server.client.add_fault("http_500", count=2, path="listbyids")
    server.client.add_fault("code_1005", path="listbyids")
    server.client.add_fault("not_json", path="infobymodelid")
    assert [fault["kind"] for fault in server.client.faults()] == ["http_500", "code_1005", "not_json"]
    observed = [get(server).status_code for _ in range(2)]
    assert observed == [500, 500]
    assert get(server).json()["code"] == 1005
    assert get(server).json()["code"] == 1000
    assert [fault["kind"] for fault in server.client.faults()] == ["not_json"]


def test_count_none_lasts_until_cleared(server: EmulatorServer) -> None:
    server.client.add_fault("http_500", count=None)
    assert all(get(server).status_code == 500 for _ in range(4))
    server.client.clear_faults()
    assert get(server).status_code == 200


def test_control_api_is_never_faulted(server: EmulatorServer) -> None:
    server.client.add_fault("drop", count=None)
    assert server.client.ledger()["counts"]["listbyids"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "nope"},
        {"kind": "http_500", "status": 404},
        {"kind": "http_500", "count": 0},
        {"kind": "drop", "mode": "explode"},
        {"kind": "slow", "seconds": -1},
        {"kind": "code_1005", "after": True},
        {"kind": "code", "code": 1000},
        {"kind": "code", "code": "1003"},
        {"kind": "oversized", "size": 10},
        {"kind": "oversized", "size": None, "length": True},
    ],
)
def test_bad_faults_are_refused(server: EmulatorServer, body: dict[str, Any]) -> None:
    response = requests.post(f"{server.url}/_emulator/faults", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]


def test_ledger_counts_every_request_faulted_or_not(server: EmulatorServer) -> None:
    server.client.add_fault("http_500", path="listbyids")
    server.client.add_fault("drop", path="imgreage")
    get(server)
    get(server)
    with pytest.raises(requests.ConnectionError):
        submit(server)
    submit(server)
    requests.get(f"{server.url}/media/blob/10", timeout=5)
    requests.post(f"{server.url}/detect", json={"image_url": "https://a/b.jpg"}, timeout=5)
    requests.get(f"{server.url}/nowhere", timeout=5)
    ledger = server.client.ledger()
    counts = ledger["counts"]
    assert counts["listbyids"] == 2
    assert counts["imgreage"] == 2
    assert counts["media"] == 1
    assert counts["detect"] == 1
    assert counts["getToken"] == counts["vidreage"] == counts["job_del"] == 0
    assert {"bg_replace", "infobymodelid"} <= set(counts)
    observed = [(r["endpoint"], r["http_status"], r["code"]) for r in ledger["requests"]]
    assert observed == [
        ("listbyids", 500, None),
        ("listbyids", 200, 1000),
        ("imgreage", 0, None),
        ("imgreage", 200, 1000),
        ("media", 200, None),
        ("detect", 200, 0),
        ("unknown", 404, None),
    ]
    assert ledger["listbyids_ids"] == [["0123456789abcdef01234567"]] * 2


# --- Issue 10: any business code, oversized replies, poisoned listbyids entries ----------------------


@pytest.mark.parametrize("code", [1003, 1015, 1104, 1221, 4242])
def test_code_answers_that_business_code_with_the_vendor_message(server: EmulatorServer, code: int) -> None:
    server.client.add_fault("code", path="imgreage", code=code)
    body = submit(server).json()
    assert body["code"] == code
    assert body["data"] is None
    assert body["msg"] == ("Error" if code == 4242 else MESSAGES[code])
    assert server.client.ledger()["jobs"] == {}  # the endpoint did not run


def test_code_on_detect_uses_the_detect_envelope(server: EmulatorServer) -> None:
    server.client.add_fault("code", path="/detect", code=1104)
    body = requests.post(f"{server.url}/detect", json={"image_url": "https://a/b.jpg"}, timeout=5).json()
    assert (body["error_code"], body["error_msg"]) == (1104, MESSAGES[1104])


@pytest.mark.parametrize("length", [False, True])
def test_oversized_streams_a_valid_envelope_of_the_size_asked(server: EmulatorServer, length: bool) -> None:
    size = 3 * 1024 * 1024 + 17
    server.client.add_fault("oversized", path="listbyids", size=size, length=length)
    response = get(server)
    assert len(response.content) == size
    assert (response.headers.get("content-length") == str(size)) is length
    assert response.json()["data"]["result"] == []


def test_oversized_without_end_stops_when_the_client_goes_away(server: EmulatorServer) -> None:
    server.client.add_fault("oversized", path="listbyids", size=None)
    with requests.get(f"{server.url}{LIST}", headers=KEY, timeout=5, stream=True) as response:
        assert "content-length" not in response.headers
        read = 0
        for chunk in response.iter_content(64 * 1024):
            read += len(chunk)
            if read > 8 * 1024 * 1024:
                break
    # The server is still free for the next request.
    assert get(server).json()["code"] == 1000


def _reage_job(server: EmulatorServer, image: str = "https://a/b.jpg") -> str:
    body = {
        "targetImage": [{"path": "https://a/b.jpg", "opts": "1,2:3,4:5,6:7,8"}],
        "face_reage": 3,
        "modifyImage": image,
    }
    reply = requests.post(
        f"{server.url}{API}/faceswap/highquality/imgreage", json=body, headers=KEY, timeout=5
    )
    akool_id: str = reply.json()["data"]["_id"]
    return akool_id


def _entries(server: EmulatorServer, *ids: str) -> list[Any]:
    result: list[Any] = get(server, f"{API}/faceswap/result/listbyids?_ids={','.join(ids)}").json()["data"][
        "result"
    ]
    return result


def test_poisoned_entries_by_control_api(server: EmulatorServer) -> None:
    good, bad = _reage_job(server), _reage_job(server)

    server.client.poison_entry(bad, "status")
    (entry,) = [e for e in _entries(server, good, bad) if e["_id"] == bad]
    assert entry["faceswap_status"] == 7
    server.client.poison_entry(bad, "id")
    assert sorted(e.get("_id", "none") for e in _entries(server, good, bad)) == sorted([good, "none"])
    server.client.poison_entry(bad, "object")
    assert f"entry of {bad} unavailable" in _entries(server, good, bad)
    server.client.poison_entry(bad, "types")
    (entry,) = [e for e in _entries(server, good, bad) if e["_id"] == bad]
    assert (entry["url"], entry["job_id"]) == (12345, [server.client.ledger()["jobs"][bad]["job_id"]])
    # Not asked for, a poisoned entry is left out, unless it is stray.
    assert [e["_id"] for e in _entries(server, good)] == [good]
    server.client.poison_entry(bad, "status", stray=True)
    assert sorted(e["_id"] for e in _entries(server, good)) == sorted([good, bad])
    assert server.client.ledger()["jobs"][bad]["entry_poison"] == "status"
    server.client.poison_entry(bad, None)
    assert all(e["faceswap_status"] in (1, 2, 3) for e in _entries(server, good, bad))
    assert "entry_poison" not in server.client.ledger()["jobs"][bad]


@pytest.mark.parametrize(("marker", "form", "stray"), [("status", "status", False), ("id-stray", "id", True)])
def test_poisoned_entries_by_input_marker(
    server: EmulatorServer, marker: str, form: str, stray: bool
) -> None:
    good = _reage_job(server)
    bad = _reage_job(server, f"https://a/emulator-poison-{marker}.jpg")
    assert server.client.ledger()["jobs"][bad]["entry_poison"] == form
    assert len(_entries(server, good)) == (2 if stray else 1)


@pytest.mark.parametrize(
    "body",
    [
        {"form": "nope"},
        {"form": "status", "stray": "yes"},
        {},
    ],
)
def test_bad_poison_switches_are_refused(server: EmulatorServer, body: dict[str, Any]) -> None:
    akool_id = _reage_job(server)
    response = requests.post(f"{server.url}/_emulator/jobs/{akool_id}/poison", json=body, timeout=5)
    assert response.status_code == 400


def test_poisoning_an_unknown_job_is_a_404(server: EmulatorServer) -> None:
    response = requests.post(
        f"{server.url}/_emulator/jobs/0123456789abcdef01234567/poison", json={"form": "status"}, timeout=5
    )
    assert response.status_code == 404
