"""
The connection form the Airflow UI draws for ``akool``: the same fields on 3.1 (from the hook's methods) as
on 3.2+ (from the provider info's conn-fields), asked from the API server's endpoint the UI itself calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_akool import get_provider_info
from airflow_provider_akool.hooks.akool import AkoolHook

# A fresh interpreter: on 3.1 the endpoint puts stand-ins for WTForms and Flask-AppBuilder into sys.modules.
ASK_THE_API_SERVER = textwrap.dedent(
    """
    import json

    from fastapi.testclient import TestClient

    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    client = TestClient(create_app(apps="core"))
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="ADMIN"))
    reply = client.get("/ui/connections/hook_meta", headers={"Authorization": f"Bearer {token}"})
    reply.raise_for_status()
    (akool,) = [hook for hook in reply.json() if hook["connection_type"] == "akool"]
    print(json.dumps({"akool": akool}))
    """
)


@pytest.fixture(scope="module")
def hook_meta(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What ``GET /ui/connections/hook_meta`` says of ``akool``."""
    env = {**os.environ, "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-jwt-secret-" + "x" * 64}
    result = subprocess.run(
        [sys.executable, "-c", ASK_THE_API_SERVER],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path_factory.mktemp("hook-meta"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def declared() -> dict[str, Any]:
    (connection_type,) = get_provider_info()["connection-types"]
    return dict(connection_type)


def test_the_ui_gets_every_declared_extra_field_with_its_label_and_description(
    hook_meta: dict[str, Any],
) -> None:
    extra_fields = hook_meta["akool"]["extra_fields"]
    conn_fields = declared()["conn-fields"]

    assert extra_fields is not None, "the UI would show the generic form"
    assert set(extra_fields) == set(conn_fields)
    for name, spec in conn_fields.items():
        assert extra_fields[name]["schema"]["title"] == spec["label"], name
        assert extra_fields[name]["description"] == spec["description"], name


def test_the_ui_offers_exactly_the_declared_auth_types_with_auto_first(hook_meta: dict[str, Any]) -> None:
    auth_type = hook_meta["akool"]["extra_fields"]["auth_type"]

    assert auth_type["schema"]["enum"] == ["auto", "api_key", "bearer", "client_credentials"]
    assert auth_type["value"] == "auto"
    # The timeout's default reaches the form; 3.1 shows it as text, which the hook parses.
    assert float(hook_meta["akool"]["extra_fields"]["timeout"]["value"]) == 30


def test_the_ui_relabels_hides_and_fills_the_standard_fields(hook_meta: dict[str, Any]) -> None:
    standard = hook_meta["akool"]["standard_fields"]
    behaviour = declared()["ui-field-behaviour"]

    assert standard is not None, "the UI would show the generic form"
    # The Test button sends the stored port back (Airflow 3.3.1-3.3.2 refuse a test without one): the form
    # shows Port and Scheme so that users can fill them in.
    assert standard["url_schema"]["hidden"] is False
    assert standard["port"]["hidden"] is False
    assert standard["port"]["placeholder"] == "443"
    for field, label in behaviour["relabeling"].items():
        # The UI calls the connection's schema field url_schema.
        shown = standard["url_schema" if field == "schema" else field]
        assert shown["title"] == label, field
        assert shown["placeholder"] == behaviour["placeholders"][field], field


def test_the_3_1_form_keeps_the_values_the_hook_reads(akool_connection: Any) -> None:
    # What 3.1's form stores: every extra field as text, under its own name.
    akool_connection(extra=json.dumps({"auth_type": "bearer", "timeout": "2.5", "detect_url": ""}))

    settings = AkoolHook().settings

    assert settings.auth_type == "bearer"
    assert settings.timeout == 2.5
    assert settings.detect_url.endswith("/detect")
