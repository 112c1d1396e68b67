"""The emulated account's credit: the balance served by quota/info, what each job costs, 1006 when short."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from airflow_provider_akool.emulator import EmulatorConfig, EmulatorServer
from airflow_provider_akool.emulator.__main__ import build_parser, main
from airflow_provider_akool.emulator.config import DEFAULT_CREDIT

API = "/api/open/v3"
KEY = {"x-api-key": "emulator-api-key"}
START = 50
FACE = {"path": "https://cdn.example/face.jpg", "opts": "1,2:3,4:5,6:7,8"}
SUBMITS: dict[str, tuple[str, dict[str, Any]]] = {
    "imgreage": (
        "faceswap/highquality/imgreage",
        {"targetImage": [FACE], "face_reage": 5, "modifyImage": "https://cdn.example/a.jpg"},
    ),
    "vidreage": (
        "faceswap/highquality/vidreage",
        {"targetImage": [FACE], "face_reage": 5, "modifyVideo": "https://cdn.example/a.mp4"},
    ),
    "bg_replace": (
        "content/image/bg/replace",
        {
            "canvas_size": "64x48",
            "origin_img": "https://cdn.example/person.png",
            "modify_origin_img_size": "20x20",
            "overlay_origin_x": 1,
            "overlay_origin_y": 2,
        },
    ),
}


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(credit=START, queued_seconds=5)) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(server: EmulatorServer) -> None:
    server.client.reset()


def balance(server: EmulatorServer, headers: dict[str, str] = KEY) -> dict[str, Any]:
    reply: dict[str, Any] = requests.get(
        f"{server.url}{API}/faceswap/quota/info", headers=headers, timeout=5
    ).json()
    return reply


def submit(server: EmulatorServer, kind: str) -> dict[str, Any]:
    path, body = SUBMITS[kind]
    reply: dict[str, Any] = requests.post(
        f"{server.url}{API}/{path}", json=body, headers=KEY, timeout=5
    ).json()
    return reply


def test_quota_info_serves_the_configured_balance_in_akools_envelope(server: EmulatorServer) -> None:
    assert balance(server) == {"code": 1000, "msg": "OK", "data": {"credit": START}}
    assert server.client.counts()["quota_info"] == 1


def test_quota_info_checks_the_caller_like_every_endpoint(server: EmulatorServer) -> None:
    assert balance(server, {})["code"] == 1102
    assert balance(server, {"x-api-key": "wrong"})["code"] == 1101
    server.client.set_account(banned=True)
    assert balance(server)["code"] == 1200


@pytest.mark.parametrize("kind", list(SUBMITS))
def test_each_submission_is_charged_its_documented_price(server: EmulatorServer, kind: str) -> None:
    price = server.config.price(kind)
    assert price == {"imgreage": 2, "vidreage": 10, "bg_replace": 4}[kind]
    assert submit(server, kind)["code"] == 1000
    assert balance(server)["data"]["credit"] == START - price
    assert server.client.account()["credit"] == START - price


def test_background_change_replies_carry_the_credit_deducted(server: EmulatorServer) -> None:
    reply = submit(server, "bg_replace")
    assert reply["data"]["deduction_credit"] == server.config.background_change_credit
    info = requests.get(
        f"{server.url}{API}/content/image/infobymodelid",
        params={"image_model_id": reply["data"]["_id"]},
        headers=KEY,
        timeout=5,
    ).json()
    assert info["data"]["deduction_credit"] == server.config.background_change_credit


def test_a_submission_the_balance_cannot_pay_is_1006_and_costs_nothing(server: EmulatorServer) -> None:
    server.client.set_account(credit=server.config.video_reage_credit - 1)
    reply = submit(server, "vidreage")
    assert (reply["code"], reply["msg"]) == (1006, "Your quota is not enough")
    assert server.client.ledger()["jobs"] == {}
    assert balance(server)["data"]["credit"] == server.config.video_reage_credit - 1
    # A cheaper job still fits; reads never cost anything.
    assert submit(server, "imgreage")["code"] == 1000
    assert balance(server)["data"]["credit"] == server.config.video_reage_credit - 1 - 2


def test_concurrent_submissions_never_spend_the_same_credit_twice(server: EmulatorServer) -> None:
    server.client.set_account(credit=5 * server.config.image_reage_credit)
    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(lambda _: submit(server, "imgreage")["code"], range(12)))
    assert sorted(codes) == [1000] * 5 + [1006] * 7
    assert len(server.client.ledger()["jobs"]) == 5
    assert balance(server)["data"]["credit"] == 0


def test_the_control_api_sets_the_balance_and_reset_refills_it(server: EmulatorServer) -> None:
    assert server.client.set_account(credit=12.5) == {"banned": False, "quota": False, "credit": 12.5}
    assert balance(server)["data"]["credit"] == 12.5
    # Other flags leave the balance alone.
    assert server.client.set_account(quota=True)["credit"] == 12.5
    server.client.reset()
    assert server.client.account() == {"banned": False, "quota": False, "credit": START}


@pytest.mark.parametrize("bad", [-1, "10", True, None])
def test_the_control_api_refuses_a_balance_that_is_not_a_number_of_at_least_0(
    server: EmulatorServer, bad: Any
) -> None:
    response = requests.post(f"{server.url}/_emulator/account", json={"credit": bad}, timeout=5)
    if bad is None:  # null leaves it unchanged, like the flags
        assert response.json()["credit"] == START
        return
    assert response.status_code == 400
    assert "credit must be a number of at least 0" in response.json()["error"]
    assert server.client.account()["credit"] == START


def test_the_default_balance_pays_for_far_more_than_the_suite_and_the_demo() -> None:
    config = EmulatorConfig()
    assert config.credit == DEFAULT_CREDIT
    # Every benchmark size at once, in video reage, the dearest job.
    assert config.credit >= 10 * (100 + 1000 + 5000) * config.video_reage_credit


def test_the_command_line_sets_the_balance_and_refuses_a_negative_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert build_parser().parse_args([]).credit == DEFAULT_CREDIT
    assert build_parser().parse_args(["--credit", "75"]).credit == 75
    assert main(["--credit", "-1", "--port", "0"]) == 2
    assert "credit must be a number of at least 0" in capsys.readouterr().err
