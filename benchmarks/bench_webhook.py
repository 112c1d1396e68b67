"""
Webhook-first completion: N deferred tasks completed by Akool's callbacks through the real receiver path.

    python benchmarks/bench_webhook.py [--jobs 1000] [--concurrency 8] [--database auto|sqlite|postgres]

In a process of its own (a private AIRFLOW_HOME and database, migrated): a DAG of N tasks is run
once with ``dag.test()`` so that Airflow writes real task instance rows; each is then put back into
``deferred`` on a trigger row of its own (an ``AkoolReageTrigger`` whose kwargs carry the digest of the
callback token, as an operator with ``webhook_url="airflow"`` defers), deferred a minute ago, past
``[akool] webhook_resume_settle``. The receiver's real FastAPI app then runs on uvicorn on 127.0.0.1 and
gets N signed callbacks (Akool's format, built with the connection's clientId and clientSecret) over HTTP,
``--concurrency`` at a time: each is checked (signature, decryption, token against the trigger's digest, job
id) and resumes its task through ``Trigger.submit_event``.

Measured: **completion-to-event** per job, from the moment the callback is sent (the job completed: Akool
calls back when it does) to the task instance being ``scheduled`` with the event in its ``next_kwargs``
(the 200, which comes after the commit); and **status requests**: the ``akool`` connection points at an
emulator whose ledger counts every request the receiver path sends to Akool. What it leaves out: Akool's
own delay before calling back, and the scheduler and worker that run ``execute_complete`` afterwards (the
e2e test measures those: ``tests/e2e/test_webhooks.py``).

The database: SQLite (a file in the private home), or PostgreSQL, as production Airflow runs, when Debian's
``postgresql`` is installed (``make distributed-deps``): a private server started for the run as a plain
process with its unix socket in a temporary folder (``common.postgres_database``), stopped and removed after.
``auto`` takes PostgreSQL when it is installed and says so when it falls back to SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    ROOT,
    airflow_env,
    emulator_process,
    percentile,
    postgres_database,
    postgres_installed,
    print_table,
)

CLIENT_ID = "bench-webhook-client-0001"
SECRET = "bench-webhook-secret-024"  # 24 characters: an AES-192 key, as Akool's
DAG_ID = "bench_webhook"
#: The status request target of issue 14.
MAX_STATUS_REQUESTS_PER_JOB = 0.05
MAX_LATENCY_P99_S = 1.0


DATABASES = ("sqlite", "postgres")


def choose_database(wanted: str) -> str:
    """``sqlite`` or ``postgres`` for ``wanted`` (``auto``: PostgreSQL when installed, saying so if not)."""
    if wanted == "auto":
        if postgres_installed():
            return "postgres"
        print(
            "PostgreSQL is not installed (Debian's postgresql: make distributed-deps): "
            "the webhook row runs on SQLite only",
            flush=True,
        )
        return "sqlite"
    if wanted not in DATABASES:
        raise ValueError(f"database must be one of auto, {', '.join(DATABASES)}; got {wanted!r}")
    if wanted == "postgres" and not postgres_installed():
        raise RuntimeError("database='postgres' needs Debian's postgresql (make distributed-deps)")
    return wanted


def run(jobs: int, concurrency: int = 8, database: str = "sqlite", settle: bool = False) -> dict[str, Any]:
    """
    Run the benchmark in a process of its own on ``database`` (``sqlite`` or ``postgres``).

    ``settle``: half the tasks deferred 1-9 s before their callback (quick jobs, inside
    ``[akool] webhook_resume_settle``), half a minute before (slow jobs); measured to the resume.
    """
    database = choose_database(database)
    with ExitStack() as stack:
        env = airflow_env()
        if database == "postgres":
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = stack.enter_context(postgres_database())
        else:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{env['AIRFLOW_HOME']}/airflow.db"
        result = _run(jobs, concurrency, env, settle)
        result["database"] = database
        return result


def _run(jobs: int, concurrency: int, env: dict[str, str], settle: bool = False) -> dict[str, Any]:
    with emulator_process() as emulator:
        emulator.reset()
        dags = Path(tempfile.mkdtemp(prefix="akool-bench-webhook-dags-"))
        (dags / f"{DAG_ID}.py").write_text(_dag_file(jobs))
        env.update(
            {
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__AKOOL__WEBHOOK_RECEIVER": "True",
                "AIRFLOW__API__BASE_URL": "http://127.0.0.1:8080",
                "AIRFLOW_CONN_AKOOL_DEFAULT": json.dumps(
                    {"conn_type": "akool", "host": emulator.url, "login": CLIENT_ID, "password": SECRET}
                ),
            }
        )
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                "--jobs",
                str(jobs),
                "--concurrency",
                str(concurrency),
                *(["--settle"] if settle else []),
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"the webhook benchmark failed:\n{out.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        counts = emulator.counts()
        result["status_requests"] = sum(counts.get(e, 0) for e in ("listbyids", "infobymodelid"))
        result["akool_requests"] = sum(counts.values())
        result["status_requests_per_job"] = result["status_requests"] / jobs
        return result


def table(rows: list[dict[str, Any]]) -> None:
    print_table(
        [
            "mode",
            "database",
            "N",
            "in flight",
            "status requests",
            "per job",
            "completion-to-event p50",
            "p99",
            "max",
            "callbacks/s",
        ],
        [
            [
                "webhook",
                "PostgreSQL" if row.get("database") == "postgres" else "SQLite",
                row["n"],
                row["concurrency"],
                row["status_requests"],
                f"{row['status_requests_per_job']:.3f}",
                f"{row['latency_s']['p50'] * 1000:.0f} ms",
                f"{row['latency_s']['p99'] * 1000:.0f} ms",
                f"{row['latency_s']['max'] * 1000:.0f} ms",
                f"{row['callbacks_per_s']:.0f}",
            ]
            for row in rows
        ],
    )


def settle_table(row: dict[str, Any]) -> None:
    """The settle row: from the callback to the resume, for quick jobs (inside the window) and slow ones."""
    print_table(
        ["mode", "database", "N", "window", "quick p50", "quick p99", "slow p50", "slow p99"],
        [
            [
                "webhook settle",
                "PostgreSQL" if row.get("database") == "postgres" else "SQLite",
                row["n"],
                f"{row['settle_s']:g} s",
                *(f"{row[group][q]:.2f} s" for group in ("quick_s", "slow_s") for q in ("p50", "p99")),
            ]
        ],
    )


def settle_targets(row: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """The window holds (no quick job resumed inside it) and costs only quick jobs."""
    early = row["resumed_inside_window"]
    return [
        (
            f"webhook settle N={row['n']}: no quick job resumed inside the {row['settle_s']:g} s window",
            early == 0,
            f"{early} of {row['n'] // 2}",
        ),
        (
            f"webhook settle N={row['n']}: every task resumed",
            row["resumed"] == row["n"],
            f"{row['resumed']}/{row['n']}",
        ),
    ]


def targets(row: dict[str, Any]) -> list[tuple[str, bool, str]]:
    per_job, p99 = row["status_requests_per_job"], row["latency_s"]["p99"]
    jobs = row["n"]
    database = "PostgreSQL" if row.get("database") == "postgres" else "SQLite"
    n = f"{jobs}, {row['concurrency']} in flight, {database}"
    return [
        (
            f"webhook N={n}: < {MAX_STATUS_REQUESTS_PER_JOB} status requests per job",
            per_job < MAX_STATUS_REQUESTS_PER_JOB,
            f"{per_job:.3f}",
        ),
        (
            f"webhook N={n}: completion-to-event p99 < {MAX_LATENCY_P99_S:g} s",
            p99 < MAX_LATENCY_P99_S,
            f"{p99:.2f} s",
        ),
        (
            f"webhook N={n}: every task resumed at the first delivery",
            row["resumed"] == jobs,
            f"{row['resumed']}/{jobs} (answers {_answers(row)})",
        ),
    ]


def _answers(row: dict[str, Any]) -> str:
    answers = row.get("answers", {})
    return ", ".join(f"{count} x {code}" for code, count in answers.items()) if answers else "none"


def _dag_file(jobs: int) -> str:
    return f'''
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    for index in range({jobs}):
        EmptyOperator(task_id=f"reage_{{index}}")
'''


# --- The measuring process ----------------------------------------------------------------------------


def _worker(jobs: int, concurrency: int, settle: bool = False) -> dict[str, Any]:
    import runpy
    from datetime import datetime, timezone

    import httpx
    import uvicorn
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.db import resetdb
    from airflow.utils.session import create_session
    from fastapi import FastAPI
    from sqlalchemy import select

    from airflow_provider_akool.plugins import webhook_receiver
    from airflow_provider_akool.triggers.reage import AkoolReageTrigger
    from airflow_provider_akool.webhook import build_callback, callback_url

    resetdb()
    dag = runpy.run_path(str(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{DAG_ID}.py"))["dag"]
    dag_run = dag.test()  # writes the run and its task instances (EmptyOperators finish at once)
    run_id = dag_run.run_id

    # Each task deferred on its own trigger a minute ago, with the token digest of its callback URL. With
    # --settle, every other one 1-9 s before the callbacks are sent (a quick job), counted from here.
    urls: dict[str, tuple[str, str]] = {}
    quick: dict[str, float] = {}  # task id: when it deferred
    begin = time.time()
    with create_session() as session:
        for index, ti in enumerate(
            session.scalars(select(TaskInstance).where(TaskInstance.run_id == run_id))
        ):
            deferred_at = begin - 60
            if settle and index % 2 == 0:
                deferred_at = begin - 1 - 8 * (index // 2) / max(1, (jobs + 1) // 2 - 1)
                quick[ti.task_id] = deferred_at
            akool_id = f"{index:024x}"
            token = callback_url.new_token()
            trigger = AkoolReageTrigger.for_ids(
                [akool_id],
                job_ids={akool_id: f"job-{index}"},
                started_at=deferred_at,
                webhook_token_sha256=callback_url.token_digest(token),
            )
            row = Trigger.from_object(trigger)
            row.created_date = datetime.fromtimestamp(deferred_at, timezone.utc)
            session.add(row)
            session.flush()
            ti.state = "deferred"
            ti.trigger_id = row.id
            ti.next_method = "execute_complete"
            route = callback_url.CallbackRoute(DAG_ID, run_id, ti.task_id, ti.map_index, "akool_default")
            urls[ti.task_id] = (akool_id, callback_url.callback_url(_base_url(), route, token))

    port = _free_port()
    root = FastAPI()
    for app in webhook_receiver._fastapi_apps():
        root.mount(app["url_prefix"], app["app"])
    server = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)

    bodies = {
        task_id: build_callback(
            CLIENT_ID,
            SECRET,
            {"_id": akool_id, "status": 3, "type": "faceswap", "url": f"https://r/{akool_id}.jpg"},
        )
        for task_id, (akool_id, _) in urls.items()
    }
    latencies: list[float] = []
    answers: list[int] = []
    lock = threading.Lock()
    client = httpx.Client(timeout=30)

    def deliver(task_id: str) -> None:
        url = urls[task_id][1].replace(_base_url(), f"http://127.0.0.1:{port}")
        sent = time.perf_counter()
        reply = client.post(
            url, content=json.dumps(bodies[task_id]), headers={"content-type": "application/json"}
        )
        elapsed = time.perf_counter() - sent
        with lock:
            latencies.append(elapsed)
            answers.append(reply.status_code)

    if settle:
        return _settle_figures(run_id, urls, quick, deliver, concurrency, server, thread)
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(deliver, list(urls)))
    took = time.perf_counter() - began
    server.should_exit = True
    thread.join(10)

    with create_session() as session:
        tis = list(session.scalars(select(TaskInstance).where(TaskInstance.run_id == run_id)))
        resumed = sum(
            1 for ti in tis if str(ti.state) == "scheduled" and ti.trigger_id is None and ti.next_kwargs
        )
    return {
        "mode": "webhook",
        "n": jobs,
        "concurrency": concurrency,
        # How many callbacks got each status: a 503 is the receiver finding the database busy (SQLite's
        # lock held past its 5 s busy timeout), which Akool answers by sending the callback again.
        "answers": {str(code): answers.count(code) for code in sorted(set(answers))},
        "resumed": resumed,
        "latency_s": {
            "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies),
        },
        "callbacks_per_s": jobs / took,
        "seconds": took,
    }


def _settle_figures(
    run_id: str,
    urls: dict[str, tuple[str, str]],
    quick: dict[str, float],
    deliver: Any,
    concurrency: int,
    server: Any,
    thread: threading.Thread,
) -> dict[str, Any]:
    """Send every callback at once, then time each task's resume; ``quick``: when the quick ones deferred."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_provider_akool.webhook.callback_url import resume_settle_seconds

    settle = resume_settle_seconds()
    # Each job "ends" when its callback is sent: now, all at once.
    sent = time.time()
    answered: dict[str, float] = {}

    def send(task_id: str) -> None:
        deliver(task_id)
        answered[task_id] = time.time()

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, list(urls)))
    resumed_at: dict[str, float] = {}
    deadline = time.monotonic() + settle + 60
    while len(resumed_at) < len(urls) and time.monotonic() < deadline:
        now = time.time()
        with create_session() as session:
            for ti in session.scalars(select(TaskInstance).where(TaskInstance.run_id == run_id)):
                if ti.task_id not in resumed_at and ti.trigger_id is None and ti.next_kwargs:
                    resumed_at[ti.task_id] = now
        time.sleep(0.05)
    server.should_exit = True
    thread.join(10)
    # From the job's end (its callback sent) to the resume. A slow job's task is resumed before the answer
    # (the 200 follows the commit): its answer is when; a quick one's in the background, seen by the polls.
    lag = {
        task_id: (at if task_id in quick else min(at, answered[task_id])) - sent
        for task_id, at in resumed_at.items()
    }
    quick_lags = [lag[t] for t in quick if t in lag]
    slow_lags = [lag[t] for t in lag if t not in quick]
    return {
        "mode": "webhook settle",
        "n": len(urls),
        "concurrency": concurrency,
        "settle_s": settle,
        "resumed": len(resumed_at),
        "resumed_inside_window": sum(
            1 for t, deferred_at in quick.items() if t in resumed_at and resumed_at[t] - deferred_at < settle
        ),
        "quick_s": {"p50": percentile(quick_lags, 0.5), "p99": percentile(quick_lags, 0.99)},
        "slow_s": {"p50": percentile(slow_lags, 0.5), "p99": percentile(slow_lags, 0.99)},
    }


def _base_url() -> str:
    return os.environ["AIRFLOW__API__BASE_URL"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--database",
        choices=("auto", *DATABASES),
        default="auto",
        help="auto (default): PostgreSQL when installed, else SQLite",
    )
    parser.add_argument(
        "--settle",
        action="store_true",
        help="half the tasks deferred 1-9 s before their callback, half a minute before: time to the resume",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.jobs, args.concurrency, args.settle)))
        return 0
    if args.settle:
        row = run(args.jobs, args.concurrency, args.database, settle=True)
        settle_table(row)
        for name, ok, figure in settle_targets(row):
            print(f"{'met   ' if ok else 'MISSED'} {name}: {figure}")
        return 0
    row = run(args.jobs, args.concurrency, args.database)
    table([row])
    for name, ok, figure in targets(row):
        print(f"{'met   ' if ok else 'MISSED'} {name}: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
