"""The Airflow under test, for the guarantees that need a given version."""

from __future__ import annotations

from importlib.metadata import version

from packaging.version import Version

#: The Airflow under test, as ``(major, minor, patch)``.
AIRFLOW_VERSION: tuple[int, ...] = Version(version("apache-airflow")).release
#: ``task_state_store`` (crash safety) and trigger ``on_kill`` need Airflow 3.3.
HAS_TASK_STATE_STORE = AIRFLOW_VERSION >= (3, 3)
