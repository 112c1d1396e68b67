"""Shared fixtures: an isolated AIRFLOW_HOME, the local Akool emulator, and connections to it."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Airflow reads its configuration when first imported: point it at a private home before anything does.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="akool-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")

import pytest

from airflow_provider_akool.emulator import EmulatorClient, EmulatorConfig, EmulatorServer
from airflow_provider_akool.hooks import akool as akool_hook_module
from tests import floor
from tests.support import in_process_api
from tests.support.connections import API_KEY, CLIENT_ID, S3_CONN_ID, ConnectionFactory
from tests.support.s3_objects import make_bucket


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """
    Mark ``airflow_independent`` the tests that reach no part of Airflow that differs between versions.

    ``make test-floor`` leaves them out (``-m "not airflow_independent"``); ``make test`` runs them. The rule
    is computed from each module's imports and fixtures: tests/floor.py.
    """
    for item in items:
        if not floor.is_versioned(Path(str(item.fspath)), tuple(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.airflow_independent)


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    """One emulator for the session on a free loopback port; fast job progress."""
    config = EmulatorConfig(
        api_key=API_KEY,
        client_id=CLIENT_ID,
        client_secret=API_KEY,
        queued_seconds=0.1,
        processing_seconds=0.3,
        video_processing_seconds=0.6,
        bg_processing_seconds=0.3,
    )
    server = EmulatorServer(config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def emulator_client(emulator: EmulatorServer) -> Iterator[EmulatorClient]:
    """The emulator's control client, with jobs, ledger and faults reset before and after the test."""
    client = emulator.client
    client.reset()
    yield client
    client.reset()


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    """Tokens are cached per process; each test starts without one."""
    akool_hook_module._TOKENS.clear()
    yield
    akool_hook_module._TOKENS.clear()


@pytest.fixture
def akool_connection(
    emulator: EmulatorServer, emulator_client: EmulatorClient, monkeypatch: pytest.MonkeyPatch
) -> ConnectionFactory:
    """
    Define an ``akool`` connection to the emulator through an ``AIRFLOW_CONN_*`` variable.

    ``akool_connection()`` defines ``akool_default`` with the API key; keyword arguments change fields
    (``login``, ``password``, ``host``, ``extra``) and ``conn_id`` names another connection.
    """

    def define(conn_id: str = "akool_default", **fields: Any) -> str:
        conn: dict[str, Any] = {"conn_type": "akool", "host": emulator.url, "password": API_KEY}
        conn.update(fields)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    define()
    return define


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the private metadata database once per session; ``dag.test()`` needs it."""
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
    )
    # Airflow 3.1 builds an Execution API for each task dag.test() runs: one per process, as later Airflow.
    in_process_api.share_one_per_process()
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """A real S3 API (moto's server) on 127.0.0.1 for the session; stopped after."""
    from tests.support.s3_server import LocalS3

    server = LocalS3()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """
    The S3 server with the ``aws`` connection ``moto_s3`` to it, credentials not enforced (moto's default).

    Buckets stay for the session; tests use their own keys.
    """
    monkeypatch.setenv(f"AIRFLOW_CONN_{S3_CONN_ID.upper()}", s3_server.connection())
    yield s3_server
    s3_server.enforce_credentials(False)


@pytest.fixture
def bucket(s3: Any) -> Any:
    """The S3 client, with the input bucket (``tests.support.s3_objects.BUCKET``) made."""
    return make_bucket(s3)


@pytest.fixture(scope="module")
def module_emulator(emulator: Any, airflow_db: Any) -> Iterator[Any]:
    """The emulator, reset, with ``akool_default`` pointing at it, for DAG runs shared by a module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "AIRFLOW_CONN_AKOOL_DEFAULT",
            json.dumps({"conn_type": "akool", "host": emulator.url, "password": API_KEY}),
        )
        emulator.client.reset()
        yield emulator
        emulator.client.reset()
