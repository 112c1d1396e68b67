"""
``on_kill`` of a trigger whose task is still deferred cancels nothing.

Airflow 3.3.2's triggerer stops every trigger it is no longer assigned through the path of a user's kill, so
``on_kill`` also runs when a triggerer that missed its heartbeats comes back and finds its triggers moved to
another triggerer. On the distributed stack that cancelled jobs the other triggerer was waiting for, and
their tasks failed. The trigger now asks Airflow whether its task instance is still deferred first.

The triggerer's channel to its supervisor exists only inside a running triggerer, so these tests stand in for
it (answering as the metadata database would); the cancel goes to the emulator for real. The stack test is
``tests/e2e/distributed/test_distributed.py::test_a_stalled_triggerer_that_comes_back_cancels_nothing``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.execution_time import task_runner
from airflow.sdk.execution_time.comms import GetTICount, TICount

from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.models import ReageJob
from airflow_provider_akool.triggers.reage import AkoolReageTrigger

TI = SimpleNamespace(dag_id="batch", task_id="reage", run_id="manual__1", map_index=7, try_number=1)


class SupervisorChannel:
    """Answers the trigger's ``GetTICount`` as the metadata database would: ``deferred`` of them."""

    def __init__(self, deferred: int | None) -> None:
        self.deferred = deferred
        self.asked: list[Any] = []

    async def asend(self, msg: Any) -> Any:
        self.asked.append(msg)
        if self.deferred is None:
            raise ConnectionError("the supervisor went away")
        return TICount(count=self.deferred)


@pytest.fixture
def stuck_job(akool_connection: object, emulator: Any) -> Iterator[ReageJob]:
    hook = AkoolHook()
    url = f"{emulator.url}/media/samples/portrait-emulator-stuck.jpg"
    yield hook.submit_image_reage(url, 10, hook.detect_faces(url).target_image())
    hook.close()


def _trigger(job: ReageJob) -> AkoolReageTrigger:
    trigger = AkoolReageTrigger(
        result_ids=[job.id], poll_interval=0.1, deadline=time.time() + 20, job_id_of={job.id: job.job_id}
    )
    trigger.task_instance = TI  # type: ignore[assignment]
    return trigger


async def test_on_kill_of_a_task_still_deferred_cancels_nothing(
    stuck_job: ReageJob, emulator_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = SupervisorChannel(deferred=1)
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", channel, raising=False)

    await _trigger(stuck_job).on_kill()

    assert emulator_client.counts()["job_del"] == 0
    assert emulator_client.ledger()["jobs"][stuck_job.id]["cancelled"] is False
    (asked,) = channel.asked
    assert asked == GetTICount(
        dag_id="batch", task_ids=["reage"], run_ids=["manual__1"], map_index=7, states=["deferred"]
    )


async def test_on_kill_of_a_task_a_user_moved_out_of_deferred_cancels_once(
    stuck_job: ReageJob, emulator_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", SupervisorChannel(deferred=0), raising=False)

    await _trigger(stuck_job).on_kill()

    assert emulator_client.counts()["job_del"] == 1
    assert emulator_client.ledger()["jobs"][stuck_job.id]["cancelled"] is True


async def test_on_kill_cancels_when_the_state_cannot_be_read(
    stuck_job: ReageJob, emulator_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", SupervisorChannel(deferred=None), raising=False)

    await _trigger(stuck_job).on_kill()

    assert emulator_client.counts()["job_del"] == 1


class SlowChannel(SupervisorChannel):
    """A supervisor that takes its time to answer (it asks the API server, which asks the database)."""

    async def asend(self, msg: Any) -> Any:
        await asyncio.sleep(0.5)
        return await super().asend(msg)


async def test_on_kill_cancelled_again_by_the_triggerer_still_cancels_the_job(
    stuck_job: ReageJob, emulator_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Airflow 3.3.2 cancels a stopping trigger again at every sync (about each second) while on_kill runs,
    # and swallows the CancelledError: the kill must not stop half-way.
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", SlowChannel(deferred=0), raising=False)
    killing = asyncio.ensure_future(_trigger(stuck_job).on_kill())
    await asyncio.sleep(0.1)
    killing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await killing

    deadline = time.monotonic() + 10
    while emulator_client.counts()["job_del"] == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert emulator_client.counts()["job_del"] == 1
    assert emulator_client.ledger()["jobs"][stuck_job.id]["cancelled"] is True
