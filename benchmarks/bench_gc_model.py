"""
What N waiting triggers cost Python's garbage collector: tracked objects per wait, and one full collection.

A model of the triggerer's shared poller: N reage triggers (the real classes, poller and ``Waiter``) wait in
one event loop, started one per loop iteration as Airflow's triggerer does, but their polls are answered in
process ("processing", every interval) instead of over HTTP, so the heap holds the imports, asyncio and the
provider, nothing else. After a few rounds, with the poller asleep between two, it counts the objects the
collector tracks (``gc.get_objects()`` and the frozen ones) against the count before the waits,
then times one full collection (``gc.collect()``, wall and the thread's CPU time: on a machine shared with
other work the wall time can be several times the CPU time). Each setting runs in a process of its own:
``[akool] triggerer_gc_freeze`` changes the process's collector.

A first row is the floor under every figure: a process with the imports of Airflow's own triggerer
(``airflow.jobs.triggerer_job_runner``) and no wait at all. What one full collection costs there, no
provider can take away: only the collector's settings can.

    python benchmarks/bench_gc_model.py [--waits 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import airflow_env, print_table  # the benchmarks are scripts beside each other, not a package

INTERVAL = 2.0


async def model(waits: int) -> dict[str, Any]:
    if waits == 0:
        return triggerer_heap()
    from airflow_provider_akool.kinds.reage import REAGE
    from airflow_provider_akool.models import JobStatus
    from airflow_provider_akool.triggers import base
    from airflow_provider_akool.triggers.poller import SharedPoller, pollers_of_this_loop
    from airflow_provider_akool.triggers.reage import AkoolReageTrigger
    from airflow_provider_akool.wait import JobSnapshot

    async def processing(hook: Any, ids: list[str]) -> dict[str, JobSnapshot]:
        return {i: JobSnapshot(id=i, status=JobStatus.PROCESSING, job_id=f"job-{i}") for i in ids}

    class NoHook:
        async def aclose(self) -> None:
            pass

    class Trigger(AkoolReageTrigger):
        kind = dataclasses.replace(REAGE, afetch=processing, poller="gc-model")

    SharedPoller._make_hook = lambda self: NoHook()  # type: ignore[assignment,method-assign,return-value]

    async def wait(trigger: AkoolReageTrigger) -> None:
        async for _ in trigger.run():
            pass

    await base.import_first_poll_modules()
    loop = asyncio.get_running_loop()
    gc.collect()
    before = len(gc.get_objects())
    tasks = []
    for n in range(waits):
        trigger = Trigger(result_ids=[f"{n:024x}"], poll_interval=INTERVAL, deadline=time.time() + 3600)
        tasks.append(loop.create_task(wait(trigger)))
        await asyncio.sleep(0)  # one per loop iteration, as TriggerRunner.create_triggers
    poller = pollers_of_this_loop()[0]
    started = poller.rounds
    while not (
        poller.rounds >= started + 2
        and poller.waiting == waits
        and poller._wake is not None
        and not poller._wake.done()
    ):
        await asyncio.sleep(0.01)
    tracked = len(gc.get_objects())
    wall, cpu = time.perf_counter(), time.thread_time()
    gc.collect()
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "waits": waits,
        # Frozen objects are tracked too, out of the scans (a frozen object freed since has left both).
        "objects_per_wait": (tracked + gc.get_freeze_count() - before) / waits,
        "tracked": tracked,
        "frozen": gc.get_freeze_count(),
        "full_collection_ms": 1000 * wall,
        "full_collection_cpu_ms": 1000 * cpu,
    }


def triggerer_heap() -> dict[str, Any]:
    """One full collection in a process with Airflow's triggerer imported and no wait."""
    import airflow.jobs.triggerer_job_runner  # noqa: F401  (the triggerer's imports are the heap)

    gc.collect()
    tracked = len(gc.get_objects())
    wall, cpu = time.perf_counter(), time.thread_time()
    gc.collect()
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    return {
        "waits": 0,
        "objects_per_wait": 0.0,
        "tracked": tracked,
        "frozen": gc.get_freeze_count(),
        "full_collection_ms": 1000 * wall,
        "full_collection_cpu_ms": 1000 * cpu,
    }


def run(waits: int) -> list[dict[str, Any]]:
    """
    Airflow's triggerer with no wait, then ``waits`` waits with each setting of
    ``[akool] triggerer_gc_freeze``, each in a process of its own; return the figures of each.
    """
    rows = []
    for freeze, count in ((False, 0), (False, waits), (True, waits)):
        env = {**airflow_env(), "AIRFLOW__AKOOL__TRIGGERER_GC_FREEZE": str(freeze)}
        # Airflow's log lines (one per wait's first status) go to the process's output: not ours to read.
        done = subprocess.run(
            [sys.executable, __file__, "--worker", "--waits", str(count)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the model failed: {done.stderr[-2000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append({"triggerer_gc_freeze": freeze, **row})
    return rows


def table(rows: list[dict[str, Any]]) -> None:
    print_table(
        [
            "triggerer_gc_freeze",
            "waits",
            "objects/wait",
            "tracked",
            "frozen",
            "full GC ms",
            "full GC CPU ms",
        ],
        [
            [
                str(row["triggerer_gc_freeze"]),
                row["waits"],
                f"{row['objects_per_wait']:.1f}",
                row["tracked"],
                row["frozen"],
                f"{row['full_collection_ms']:.0f}",
                f"{row['full_collection_cpu_ms']:.0f}",
            ]
            for row in rows
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waits", type=int, default=10_000)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        figures = asyncio.run(model(args.waits))
        # The last line is the figures: every log line of the run came before it.
        sys.stdout.flush()
        os.write(1, (json.dumps(figures) + "\n").encode())
        return 0
    table(run(args.waits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
