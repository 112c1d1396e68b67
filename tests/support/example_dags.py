"""The example DAGs of ``dags/``, parsed."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

#: The repository's example DAGs.
DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


def parse_examples() -> Any:
    """Return the DagBag of ``dags/``, parsed as the DAG processor parses it."""
    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    return DagBag(dag_folder=str(DAGS_FOLDER))


def parse_for_emulator(emulator: Any, monkeypatch: pytest.MonkeyPatch, output_path: str) -> Any:
    """Return the example DAGs parsed for ``emulator`` as ``make demo`` sets them up."""
    monkeypatch.setenv("AKOOL_DEMO_MEDIA_BASE_URL", f"{emulator.url}/media/samples/")
    monkeypatch.setenv("AKOOL_DEMO_POLL_INTERVAL", "0.2")
    monkeypatch.setenv("AKOOL_DEMO_OUTPUT_PATH", output_path)
    return parse_examples()


def parse_offline(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Return the example DAGs parsed with every socket connection failing the test."""

    def no_network(*args: Any) -> None:
        raise AssertionError(f"a DAG file opened a connection at parse time: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    return parse_examples()
