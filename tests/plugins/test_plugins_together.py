"""
The provider's two plugins on one API server: each keeps its own paths, whichever Airflow mounts first.

Airflow mounts every plugin's FastAPI app with ``app.mount(url_prefix, app)`` (``init_plugins``), and a mount
takes every path under its prefix: two apps under one prefix would leave the second unreachable.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from airflow_provider_akool.plugins import views, webhook_receiver


def _mounted(apps: list[dict[str, Any]]) -> TestClient:
    root = FastAPI()
    for app in apps:
        root.mount(app["url_prefix"], app["app"])  # as airflow.api_fastapi.app.init_plugins does
    return TestClient(root)


@pytest.mark.parametrize("views_first", [True, False], ids=["views_first", "receiver_first"])
def test_the_views_and_the_receiver_answer_on_their_own_paths_in_either_order(
    views_first: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_RECEIVER", "True")
    receiver_apps = webhook_receiver._fastapi_apps()
    assert receiver_apps, "the receiver is switched on"
    apps = [*views.AkoolViewsPlugin.fastapi_apps, *receiver_apps]
    client = _mounted(apps if views_first else apps[::-1])

    # The views' own answer: no token, 401 (not the receiver's or a bare 404).
    assert client.get("/akool/ui/jobs").status_code == 401
    # The receiver's own answers: not JSON is 415, an undecodable route 404 (the views app would say 404/405
    # to both).
    assert (
        client.post("/akool/webhook/a/b", content=b"x", headers={"content-type": "text/plain"}).status_code
        == 415
    )
    assert client.post("/akool/webhook/a/b", json={}).status_code == 404
    # Every view link the UI is given lives under the views' prefix.
    assert all(
        view["href"].startswith(views.URL_PREFIX + "/") for view in views.AkoolViewsPlugin.external_views
    )
