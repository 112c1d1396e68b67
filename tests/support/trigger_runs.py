"""Running triggers in a test's event loop as a triggerer does, and steering their Akool jobs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_akool.emulator import EmulatorClient
from airflow_provider_akool.triggers.base import import_first_poll_modules

#: Below the adaptive floor (1 s), so every wait polls at exactly this interval.
POLL = 0.2


@pytest.fixture(autouse=True)
async def _first_poll_modules_imported() -> None:
    """
    Import the first poll's modules before a test starts its waits, as a triggerer does once in its life.

    The first waits of a process each import them in a thread (see ``import_first_poll_modules``) and come
    back from it one by one, far apart on a busy machine: they would not share the first round. Autouse in
    the modules that import it.
    """
    await import_first_poll_modules()


async def payloads(trigger: Any) -> list[dict[str, Any]]:
    """Every event of the trigger, as a triggerer collects them."""
    return [event.payload async for event in trigger.run()]


def start(triggers: list[Any]) -> list[asyncio.Task[list[dict[str, Any]]]]:
    """Run each trigger as a task of the running loop; each task's value is its events."""
    return [asyncio.ensure_future(payloads(trigger)) for trigger in triggers]


async def finish(emulator_client: EmulatorClient, ids: list[str], status: int = 3) -> None:
    """Pin the status of jobs from a thread: the control client blocks, the loop must not."""

    def pin() -> None:
        for akool_id in ids:
            emulator_client.set_job_status(akool_id, status)

    await asyncio.to_thread(pin)


async def listbyids_ids(emulator_client: EmulatorClient) -> list[list[str]]:
    """The ids of every ``listbyids`` request the emulator served, in order."""
    ledger = await asyncio.to_thread(emulator_client.ledger)
    ids: list[list[str]] = ledger["listbyids_ids"]
    return ids
