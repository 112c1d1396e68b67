"""
Run the example DAGs end to end with ``dag.test()``: ``make demo``.

By default against a local Akool emulator started here on a free loopback port (no key, no network). With
``AKOOL_API_KEY`` set and ``AKOOL_BASE_URL`` unset, against the real Akool; then ``AKOOL_DEMO_MEDIA_BASE_URL``
must name a public folder with the sample images (see the DAG files). With ``AKOOL_BASE_URL`` set, against
that server (an emulator of your own, say), with ``AKOOL_API_KEY`` or the emulator's default key.

Airflow runs from a private, temporary ``AIRFLOW_HOME`` (SQLite), so nothing of yours is touched. Results
are kept in ``./demo-output/`` (``AKOOL_DEMO_OUTPUT_PATH`` changes that) and listed in a table at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "dags"
OUTPUT = REPO / "demo-output"
REAL_AKOOL = "https://openapi.akool.com"


@contextmanager
def akool_target() -> Iterator[tuple[str, str, str]]:
    """Yield the base URL, API key and a description of the Akool to use; start the emulator if needed."""
    key, base_url = os.environ.get("AKOOL_API_KEY"), os.environ.get("AKOOL_BASE_URL")
    if base_url:
        from airflow_provider_akool.emulator.config import DEFAULT_API_KEY

        yield base_url, key or DEFAULT_API_KEY, f"Akool at {base_url} (AKOOL_BASE_URL)"
    elif key:
        if not os.environ.get("AKOOL_DEMO_MEDIA_BASE_URL"):
            sys.exit(
                "With the real Akool, set AKOOL_DEMO_MEDIA_BASE_URL to a public folder (https://.../) "
                "holding the sample images the example DAGs name, so that Akool can download them."
            )
        yield REAL_AKOOL, key, f"the real Akool at {REAL_AKOOL} (key from AKOOL_API_KEY)"
    else:
        from airflow_provider_akool.emulator import EmulatorServer

        with EmulatorServer() as emulator:
            yield emulator.url, emulator.config.api_key, f"the local Akool emulator at {emulator.url}"


def prepare_airflow(home: Path) -> None:
    """Point Airflow at a private home and the repository's DAGs, and migrate its database."""
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # dag.test() logs every step of every task; the table at the end is the demo's output.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    print(f"Preparing Airflow in {home} ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def results_of(dag: Any, dag_run: Any) -> list[tuple[str, str, str]]:
    """Return (task, status, where) of every result an Akool operator or sensor of the run returned."""
    rows = []
    for ti in sorted(dag_run.get_task_instances(), key=lambda ti: (ti.task_id, ti.map_index)):
        task = dag.get_task(ti.task_id)
        if not task.operator_class.__module__.startswith("airflow_provider_akool."):
            continue
        # A task that only submits returns the status at submission; a later task (a sensor) waits for it.
        partial = getattr(task, "partial_kwargs", None) or {}
        waited = partial.get("wait_for_completion", getattr(task, "wait_for_completion", True))
        value = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)
        for result in value if isinstance(value, list) else [value]:
            if isinstance(result, dict) and {"id", "status", "url"} <= set(result):
                name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
                status = str(result["status"]) if waited is not False else f"submitted ({result['status']})"
                rows.append((name, status, str(result.get("output_path") or result["url"])))
    return rows


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [header, tuple("-" * width for width in widths), *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines
    )


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="akool-demo-airflow-"))
    try:
        with akool_target() as (base_url, key, described):
            prepare_airflow(home)
            os.environ["AIRFLOW_CONN_AKOOL_DEFAULT"] = json.dumps(
                {"conn_type": "akool", "host": base_url, "password": key}
            )
            emulated = base_url != REAL_AKOOL
            os.environ.setdefault("AKOOL_DEMO_MEDIA_BASE_URL", f"{base_url}/media/samples/")
            os.environ.setdefault("AKOOL_DEMO_POLL_INTERVAL", "0.5" if emulated else "10")
            os.environ.setdefault("AKOOL_DEMO_OUTPUT_PATH", f"{OUTPUT}/")
            print(f"Using {described}", flush=True)
            return run_examples()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_order(bag: Any) -> list[str]:
    """
    Every DAG id, those scheduled on assets last: run by hand after their producers, they find the asset
    events of this demo (``publish_product_photos`` reads the files ``akool_background_change`` kept).
    """

    def scheduled_on_assets(dag_id: str) -> bool:
        # By name: the class lives in airflow.timetables on 3.1 and in the task SDK on 3.2+.
        return type(bag.dags[dag_id].timetable).__name__ == "AssetTriggeredTimetable"

    return sorted(bag.dag_ids, key=lambda dag_id: (scheduled_on_assets(dag_id), dag_id))


def run_examples() -> int:
    """Run every DAG of the dags folder with dag.test() and print what ran and where the results are."""
    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"Could not load {path}:\n{error}", file=sys.stderr)
        return 1
    runs, results = [], []
    for dag_id in run_order(bag):
        print(f"Running {dag_id} ...", flush=True)
        started = time.monotonic()
        dag_run = bag.dags[dag_id].test()
        runs.append((dag_id, str(dag_run.state), f"{time.monotonic() - started:.1f}"))
        results += [(dag_id, *row) for row in results_of(bag.dags[dag_id], dag_run)]
    print()
    print(table(runs, ("DAG", "state", "seconds")))
    print()
    print(table(results, ("DAG", "task", "status", "result")) if results else "No results.")
    kept = os.environ["AKOOL_DEMO_OUTPUT_PATH"]
    print(f"\nKept results (where a DAG keeps them) are under {kept}; Akool's own URLs last 7 days.")
    return 0 if all(state == "success" for _, state, _ in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
