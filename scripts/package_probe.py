"""
Run inside the fresh venv of ``make package-check`` (scripts/package_check.py copies it out of the checkout):
import every class ``get_provider_info()`` names from the installed wheel, then run one example DAG with
``dag.test()`` against the installed emulator. Prints one JSON line; exits non-zero on any failure.

Usage: ``python package_probe.py DAG_ID SOURCE_TREE`` (the source tree must not be where anything loads from).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def loaded_from(source_tree: Path) -> list[str]:
    """Modules of the provider loaded from anywhere but this venv; sys.path entries inside the source tree."""
    prefix = Path(sys.prefix).resolve()
    wrong = [
        name
        for name, module in list(sys.modules.items())
        if name.startswith("airflow_provider_akool")
        and getattr(module, "__file__", None)
        and prefix not in Path(module.__file__).resolve().parents
    ]
    wrong += [f"sys.path: {entry}" for entry in sys.path if entry and Path(entry).resolve() == source_tree]
    wrong += [
        f"sys.path: {entry}" for entry in sys.path if entry and source_tree in Path(entry).resolve().parents
    ]
    return wrong


def import_named_classes() -> int:
    """Import every module and class the provider info names; return how many names."""
    from airflow_provider_akool import get_provider_info

    info = get_provider_info()
    count = 0
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[kind]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
                count += 1
    for path in [*info["extra-links"], *(c["hook-class-name"] for c in info["connection-types"])]:
        module, _, name = path.rpartition(".")
        getattr(importlib.import_module(module), name)
        count += 1
    return count


def run_example(dag_id: str) -> dict[str, Any]:
    """Run ``dag_id`` from the DAGs folder with dag.test() against the installed emulator."""
    from airflow_provider_akool.emulator import EmulatorConfig, EmulatorServer

    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    config = EmulatorConfig(queued_seconds=0.1, processing_seconds=0.3)
    kept = Path(tempfile.mkdtemp(prefix="akool-kept-"))
    with EmulatorServer(config) as emulator:
        os.environ["AIRFLOW_CONN_AKOOL_DEFAULT"] = json.dumps(
            {"conn_type": "akool", "host": emulator.url, "password": config.api_key}
        )
        os.environ["AKOOL_DEMO_MEDIA_BASE_URL"] = f"{emulator.url}/media/samples/"
        os.environ["AKOOL_DEMO_POLL_INTERVAL"] = "0.2"
        os.environ["AKOOL_DEMO_OUTPUT_PATH"] = f"{kept}/"
        bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        dag_run = bag.dags[dag_id].test()
        states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    if str(dag_run.state) != "success":
        raise SystemExit(f"{dag_id} ended {dag_run.state}: {states}")
    files = [path.name for path in kept.iterdir()]
    if not files:
        raise SystemExit(f"{dag_id} kept no result in {kept}")
    return {"dag": dag_id, "state": str(dag_run.state), "tasks": states, "kept": files}


def main() -> int:
    dag_id, source_tree = sys.argv[1], Path(sys.argv[2]).resolve()
    classes = import_named_classes()
    report = run_example(dag_id)
    wrong = loaded_from(source_tree)
    if wrong:
        raise SystemExit(f"loaded from outside the install: {wrong}")
    import airflow_provider_akool

    report.update(names_imported=classes, version=airflow_provider_akool.__version__)
    report["package"] = str(Path(airflow_provider_akool.__file__).parent)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
