"""
What thousands of waiting triggers cost Python's garbage collector, and the opt-in that freezes it.

At 10,000 waits in one triggerer the event loop's longest stalls are Python's full garbage collections,
which scan every object the process tracks: each object a wait keeps is scanned by each of them
(docs/performance.md). These tests count objects, never time anything: a waiting trigger keeps no logger,
closure or finished round of its own, and ``[akool] triggerer_gc_freeze`` is read and applied (at the first
poll, then as a poller's waits double), and only when it is on (in a fresh interpreter: freezing changes the
whole process).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from typing import Any

import pytest

from airflow_provider_akool.kinds.reage import REAGE
from airflow_provider_akool.models import JobStatus
from airflow_provider_akool.triggers import poller as poller_module
from airflow_provider_akool.triggers.poller import SharedPoller
from airflow_provider_akool.triggers.reage import AkoolReageTrigger
from airflow_provider_akool.wait import JobSnapshot
from tests.support.trigger_runs import _first_poll_modules_imported  # noqa: F401 (an autouse fixture)

WAITS = 300
INTERVAL = 0.5
#: Tracked objects a waiting trigger may keep, the asyncio task that runs it included: 19 measured (it was
#: 33 with a structlog logger, a closure and its cells per wait, and the previous round's entries kept).
MAX_OBJECTS_PER_WAIT = 24


async def _processing(hook: Any, ids: list[str]) -> dict[str, JobSnapshot]:
    return {i: JobSnapshot(id=i, status=JobStatus.PROCESSING, job_id=f"job-{i}") for i in ids}


class _NoHook:
    async def aclose(self) -> None:
        pass


class _LocalTrigger(AkoolReageTrigger):
    """A reage trigger whose polls are answered in process: only the trigger and the poller are counted."""

    kind = dataclasses.replace(REAGE, afetch=_processing, poller="gc-footprint")


@pytest.fixture
def local_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SharedPoller, "_make_hook", lambda self: _NoHook())


def _tracked() -> Counter[str]:
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects())


async def test_a_waiting_trigger_keeps_a_few_objects_and_no_logger_closure_or_finished_round(
    local_polls: None,
) -> None:
    async def wait(trigger: AkoolReageTrigger) -> None:
        async for _ in trigger.run():
            pass

    loop = asyncio.get_running_loop()
    # One wait first, so that what any wait loads once (modules, the poller, the class's logger) is there.
    warm = loop.create_task(wait(_LocalTrigger(result_ids=["warm"], poll_interval=INTERVAL)))
    await asyncio.sleep(INTERVAL)
    before = _tracked()
    triggers = [
        _LocalTrigger(result_ids=[f"{n:024x}"], poll_interval=INTERVAL, deadline=time.time() + 60)
        for n in range(WAITS)
    ]
    tasks = [loop.create_task(wait(t)) for t in triggers]
    # Past a few rounds of every wait, with the poller asleep between two rounds: every wait registered
    # for its next poll, the last round over.
    deadline = time.monotonic() + 60
    while not _between_rounds(WAITS + 1):
        assert time.monotonic() < deadline, "the waits did not poll"
        await asyncio.sleep(0.01)
    after = _tracked()
    try:
        grown = after - before
        per_wait = sum(grown.values()) / WAITS
        assert per_wait < MAX_OBJECTS_PER_WAIT, grown.most_common(12)
        # The previous round's entries (their futures and results) are not kept until the next round.
        assert grown["_Entry"] == WAITS, grown["_Entry"]
        # No closure (and its cells) per wait, and no logger of its own: LoggingMixin keeps the logger it
        # makes on the trigger (a structlog proxy and six more objects in a triggerer).
        for name in ("function", "cell"):
            assert grown[name] < WAITS / 10, (name, grown[name])
        assert [t for t in triggers if vars(t).get("_log") is not None] == []
        # Their status lines go through one logger per class, the very one ``log`` names.
        assert triggers[0].status_log() is triggers[-1].status_log()
        assert triggers[0].status_log() is not triggers[0].log
    finally:
        for task in [*tasks, warm]:
            task.cancel()
        await asyncio.gather(*tasks, warm, return_exceptions=True)


def _between_rounds(waits: int) -> bool:
    pollers = [p for p in poller_module.pollers_of_this_loop() if p.akool_conn_id == "akool_default"]
    if not pollers:
        return False
    poller = pollers[0]
    asleep = poller._wake is not None and not poller._wake.done()
    return poller.rounds >= 3 and poller.waiting == waits and asleep


def test_a_logger_set_on_a_trigger_gets_its_status_lines() -> None:
    trigger = _LocalTrigger(result_ids=["x"])
    own = trigger.log  # LoggingMixin makes the trigger's own logger and keeps it
    assert trigger.status_log() is own
    assert trigger.make_waiter().log is own


FREEZE_SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, json
    from airflow_provider_akool.triggers.poller import SharedPoller
    from airflow_provider_akool.wait import JobSnapshot

    class NoHook:
        async def aclose(self):
            pass

    async def fetch(hook, ids):
        return {i: JobSnapshot(id=i, status=None) for i in ids}

    SharedPoller._make_hook = lambda self: NoHook()
    frozen = [gc.get_freeze_count()]

    async def main():
        for conn in ("first", "second"):  # two pollers start: the second's one wait is no new high
            poller = SharedPoller(conn, fetch=fetch)
            await poller.poll(["a"], delay=0.0, interval=1.0, first=True)
            frozen.append(gc.get_freeze_count())
        # Eight waits of one poller register one after another: the waits double from 1 to 8.
        poller = SharedPoller("third", fetch=fetch)
        await asyncio.gather(
            *(poller.poll([str(n)], delay=0.0, interval=1.0, first=True) for n in range(8))
        )

    asyncio.run(main())
    print(json.dumps(frozen))
    """
)


def _frozen_counts(setting: str | None) -> tuple[list[int], str]:
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__AKOOL__TRIGGERER_GC_FREEZE"}
    if setting is not None:
        env["AIRFLOW__AKOOL__TRIGGERER_GC_FREEZE"] = setting
    result = subprocess.run(
        [sys.executable, "-c", FREEZE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    counts: list[int] = json.loads(result.stdout.strip().splitlines()[-1])
    return counts, result.stdout + result.stderr


def test_triggerer_gc_freeze_on_freezes_at_the_first_poll_and_as_the_waits_double() -> None:
    (before, first, second), output = _frozen_counts("True")
    assert before == 0
    assert first > 0, "the collector was not frozen"
    # The second poller's one wait froze nothing more (a frozen object freed by its reference count leaves
    # the frozen set, so the count may shrink).
    assert second <= first
    # It says each time what it did: at the first wait, then at 2, 4 and 8 waits of the third poller.
    assert re.findall(r"triggerer_gc_freeze: at (\d+) wait", output) == ["1", "2", "4", "8"], output[-2000:]


@pytest.mark.parametrize("setting", [None, "False"])
def test_by_default_the_provider_leaves_the_process_collector_alone(setting: str | None) -> None:
    counts, _ = _frozen_counts(setting)
    assert counts == [0, 0, 0]


def test_a_malformed_triggerer_gc_freeze_is_reported_and_freezes_nothing() -> None:
    counts, output = _frozen_counts("sometimes")
    assert counts == [0, 0, 0]
    assert "triggerer_gc_freeze is not a boolean" in output
