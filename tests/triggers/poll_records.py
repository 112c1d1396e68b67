"""
What the waits of a test asked their shared poller and what it sent, to assert pauses as scheduled.

A round can come late by any amount on a busy machine, so the trigger tests assert no measured duration:
they wait for what they need to see (:func:`until`) and assert counts, order, and the pauses the waits
asked for (:class:`PollsAsked`), which the poller never stretches (it may shorten one to share a round).
Both recorders wrap a public attribute of the poller (``poll``, ``fetch``) for the length of one test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from airflow_provider_akool.emulator import EmulatorClient
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.triggers.poller import SharedPoller
from airflow_provider_akool.wait import JobSnapshot

#: The most a test waits for something it needs to see: it only decides how long a failure takes to show.
PATIENCE = 60.0


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until ``check()`` holds; :data:`PATIENCE` only decides how long a failure takes to show."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not await check():
        assert loop.time() < deadline, f"still waiting for {what} after {PATIENCE} s"
        await asyncio.sleep(0.02)


def requests_seen(emulator_client: EmulatorClient, endpoint: str, n: int) -> Callable[[], Awaitable[bool]]:
    """A check for :func:`until`: the emulator has received at least ``n`` requests to ``endpoint``."""

    async def check() -> bool:
        counts = await asyncio.to_thread(emulator_client.counts)
        return counts[endpoint] >= n

    return check


class PollsAsked:
    """
    Record what each wait asked of its poller: the pause as scheduled (``delay``, ``grid``), not as measured.

    The poller never polls a wait later than its ``delay`` after its previous round (sooner only to share a
    round, see ``test_polls_land_on_the_grid_and_jitter_never_makes_them_late``): what the waits asked is
    the pace of the polls, whatever the load on the machine does to when rounds really run.
    """

    def __init__(self, poller: SharedPoller, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asked: dict[tuple[str, ...], list[tuple[float, float | None, bool]]] = {}
        poll = poller.poll

        async def recorded(ids: Any, **kwargs: Any) -> dict[str, JobSnapshot]:
            self.asked.setdefault(tuple(ids), []).append(
                (kwargs["delay"], kwargs.get("grid"), kwargs.get("first", False))
            )
            return await poll(ids, **kwargs)

        monkeypatch.setattr(poller, "poll", recorded)

    def pauses(self, akool_id: str) -> list[float]:
        """The pauses a wait for ``akool_id`` asked for after its first poll."""
        return [delay for delay, _, first in self.asked.get((akool_id,), []) if not first]


class RequestsSent:
    """Record each request a poller sends (through its ``fetch``) with the number of its round."""

    def __init__(self, poller: SharedPoller, monkeypatch: pytest.MonkeyPatch) -> None:
        self.poller = poller
        self.sent: list[tuple[int, list[str]]] = []
        fetch = poller.fetch

        async def recorded(hook: AkoolHook, ids: list[str]) -> dict[str, JobSnapshot]:
            self.sent.append((poller.rounds, list(ids)))
            return await fetch(hook, ids)

        monkeypatch.setattr(poller, "fetch", recorded)

    def rounds(self) -> list[list[list[str]]]:
        """The requests of each round that has ended, round by round."""
        by_round: dict[int, list[list[str]]] = {}
        for number, ids in self.sent:
            if number < self.poller.rounds:
                by_round.setdefault(number, []).append(ids)
        return [by_round[number] for number in sorted(by_round)]

    def rounds_asking_for(self, akool_id: str) -> list[int]:
        """The numbers of the rounds that asked for ``akool_id``."""
        return sorted({number for number, ids in self.sent if akool_id in ids})
