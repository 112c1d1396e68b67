"""The example DAGs of ``dags/``, parsed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The repository's example DAGs.
DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


def parse_examples() -> Any:
    """Return the DagBag of ``dags/``, parsed as the DAG processor parses it."""
    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    return DagBag(dag_folder=str(DAGS_FOLDER))
