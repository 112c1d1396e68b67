"""Credentials: the three accepted forms, their precedence, getToken, expiry and account states."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_akool.emulator import EmulatorConfig, EmulatorServer

API = "/api/open/v3"
KEY = "emulator-api-key"
LIST = f"{API}/faceswap/result/listbyids?_ids=0123456789abcdef01234567"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(token_ttl_seconds=3600)) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(server: EmulatorServer) -> None:
    server.client.reset()


def get(server: EmulatorServer, headers: dict[str, str], path: str = LIST) -> dict[str, Any]:
    response = requests.get(f"{server.url}{path}", headers=headers, timeout=5)
    assert response.status_code == 200
    reply: dict[str, Any] = response.json()
    return reply


def get_token(server: EmulatorServer, body: Any) -> dict[str, Any]:
    response = requests.post(f"{server.url}{API}/getToken", json=body, timeout=5)
    assert response.status_code == 200
    reply: dict[str, Any] = response.json()
    return reply


def token(server: EmulatorServer) -> str:
    reply = get_token(server, {"clientId": "emulator-client-id", "clientSecret": KEY})
    value: str = reply["token"]
    return value


@pytest.mark.parametrize(
    ("headers", "code", "auth"),
    [
        ({"x-api-key": KEY}, 1000, "api_key"),
        ({"Authorization": f"Bearer {KEY}"}, 1000, "bearer_key"),
        ({"authorization": f"bearer {KEY}"}, 1000, "bearer_key"),
        ({}, 1102, "none"),
        ({"x-api-key": "wrong"}, 1101, "invalid"),
        ({"Authorization": "Bearer wrong"}, 1101, "invalid"),
        ({"Authorization": KEY}, 1101, "invalid"),
    ],
)
def test_credential_forms(server: EmulatorServer, headers: dict[str, str], code: int, auth: str) -> None:
    reply = get(server, headers)
    assert reply["code"] == code
    assert set(reply) == {"code", "msg", "data"}
    (entry,) = server.client.ledger()["requests"]
    assert (entry["auth"], entry["code"], entry["http_status"]) == (auth, code, 200)


def test_error_messages_are_the_vendors(server: EmulatorServer) -> None:
    assert get(server, {})["msg"] == "Authorization cannot be empty"
    assert get(server, {"x-api-key": "x"})["msg"] == "Invalid authorization or The request token has expired"


def test_authorization_wins_over_x_api_key(server: EmulatorServer) -> None:
    assert get(server, {"Authorization": "Bearer wrong", "x-api-key": KEY})["code"] == 1101
    assert get(server, {"Authorization": f"Bearer {KEY}", "x-api-key": "wrong"})["code"] == 1000


def test_get_token_and_use_it(server: EmulatorServer) -> None:
    reply = get_token(server, {"clientId": "emulator-client-id", "clientSecret": KEY})
    assert set(reply) == {"code", "token"}
    assert reply["code"] == 1000
    assert reply["token"] != KEY
    assert get(server, {"Authorization": f"Bearer {reply['token']}"})["code"] == 1000
    assert server.client.ledger()["requests"][-1]["auth"] == "token"


@pytest.mark.parametrize(
    "body",
    [
        {"clientId": "emulator-client-id", "clientSecret": "wrong"},
        {"clientId": "wrong", "clientSecret": KEY},
    ],
)
def test_get_token_with_wrong_credentials_is_1101(server: EmulatorServer, body: dict[str, str]) -> None:
    reply = get_token(server, body)
    assert reply["code"] == 1101
    assert set(reply) == {"code", "msg"}


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"clientSecret": KEY}, "clientId"),
        ({"clientId": "emulator-client-id"}, "clientSecret"),
        (None, "body"),
    ],
)
def test_get_token_missing_field_is_1003(server: EmulatorServer, body: Any, name: str) -> None:
    reply = get_token(server, body)
    assert reply["code"] == 1003
    assert name in reply["msg"]


def test_expire_tokens_invalidates_issued_tokens_only(server: EmulatorServer) -> None:
    old = token(server)
    server.client.expire_tokens()
    assert get(server, {"Authorization": f"Bearer {old}"})["code"] == 1101
    assert get(server, {"Authorization": f"Bearer {token(server)}"})["code"] == 1000
    assert get(server, {"x-api-key": KEY})["code"] == 1000


def test_tokens_expire_with_the_clock(server: EmulatorServer) -> None:
    value = token(server)
    server.client.advance_clock(3000)
    assert get(server, {"Authorization": f"Bearer {value}"})["code"] == 1000
    server.client.advance_clock(700)
    assert get(server, {"Authorization": f"Bearer {value}"})["code"] == 1101


def test_custom_credentials() -> None:
    config = EmulatorConfig(api_key="k1", client_id="c1")
    assert config.client_secret == "k1"
    with EmulatorServer(config) as other:
        assert get(other, {"x-api-key": "k1"})["code"] == 1000
        assert get(other, {"x-api-key": KEY})["code"] == 1101
        assert get_token(other, {"clientId": "c1", "clientSecret": "k1"})["code"] == 1000


def test_banned_account_refuses_every_call(server: EmulatorServer) -> None:
    server.client.set_account(banned=True)
    assert get(server, {"x-api-key": KEY})["code"] == 1200
    assert (
        get(server, {"x-api-key": KEY}, f"{API}/content/image/infobymodelid?image_model_id=x")["code"] == 1200
    )
    assert get_token(server, {"clientId": "emulator-client-id", "clientSecret": KEY})["code"] == 1200
    # Credentials are checked first: no credential is still 1102.
    assert get(server, {})["code"] == 1102
    assert server.client.set_account(banned=False) == {
        "banned": False,
        "quota": False,
        "credit": server.config.credit,
    }
    assert get(server, {"x-api-key": KEY})["code"] == 1000


def test_quota_refuses_submits_only(server: EmulatorServer) -> None:
    server.client.set_account(quota=True)
    body = {
        "targetImage": [{"path": "https://a/b.jpg", "opts": "1,2:3,4:5,6:7,8"}],
        "face_reage": 5,
        "modifyImage": "https://a/b.jpg",
    }
    reply = requests.post(
        f"{server.url}{API}/faceswap/highquality/imgreage", json=body, headers={"x-api-key": KEY}, timeout=5
    ).json()
    assert reply["code"] == 1006
    assert get(server, {"x-api-key": KEY})["code"] == 1000
    server.client.reset()
    assert server.client.set_account() == {"banned": False, "quota": False, "credit": server.config.credit}


def test_credentials_never_reach_the_ledger(server: EmulatorServer) -> None:
    value = token(server)
    get(server, {"Authorization": f"Bearer {value}"})
    get(server, {"x-api-key": KEY})
    get(server, {"x-api-key": "some-wrong-key"})
    text = json.dumps(server.client.ledger())
    for secret in (value, KEY, "some-wrong-key", "emulator-client-id"):
        assert secret not in text
