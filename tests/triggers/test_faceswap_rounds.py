"""
Shared rounds across kinds: reage and face swap waits of one triggerer ride in the same ``listbyids``
requests (the kinds give one poller key), proven on the emulator's ledger by counting requests and the ids
each carried. The waits are those the operators hand the triggerer, run in one event loop as a triggerer
runs them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from airflow_provider_akool.emulator import EmulatorClient, EmulatorServer
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.operators.faceswap import (
    AkoolFaceSwapProOperator,
    AkoolImageFaceSwapOperator,
    AkoolVideoFaceSwapOperator,
)
from airflow_provider_akool.operators.reage import AkoolImageReageOperator
from airflow_provider_akool.triggers.poller import pollers_of_this_loop
from tests.support.connections import ConnectionFactory
from tests.support.trigger_runs import (  # noqa: F401 (_first_poll_modules_imported: an autouse fixture)
    POLL,
    _first_poll_modules_imported,
    finish,
    listbyids_ids,
    start,
)
from tests.triggers.poll_records import until


def mixed_operators(emulator: EmulatorServer, sets: int) -> list[Any]:
    """``sets`` times one deferrable operator of each reage-family kind, its job held until finished."""
    stuck = f"{emulator.url}/media/samples/portrait-emulator-stuck.jpg"
    clip = f"{emulator.url}/media/samples/clip-emulator-stuck.mp4"
    alice = f"{emulator.url}/media/samples/alice.jpg"
    face = {"path": alice, "opts": "1,2:3,4:5,6:7,8"}
    common = {"poll_interval": POLL, "deferrable": True}
    operators: list[Any] = []
    for n in range(sets):
        operators += [
            AkoolImageReageOperator(task_id=f"reage_{n}", modify_image=stuck, face_reage=5, **common),
            AkoolImageFaceSwapOperator(task_id=f"swap_{n}", modify_image=stuck, source_image=alice, **common),
            AkoolVideoFaceSwapOperator(
                task_id=f"video_{n}", modify_video=clip, source_image=alice, target_image=[face], **common
            ),
            AkoolFaceSwapProOperator(task_id=f"pro_{n}", modify_image=stuck, source_image=alice, **common),
        ]
    return operators


async def submit_all(operators: list[Any]) -> list[Any]:
    """Submit each operator's job as its ``execute`` would (in a thread: the hook is synchronous)."""

    def submit() -> list[Any]:
        jobs = []
        for operator in operators:
            operator.validate_inputs()
            hook = AkoolHook()
            jobs.append(operator.submit(hook, {}, None))
            hook.close()
        return jobs

    return await asyncio.to_thread(submit)


async def test_reage_and_face_swap_waits_share_listbyids_rounds(
    akool_connection: ConnectionFactory, emulator: EmulatorServer, emulator_client: EmulatorClient
) -> None:
    operators = mixed_operators(emulator, 3)
    jobs = await submit_all(operators)
    kinds = {job.id: operator.kind.name for job, operator in zip(jobs, operators, strict=True)}
    assert set(kinds.values()) == {"reage", "faceswap", "faceswap pro"}
    before = len(await listbyids_ids(emulator_client))
    deadline = time.time() + 60
    triggers = [
        operator.make_trigger(job, started_at=time.time(), deadline=deadline)
        for job, operator in zip(jobs, operators, strict=True)
    ]
    tasks = start(triggers)

    async def three_rounds() -> bool:
        return len(await listbyids_ids(emulator_client)) - before >= 3

    await until(three_rounds, "three listbyids rounds")
    # One poller for the three kinds: the waits share it.
    assert len(pollers_of_this_loop()) == 1
    await finish(emulator_client, [job.id for job in jobs])
    results = await asyncio.gather(*tasks)

    requests = (await listbyids_ids(emulator_client))[before:]
    # Every request asked for all 12 waits at once (12 ids fit one request of 50): no request per wait.
    full = [request for request in requests if set(request) == set(kinds)]
    assert len(full) >= 3, requests
    assert all(len(request) == len(set(request)) for request in requests)
    # 12 waits polled alone would cost 12 requests a round; shared, each round cost one.
    asked = sum(len(request) for request in requests)
    assert len(requests) * 6 <= asked
    for job, events in zip(jobs, results, strict=True):
        assert [event["status"] for event in events] == ["success"]
        assert [result["id"] for result in events[0]["results"]] == [job.id]


async def test_an_unreadable_face_swap_entry_fails_only_its_own_wait_in_a_mixed_round(
    akool_connection: ConnectionFactory, emulator: EmulatorServer, emulator_client: EmulatorClient
) -> None:
    # A poisoned entry among healthy ones of every kind, in the same listbyids replies: only the wait whose
    # job it is ends, with an error naming it; the reage and other face swap waits finish as usual.
    operators = mixed_operators(emulator, 2)
    jobs = await submit_all(operators)
    poisoned = jobs[1].id  # the first image face swap
    await asyncio.to_thread(emulator_client.poison_entry, poisoned, "status")
    before = len(await listbyids_ids(emulator_client))
    deadline = time.time() + 60
    triggers = [
        operator.make_trigger(job, started_at=time.time(), deadline=deadline, max_poll_errors=3)
        for job, operator in zip(jobs, operators, strict=True)
    ]
    tasks = start(triggers)

    async def first_round() -> bool:
        return len(await listbyids_ids(emulator_client)) > before

    await until(first_round, "the first listbyids round")
    await finish(emulator_client, [job.id for job in jobs if job.id != poisoned])
    results = await asyncio.gather(*tasks)

    requests = (await listbyids_ids(emulator_client))[before:]
    assert sorted(requests[0]) == sorted(job.id for job in jobs)  # one request for all eight kinds' waits
    for job, events in zip(jobs, results, strict=True):
        (event,) = events
        if job.id == poisoned:
            assert event["status"] == "error", event
            assert event["error"]["type"] == "AkoolUnreadableResultError"
            assert event["error"]["attributes"]["akool_id"] == poisoned
        else:
            assert event["status"] == "success", event
            assert [result["id"] for result in event["results"]] == [job.id]
            assert poisoned not in event["message"]
