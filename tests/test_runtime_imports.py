"""
The provider at run time loads nothing of the emulator: no ``airflow_provider_akool.emulator`` module, and
none of the server libraries only the ``emulator`` extra installs (FastAPI, Starlette, uvicorn, Pillow).

Checked in a fresh interpreter, since this test process has the emulator running in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

#: Top-level modules that only the ``emulator`` extra promises.
EMULATOR_ONLY = ("fastapi", "starlette", "uvicorn", "PIL")

# Imports every class get_provider_info() names and every other module of the provider (some are imported
# lazily, e.g. storage), then works as a task and a triggerer would: an operator's execute(), the sync hook,
# and a trigger run to its event (the async hook and the shared poller).
RUN_THE_PROVIDER = textwrap.dedent(
    """
    import asyncio, importlib, json, pkgutil, sys, time

    import airflow_provider_akool
    from airflow_provider_akool import get_provider_info

    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[kind]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    named = [*info["extra-links"], *(c["hook-class-name"] for c in info["connection-types"])]
    for path in named:
        module, _, name = path.rpartition(".")
        getattr(importlib.import_module(module), name)
    # Not pkgutil.walk_packages: it imports every package it walks, the emulator's too.
    packages = [airflow_provider_akool]
    while packages:
        package = packages.pop()
        for found in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if found.name.startswith("airflow_provider_akool.emulator") or found.name.endswith("__main__"):
                continue
            # The FastAPI apps of the UI plugin (plugins/views.py) and of the webhook receiver
            # (plugins/webhook_receiver.py): only the API server imports them. Their plugin modules (loaded by
            # every component) must not load FastAPI.
            if found.name in (
                "airflow_provider_akool.plugins.views_app",
                "airflow_provider_akool.webhook.receiver",
            ):
                continue
            module = importlib.import_module(found.name)
            if found.ispkg:
                packages.append(module)

    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.operators.reage import AkoolDetectFacesOperator
    from airflow_provider_akool.triggers.reage import AkoolReageTrigger

    image = sys.argv[1]
    faces = AkoolDetectFacesOperator(task_id="faces", image_url=image).execute({})
    job = AkoolHook().submit_image_reage(image, 10, faces)

    async def wait():
        trigger = AkoolReageTrigger(result_ids=[job.id], poll_interval=0.1, deadline=time.time() + 60)
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(wait())
    print(json.dumps({"status": event["status"], "modules": sorted(sys.modules)}))
    """
)


def loaded_emulator_modules(modules: list[str]) -> list[str]:
    return [
        name
        for name in modules
        if name.split(".")[0] in EMULATOR_ONLY or name.startswith("airflow_provider_akool.emulator")
    ]


def test_running_the_provider_loads_nothing_of_the_emulator(
    akool_connection: Any, emulator: Any, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", RUN_THE_PROVIDER, f"{emulator.url}/media/samples/faces-3.jpg"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["status"] == "success"
    # The run did reach the provider's code paths this test is about.
    assert {"airflow_provider_akool.hooks.akool", "airflow_provider_akool.triggers.poller", "httpx"} <= set(
        report["modules"]
    )
    assert loaded_emulator_modules(report["modules"]) == []
