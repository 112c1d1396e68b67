"""
Run the lineage test DAG with ``dag.test()`` in a process of its own; write each task's state and value to
``OUTPUT_DIR.result.json``.

A process of its own because the OpenLineage provider reads its configuration once per process (the
transport comes from the environment the test sets), and because ``--without-openlineage`` must make the
provider unimportable before anything imports it. Usage:
``python -m tests.lineage.run_dag EMULATOR_URL OUTPUT_DIR [--without-openlineage] [--tasks=a,b]``.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import sys
from typing import Any

#: A query string that stands for a signed URL's signature: it must never reach a lineage event.
SIGNATURE = "X-Amz-Signature=0123456789abcdef-signature&X-Amz-Credential=AKIAEXAMPLE-credential"
BLOCKED = ("openlineage", "airflow.providers.openlineage")


class _NoOpenLineage(importlib.abc.MetaPathFinder):
    """Refuse every OpenLineage module, as if the ``openlineage`` extra were not installed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if any(name == blocked or name.startswith(blocked + ".") for blocked in BLOCKED):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None


def _is_openlineage(dist: Any) -> bool:
    try:
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
    except Exception:
        return False
    return name.startswith("openlineage") or name == "apache-airflow-providers-openlineage"


def hide_openlineage() -> None:
    """
    Make the OpenLineage provider and client look uninstalled: no module imports, and no distribution
    (so no provider entry point and no plugin) is listed, which is what Airflow discovers providers by.
    """
    sys.meta_path.insert(0, _NoOpenLineage())
    import importlib.metadata

    modules: list[Any] = [importlib.metadata]
    try:
        import importlib_metadata

        modules.append(importlib_metadata)
    except ImportError:
        pass
    for module in modules:
        original = module.distributions

        def distributions(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            return (dist for dist in _original(*args, **kwargs) if not _is_openlineage(dist))

        module.distributions = distributions


def build_dag(emulator_url: str, output_dir: str, only: set[str] | None = None) -> Any:
    import pendulum
    from airflow.sdk import dag

    from airflow_provider_akool.operators.background_change import AkoolBackgroundChangeOperator
    from airflow_provider_akool.operators.reage import AkoolImageReageOperator, AkoolVideoReageOperator

    samples = f"{emulator_url}/media/samples"
    face = {"path": f"{samples}/portrait.jpg?{SIGNATURE}", "opts": "1,2:3,4:5,6:7,8"}
    tasks: dict[str, tuple[type, dict[str, Any]]] = {
        # Deferred, kept: the output is the kept file; the input a signed URL.
        "image": (
            AkoolImageReageOperator,
            {
                "modify_image": f"{samples}/portrait.jpg?{SIGNATURE}",
                "face_reage": 5,
                "deferrable": True,
                "output_path": f"{output_dir}/",
            },
        ),
        # In the worker, not kept: the output is the result URL; target_image paths are inputs too.
        "video": (
            AkoolVideoReageOperator,
            {"modify_video": f"{samples}/clip.mp4", "face_reage": -5, "target_image": [face]},
        ),
        "background": (
            AkoolBackgroundChangeOperator,
            {
                "origin_img": f"{samples}/product.png",
                "template_url": f"{samples}/portrait.jpg#fragment",
                "canvas_size": "64x48",
                "modify_origin_img_size": "20x20",
                "overlay_origin_x": 1,
                "overlay_origin_y": 2,
            },
        ),
        # A job that fails: the FAIL event still names it, with its status.
        "fails": (
            AkoolImageReageOperator,
            {"modify_image": f"{samples}/portrait-emulator-fail.jpg", "face_reage": 5},
        ),
    }

    @dag(dag_id="akool_lineage", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
    def akool_lineage() -> None:
        for task_id, (operator, kwargs) in tasks.items():
            if not only or task_id in only:
                operator(task_id=task_id, poll_interval=0.2, **kwargs)

    return akool_lineage()


def main(argv: list[str]) -> int:
    emulator_url, output_dir = argv[0], argv[1]
    if "--without-openlineage" in argv:
        hide_openlineage()
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    try:
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[no-redef]

    only = next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--tasks=")), "")
    dag = build_dag(emulator_url, output_dir, set(filter(None, only.split(","))))
    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=os.devnull)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    run = dag.test()
    tasks = {
        ti.task_id: {"state": str(ti.state), "value": ti.xcom_pull(task_ids=ti.task_id)}
        for ti in run.get_task_instances()
    }
    loaded = sorted(name for name in sys.modules if name.split(".")[0] == "openlineage")
    loaded += sorted(name for name in sys.modules if name.startswith("airflow.providers.openlineage"))
    # A file, not stdout: Airflow's log lines share stdout and may run into a printed line.
    with open(f"{output_dir}.result.json", "w") as result:
        json.dump({"tasks": tasks, "openlineage_modules": loaded}, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
