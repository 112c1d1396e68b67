"""
N concurrent reage waits in one event loop against the emulator, with the shared poller and without.

Each scenario: reset the emulator (a process of its own), submit N jobs that stay "processing", start a
worker process that runs N ``AkoolReageTrigger`` waits in one event loop (as a triggerer does), and from
this process pin each job to "success" at a random moment (uniform in ``--finish-min..--finish-max``
seconds after the waits began). The worker starts the triggers as Airflow's triggerer does (one per
event-loop iteration), samples its event-loop lag (the worst of it is the longest stall), the pauses of
Python's full garbage collections, its memory and CPU time, and the moment each trigger fired; the
emulator's ledger counts the status requests.

    python benchmarks/bench_triggers.py                       # the default scenarios, a table, JSON
    python benchmarks/bench_triggers.py --sizes 1000 --off-sizes 1000 --adaptive-sizes ""

The "shared-mixed" scenario waits for reage and face swap jobs half and half, each kind through its own
trigger (``AkoolReageTrigger``, and the generic ``AkoolKindTrigger`` of the face swap kind) in one loop:
the kinds share one poller, so their ids ride in the same ``listbyids`` requests ("mixed req" says how
many of the requests carried both kinds).

The "shared+gc-freeze" scenario is "shared" with ``[akool] triggerer_gc_freeze = True`` (opt-in, off by
default): the shared poller freezes Python's garbage collector (``gc.freeze()``) at the first poll and each
time its waits have doubled since. Airflow's
triggerer does not do that itself (Airflow 3.1.8 and 3.3.2: ``gc.freeze()`` appears only in the DAG
processor's manager, ``airflow/dag_processing/manager.py``, and around the forks of ``LocalExecutor`` and the
Celery executor; nothing in ``airflow/jobs/triggerer_job_runner.py`` or the Task SDK's supervisor touches the
collector), so the default rows model a triggerer as Airflow runs it. Each row splits the worst stall into
garbage collection and the rest: the collector's pauses (every generation) are timed by ``gc.callbacks``, and
each lag sample less the collection time inside its window is its *non-GC* stall.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # the benchmarks are scripts beside each other, not a package
    API_KEY,
    STUCK_SAMPLE,
    Emulator,
    airflow_env,
    emulator_process,
    percentile,
    print_table,
)

LAG_SAMPLE_SECONDS = 0.05
#: When the worker measures memory: every wait registered and polled once, none finished yet.
MEMORY_PROBE_SECONDS = 3.0


@dataclass(frozen=True)
class Scenario:
    """One run: how many waits, and whether they share the poller and poll adaptively."""

    #: "shared" (the default trigger: coalesced, every poll_interval), "per-task" (coalescing off: the dbt
    #: Cloud way); "-adaptive": adaptive polling switched on (opt-in) too; "shared-mixed": half reage, half
    #: face swap, sharing the poller.
    mode: str
    n: int

    @property
    def coalesce(self) -> bool:
        return self.mode.startswith("shared")

    @property
    def adaptive(self) -> bool:
        return self.mode.endswith("-adaptive")

    @property
    def mixed(self) -> bool:
        return self.mode.endswith("-mixed")

    @property
    def gc_freeze(self) -> bool:
        """The worker runs with ``[akool] triggerer_gc_freeze = True`` (opt-in)."""
        return self.mode.endswith("+gc-freeze")


# --- The orchestrator (this process) ------------------------------------------------------------------


def submit_jobs(emulator: Emulator, n: int, faceswap: bool = False) -> list[str]:
    """
    Submit ``n`` image reage jobs (image face swap jobs with ``faceswap``) that stay processing until
    pinned; return their ``_id`` values.
    """
    headers = {"x-api-key": API_KEY}
    sample = f"{emulator.url}/media/samples/{STUCK_SAMPLE}"
    detected = requests.post(
        f"{emulator.url}/detect", json={"single_face": True, "image_url": sample}, headers=headers, timeout=30
    ).json()
    face = {"path": sample, "opts": detected["landmarks_str"][0]}
    body: dict[str, Any] = {"targetImage": [face], "face_reage": 10, "modifyImage": sample}
    endpoint = "imgreage"
    if faceswap:
        body = {"sourceImage": [face], "targetImage": [face], "face_enhance": 0, "modifyImage": sample}
        endpoint = "specifyimage"

    def submit(count: int) -> list[str]:
        with requests.Session() as session:
            return [
                session.post(
                    f"{emulator.url}/api/open/v3/faceswap/highquality/{endpoint}",
                    json=body,
                    headers=headers,
                    timeout=30,
                ).json()["data"]["_id"]
                for _ in range(count)
            ]

    parts = [n // 2, n - n // 2]
    with ThreadPoolExecutor(2) as pool:
        return [akool_id for part in pool.map(submit, parts) for akool_id in part]


def run_scenario(emulator: Emulator, scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    """Run one scenario end to end and return its figures."""
    emulator.reset()
    reage_ids = submit_jobs(emulator, scenario.n - scenario.n // 2 if scenario.mixed else scenario.n)
    swaps = submit_jobs(emulator, scenario.n // 2, faceswap=True) if scenario.mixed else []
    ids = reage_ids + swaps
    rng = random.Random(args.seed + scenario.n)
    plan = sorted((rng.uniform(args.finish_min, args.finish_max), akool_id) for akool_id in ids)
    work = Path(tempfile.mkdtemp(prefix="akool-bench-"))
    (work / "ids.json").write_text(json.dumps({"reage": reage_ids, "faceswap": swaps}))
    ready, result, log_path = work / "ready", work / "result.json", work / "worker.log"
    server = psutil.Process(emulator.pid)
    server_cpu = sum(server.cpu_times()[:2])
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                str(work),
                "--interval",
                str(args.interval),
                "--mode",
                scenario.mode,
            ],
            env={
                **airflow_env(emulator.url),
                "AIRFLOW__AKOOL__TRIGGERER_GC_FREEZE": str(scenario.gc_freeze),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            started = _wait_for_ready(worker, ready)
            finished_at = _finish_jobs(emulator, plan, started)
            worker.wait(timeout=args.finish_max + 6 * args.interval + 120)
        except BaseException:
            worker.kill()
            raise
    if worker.returncode != 0:
        raise RuntimeError(f"the worker failed ({worker.returncode}); see {log_path}")
    server_cpu = sum(server.cpu_times()[:2]) - server_cpu
    counts = emulator.counts()
    figures: dict[str, Any] = json.loads(result.read_text())
    events: dict[str, list[Any]] = figures.pop("events")
    latencies = [events[akool_id][0] - at for akool_id, at in finished_at.items()]
    statuses = {status for _, status in events.values()}
    requests_made = counts["listbyids"] - figures.pop("warmup_requests")
    wall = figures["ended"] - figures["started"]
    lags = figures.pop("lags")
    mixed_requests = None
    if scenario.mixed:
        # The ledger keeps the ids of the last 10,000 listbyids requests: enough for the runs here.
        swap_ids = set(swaps)
        asked = emulator.control("GET", "ledger")["listbyids_ids"]  # type: ignore[index]
        both = [r for r in asked if any(i in swap_ids for i in r) and not all(i in swap_ids for i in r)]
        mixed_requests = len(both) / max(1, len(asked))
    gc_pauses = figures.pop("gc_pauses")
    stalls = attribute_stalls(figures.pop("lag_windows"), gc_pauses)
    full = [end - start for generation, start, end in gc_pauses if generation == 2]
    worst_non_gc = max(((lag - in_gc, cpu) for lag, in_gc, cpu in stalls), default=(0.0, 0.0))
    return {
        "mode": scenario.mode,
        "n": scenario.n,
        "interval": args.interval,
        "finish_window": [args.finish_min, args.finish_max],
        "status_requests": requests_made,
        "requests_per_job": requests_made / scenario.n,
        "requests_per_second": requests_made / wall,
        "loop_lag_ms": {
            "p50": 1000 * percentile(lags, 0.5),
            "p99": 1000 * percentile(lags, 0.99),
            "max": 1000 * max(lags),
            "samples": len(lags),
        },
        # The longest time the loop could not run anything (how late a 50 ms sleep woke, at worst), and
        # the garbage collections of the run: every generation's count and longest pause, the full ones
        # (generation 2) on their own.
        "worst_stall_ms": 1000 * max(lags),
        "gc_collections": len(gc_pauses),
        "gc_max_ms": 1000 * max((end - start for _, start, end in gc_pauses), default=0.0),
        "gc_full_collections": len(full),
        "gc_full_max_ms": 1000 * max(full, default=0.0),
        "gc_full_max_cpu_ms": 1000 * max(figures.pop("gc_full_cpu"), default=0.0),
        # Each lag sample less the collections inside its window: the worst of it is what the loop was held
        # by anything but the collector (the provider's own work, the emulator's replies, asyncio).
        "worst_non_gc_stall_ms": 1000 * worst_non_gc[0],
        # The loop thread's CPU time in that sample's window (50 ms of sleep plus the stall): far below the
        # window, the loop was waiting for a core (the machine's other work), not running code.
        "worst_non_gc_stall_cpu_ms": 1000 * worst_non_gc[1],
        "stalls_over_50ms": len([1 for lag, _, _ in stalls if lag > 0.05]),
        "stalls_over_50ms_mostly_gc": len([1 for lag, in_gc, _ in stalls if lag > 0.05 and in_gc > lag / 2]),
        "gc_frozen_objects": figures["gc_frozen_objects"],
        "kb_per_waiting_job": (figures["rss_waiting"] - figures["rss_before"]) / 1024 / scenario.n,
        "latency_s": {
            "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies),
        },
        "cpu_seconds": figures["cpu_seconds"],
        "emulator_cpu_seconds": server_cpu,
        "wall_seconds": wall,
        "peak_rss_mb": figures["peak_rss_kb"] / 1024,
        "event_statuses": sorted(statuses),
        "mixed_request_share": mixed_requests,
        "events": len(events),
    }


def attribute_stalls(
    windows: list[list[float]], gc_pauses: list[list[float]]
) -> list[tuple[float, float, float]]:
    """
    For each lag sample (``[before, after, lag, cpu]``, loop time), the lag, the time garbage collections
    (``[generation, start, end]``, the same clock) took inside its window, and the loop thread's CPU time.
    """
    pauses = sorted((start, end) for _, start, end in gc_pauses)
    out = []
    first = 0
    for before, after, lag, cpu in windows:
        while first < len(pauses) and pauses[first][1] < before:
            first += 1
        in_gc = 0.0
        for start, end in pauses[first:]:
            if start > after:
                break
            in_gc += max(0.0, min(end, after) - max(start, before))
        out.append((lag, min(lag, in_gc), cpu))
    return out


def _wait_for_ready(worker: subprocess.Popen[bytes], ready: Path) -> float:
    deadline = time.monotonic() + 120
    while not ready.exists():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the worker did not start its waits")
        time.sleep(0.01)
    time.sleep(0.01)  # the file is written whole before it is renamed, but be gentle with slow disks
    started: float = json.loads(ready.read_text())["started"]
    return started


def _finish_jobs(emulator: Emulator, plan: list[tuple[float, str]], started: float) -> dict[str, float]:
    """Pin each job to success at its planned moment; return when (epoch seconds) each was pinned."""
    finished_at: dict[str, float] = {}
    with requests.Session() as session:
        for offset, akool_id in plan:
            pause = started + offset - time.time()
            if pause > 0:
                time.sleep(pause)
            # Taken before the request: the latency counted is never smaller than the real one.
            finished_at[akool_id] = time.time()
            session.post(
                f"{emulator.url}/_emulator/jobs/{akool_id}/status", json={"status": 3}, timeout=30
            ).raise_for_status()
    return finished_at


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    def sizes(text: str) -> list[int]:
        return [int(part) for part in text.split(",") if part.strip()]

    runs = [Scenario("shared", n) for n in sizes(args.sizes)]
    runs += [Scenario("per-task", n) for n in sizes(args.off_sizes)]
    runs += [Scenario("shared+gc-freeze", n) for n in sizes(args.gc_freeze_sizes)]
    runs += [Scenario("shared-mixed", n) for n in sizes(args.mixed_sizes)]
    for n in sizes(args.adaptive_sizes):
        runs += [Scenario("shared-adaptive", n), Scenario("per-task-adaptive", n)]
    return runs


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run every scenario against one emulator process; print a line per scenario as it ends."""
    rows = []
    with emulator_process() as emulator:
        for scenario in scenarios(args):
            began = time.monotonic()
            row = run_scenario(emulator, scenario, args)
            rows.append(row)
            print(
                f"  {scenario.mode:>14} N={scenario.n:<5} {row['status_requests']:>6} requests, "
                f"latency p99 {row['latency_s']['p99']:.2f} s, lag p99 {row['loop_lag_ms']['p99']:.0f} ms, "
                f"worst stall {row['worst_stall_ms']:.0f} ms (not GC: {row['worst_non_gc_stall_ms']:.0f} ms, "
                f"{row['worst_non_gc_stall_cpu_ms']:.0f} ms CPU; "
                f"GC {row['gc_collections']} pauses, full {row['gc_full_collections']}, longest "
                f"{row['gc_max_ms']:.0f} ms) ({time.monotonic() - began:.0f} s)",
                flush=True,
            )
    return rows


def table(rows: list[dict[str, Any]]) -> None:
    """Print the figures of every scenario, and the ratios against per-task polling."""
    print_table(
        [
            "mode",
            "N",
            "status req",
            "req/job",
            "req/s",
            "lag p50 ms",
            "lag p99 ms",
            "worst stall ms",
            "non-GC stall ms",
            "its CPU ms",
            "GC pauses",
            "full GCs",
            "GC max ms",
            "full GC CPU ms",
            "KB/job",
            "latency p50 s",
            "latency p99 s",
            "CPU s",
            "emulator CPU s",
            "mixed req",
        ],
        [
            [
                row["mode"],
                row["n"],
                row["status_requests"],
                f"{row['requests_per_job']:.2f}",
                f"{row['requests_per_second']:.1f}",
                f"{row['loop_lag_ms']['p50']:.1f}",
                f"{row['loop_lag_ms']['p99']:.1f}",
                f"{row['worst_stall_ms']:.0f}",
                f"{row['worst_non_gc_stall_ms']:.0f}",
                f"{row['worst_non_gc_stall_cpu_ms']:.0f}",
                row["gc_collections"],
                row["gc_full_collections"],
                f"{row['gc_max_ms']:.0f}",
                f"{row['gc_full_max_cpu_ms']:.0f}",
                f"{row['kb_per_waiting_job']:.1f}",
                f"{row['latency_s']['p50']:.2f}",
                f"{row['latency_s']['p99']:.2f}",
                f"{row['cpu_seconds']:.1f}",
                f"{row['emulator_cpu_seconds']:.1f}",
                "" if row.get("mixed_request_share") is None else f"{100 * row['mixed_request_share']:.0f}%",
            ]
            for row in rows
        ],
    )
    for line in ratios(rows):
        print(line)


def ratios(rows: list[dict[str, Any]]) -> list[str]:
    """Status requests of per-task polling over those of the shared poller, by N."""
    found = {(row["mode"], row["n"]): row["status_requests"] for row in rows}
    lines = []
    for (mode, n), count in found.items():
        if not mode.startswith("per-task"):
            continue
        for shared in ("shared", "shared-adaptive"):
            if (shared, n) in found:
                ratio = count / found[shared, n]
                lines.append(f"N={n}: {mode} polling sent {ratio:.1f}x the status requests of {shared}")
    return lines


# --- The worker (a process of its own: the measured event loop) ---------------------------------------


async def worker(work: Path, interval: float, mode: str) -> None:
    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.kinds.faceswap import FACESWAP
    from airflow_provider_akool.triggers.reage import AkoolReageTrigger

    scenario = Scenario(mode, 0)
    kinds: dict[str, list[str]] = json.loads((work / "ids.json").read_text())
    ids = kinds["reage"] + kinds["faceswap"]
    # Load what any wait loads once (the connection lookup, the HTTP client, its TLS context), so that the
    # memory counted per wait is the wait's own.
    hook = AkoolHook()
    await hook.aget_reage_results(ids[:1])
    await hook.aclose()
    gc.collect()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    # Each sample's window (loop time), its lag, and the CPU time the loop's thread had in it: a stall
    # with little CPU is the machine's other work, not code that ran on the loop.
    windows: list[tuple[float, float, float, float]] = []
    done = asyncio.Event()

    async def sample_lag() -> None:
        while not done.is_set():
            before, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(LAG_SAMPLE_SECONDS)
            after = loop.time()
            lags.append(max(0.0, after - before - LAG_SAMPLE_SECONDS))
            windows.append((before, after, lags[-1], time.thread_time() - cpu))

    events: dict[str, tuple[float, str]] = {}
    # Every collection: (generation, start, end) on the loop's clock (time.monotonic).
    gc_pauses: list[tuple[int, float, float]] = []
    # And the CPU time of each full one: what it would hold the loop for on a core of its own (on a machine
    # shared with other work a collection's wall time can be several times its CPU time).
    gc_full_cpu: list[float] = []
    gc_started = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[:] = [time.monotonic(), time.thread_time()]
        else:
            gc_pauses.append((info["generation"], gc_started[0], time.monotonic()))
            if info["generation"] == 2:
                gc_full_cpu.append(time.thread_time() - gc_started[1])

    async def wait(trigger: Any) -> None:
        async for event in trigger.run():
            events[trigger.ids[0]] = (time.time(), event.payload["status"])

    started = time.time()
    options = {
        "poll_interval": interval,
        "deadline": started + 3600,
        "started_at": started,
        "coalesce": scenario.coalesce,
        "adaptive_polling": scenario.adaptive,
    }
    triggers: list[Any] = [AkoolReageTrigger(result_ids=[akool_id], **options) for akool_id in kinds["reage"]]
    triggers += [FACESWAP.make_trigger([akool_id], **options) for akool_id in kinds["faceswap"]]
    # The kinds interleaved, as a DAG's tasks defer.
    random.Random(len(triggers)).shuffle(triggers)
    gc.callbacks.append(on_gc)
    sampler = loop.create_task(sample_lag())
    tasks = []
    for trigger in triggers:
        # As Airflow's triggerer starts triggers (TriggerRunner.create_triggers): one per loop iteration.
        tasks.append(loop.create_task(wait(trigger)))
        await asyncio.sleep(0)
    ready = work / "ready.tmp"
    ready.write_text(json.dumps({"started": started}))
    ready.rename(work / "ready")
    await asyncio.sleep(MEMORY_PROBE_SECONDS)
    rss_waiting = process.memory_info().rss
    await asyncio.gather(*tasks)
    ended = time.time()
    done.set()
    await sampler
    gc.callbacks.remove(on_gc)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    figures = {
        "started": started,
        "ended": ended,
        "rss_before": rss_before,
        "rss_waiting": rss_waiting,
        "peak_rss_kb": cpu_after.ru_maxrss,
        "cpu_seconds": (cpu_after.ru_utime - cpu_before.ru_utime)
        + (cpu_after.ru_stime - cpu_before.ru_stime),
        "lags": lags,
        "lag_windows": windows,
        "gc_pauses": gc_pauses,
        "gc_full_cpu": gc_full_cpu,
        "gc_frozen_objects": gc.get_freeze_count(),
        "events": events,
        "warmup_requests": 1,
    }
    (work / "result.json").write_text(json.dumps(figures))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,5000,10000", help="N of the shared-poller runs")
    parser.add_argument("--off-sizes", default="100,1000", help="N of the per-task runs (coalescing off)")
    parser.add_argument(
        "--adaptive-sizes",
        default="1000",
        help="N of the runs with adaptive polling switched on (opt-in), shared and per task",
    )
    parser.add_argument(
        "--mixed-sizes",
        default="1000",
        help="N of the runs waiting for reage and face swap jobs half and half",
    )
    parser.add_argument(
        "--gc-freeze-sizes",
        default="10000",
        help="N of the shared runs with [akool] triggerer_gc_freeze = True (opt-in)",
    )
    parser.add_argument("--interval", type=float, default=10.0, help="poll_interval of every wait")
    parser.add_argument("--finish-min", type=float, default=5.0, help="earliest job end (s after start)")
    parser.add_argument("--finish-max", type=float, default=40.0, help="latest job end (s after start)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="shared", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        asyncio.run(worker(args.worker, args.interval, args.mode))
        return 0
    if args.finish_min <= MEMORY_PROBE_SECONDS:
        raise SystemExit(f"--finish-min must be above {MEMORY_PROBE_SECONDS} s (memory is probed then)")
    rows = run_all(args)
    table(rows)
    if args.json is not None:
        args.json.write_text(json.dumps({"triggers": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
