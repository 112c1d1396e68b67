"""
The fault matrix: each fault the emulator can inject, met by a real ``dag.test()`` run of an image reage
(in the worker and deferred) and by the hook on both transports. The cases where face swap's path differs
from reage's run with face swap too (``Case.kinds``, ``tests/support/job_kinds.py``): image face swap detects
two pictures before submitting to ``specifyimage``; Face Swap Pro submits to v4 ``faceswapByImage`` without
detecting, and its submission gives no result URL, so a resumed or deferred Pro task gets it from a poll.

Every DAG case runs one task with ``retries=1`` and asserts the run's outcome, the error's class and
message, how many tries ran, how many submit requests reached Akool, how many jobs exist there (exactly one
per try that submitted) and that none is left queued or processing, billed and unseen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from airflow.sdk import dag

from airflow_provider_akool.emulator import EmulatorClient
from airflow_provider_akool.exceptions import (
    AkoolError,
    AkoolJobTimeoutError,
    AkoolRateLimitError,
    AkoolResultUnavailableError,
    AkoolSubmitOutcomeUnknownError,
)
from airflow_provider_akool.hooks.akool import AkoolHook
from tests.support.airflow_version import HAS_TASK_STATE_STORE
from tests.support.connections import API_KEY, CLIENT_ID
from tests.support.dag_runs import RecordedRun, run_recorded
from tests.support.job_kinds import KINDS, SUBMIT, SubmittingKind
from tests.support.ledger import FAILED, PROCESSING, SUCCESS, running_jobs, submissions
from tests.support.samples import sample

START = pendulum.datetime(2026, 1, 1, tz="UTC")
POLL = 0.2
#: The connection timeout of the "slow" cases: the emulator's slow replies take twice as long.
SHORT_TIMEOUT = 0.5
SLOW = 2 * SHORT_TIMEOUT
EIGHT_DAYS = 8 * 24 * 3600.0
AMBIGUOUS = "It was not sent again, because a second job would be paid for twice"

# --- Things that happen while a task waits (run in a thread beside dag.test) -------------------------

During = Callable[[EmulatorClient, threading.Event], None]


def wait_for(
    client: EmulatorClient, condition: Callable[[dict[str, Any]], bool], stop: threading.Event
) -> bool:
    """Wait until ``condition(ledger)`` holds; False if the run ended first."""
    while not stop.is_set():
        if condition(client.ledger()):
            return True
        time.sleep(0.05)
    return False


def expire_tokens_mid_wait(client: EmulatorClient, stop: threading.Event) -> None:
    """Hold the job running, expire every token once the task polls, let the job end after a renewal.

    The case freezes the emulator's clock, so the job is still queued when the hold comes.
    """
    if not wait_for(client, lambda ledger: ledger["counts"]["listbyids"] >= 1, stop):
        return
    (akool_id,) = client.ledger()["jobs"]
    client.set_job_status(akool_id, PROCESSING)
    client.expire_tokens()
    polls = client.counts()["listbyids"]
    # A new token, and a poll made with it, prove the wait carried on after the expiry.
    if wait_for(
        client,
        lambda ledger: ledger["counts"]["getToken"] >= 2 and ledger["counts"]["listbyids"] > polls + 1,
        stop,
    ):
        client.set_job_status(akool_id, SUCCESS)


def expire_the_result_mid_wait(client: EmulatorClient, stop: threading.Event) -> None:
    """With the clock frozen (the job queued), jump 8 days once the task polls: the result has expired."""
    try:
        if wait_for(client, lambda ledger: ledger["counts"]["listbyids"] >= 1, stop):
            client.advance_clock(EIGHT_DAYS)
    finally:
        client.freeze_clock(False)


# --- The cases ---------------------------------------------------------------------------------------


def fault(kind: str, path: str, count: int | None = 1, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "path": path, "count": count, **extra}


@dataclass(frozen=True)
class Case:
    """
    One fault and what must come of it.

    :param submit_requests: submit requests that reach the emulator (refused ones included).
    :param jobs: jobs that exist on the emulator afterwards.
    :param tries: tries the task runs (1: a failure that must not be retried).
    """

    faults: tuple[dict[str, Any], ...]
    state: str = "success"
    error: type[AkoolError] | None = None
    message: tuple[str, ...] = ()
    submit_requests: int = 1
    jobs: int = 1
    tries: int = 1
    image: str = "portrait.jpg"
    operator: dict[str, Any] = field(default_factory=dict)
    connection: dict[str, Any] = field(default_factory=dict)
    during: During | None = None
    freeze_clock: bool = False
    modes: tuple[str, ...] = ("sync", "defer")
    #: Jobs created by a submission whose reply was lost: the provider never learnt their ids, said so,
    #: and did not submit again; they may still be running when the run ends (unavoidable: Akool has no
    #: idempotency key nor a list of jobs to find them by).
    unseen_jobs: int = 0
    #: Poll requests that must have been answered with this HTTP status (the fault reached the wait).
    polls_answered: int | None = None
    retry_after: float | None = None
    #: The kinds of ``tests/support/job_kinds.py`` that run the case (each in every mode).
    kinds: tuple[str, ...] = ("reage",)
    #: Tries that submitted a new job, each after its face detects (a resumed job is not detected again).
    submitting_tries: int = 1


SHORT = {"extra": {"timeout": SHORT_TIMEOUT}}

CASES: dict[str, Case] = {
    # Faults while waiting: the wait backs off and carries on; one job, one try.
    "5xx_burst_while_waiting": Case(
        faults=(fault("http_500", "listbyids", count=3, status=502),), polls_answered=502
    ),
    "dropped_connections_while_waiting": Case(
        faults=(
            fault("drop", "listbyids", mode="reset"),
            fault("drop", "listbyids", mode="close"),
            fault("drop", "listbyids", mode="mid_body"),
        ),
        polls_answered=0,
    ),
    "slow_reply_past_the_timeout_while_waiting": Case(
        faults=(fault("slow", "listbyids", count=2, seconds=SLOW),), connection=SHORT
    ),
    "1005_burst_while_waiting": Case(faults=(fault("code_1005", "listbyids", count=3),)),
    # Twice: deferrable, the first 429 meets the one check made before deferring, and the trigger's first
    # poll waits for its Retry-After too (it comes first_poll_at, not at once), as does the next one.
    "429_with_retry_after_while_waiting": Case(
        faults=(fault("http_429", "listbyids", count=2, retry_after=1),), polls_answered=429, retry_after=1.0
    ),
    "not_json_while_waiting": Case(faults=(fault("not_json", "listbyids", count=2),)),
    "missing_fields_while_waiting": Case(faults=(fault("missing_fields", "listbyids", count=2),)),
    # The clock is frozen so that the job cannot finish on its own before the helper holds it: on a busy
    # machine the first poll can come after the job's emulated 0.4 s, and the helper's hold then took back
    # a success the task had already seen (its download found the job processing: 404, and a retry).
    "token_expiry_while_waiting": Case(
        faults=(),
        connection={"login": CLIENT_ID, "password": API_KEY},
        during=expire_tokens_mid_wait,
        freeze_clock=True,
    ),
    # A wait stopped by an error that will not pass by waiting but may by a retry (the key refused, 1101:
    # a retry reads the connection again): the try fails and leaves the job running; the retry resumes
    # it on 3.3 (one job), and submits a second one below 3.3. (A banned account, 1200, fails at once:
    # tests/reliability/test_no_retry.py.)
    # Face Swap Pro too: its record has no result URL (v4's submission gives none), so the resuming try
    # gets the link from its poll.
    "refused_poll_then_retry": Case(
        faults=(fault("code", "listbyids", code=1101),),
        submit_requests=1 if HAS_TASK_STATE_STORE else 2,
        jobs=1 if HAS_TASK_STATE_STORE else 2,
        tries=2,
        kinds=("reage", "faceswap_pro"),
        submitting_tries=1 if HAS_TASK_STATE_STORE else 2,
    ),
    # The job outlives its deadline: cancelled (job/del), the try fails, and the retry submits a new job
    # (a cancelled job is failed, never resumed), which the deadline cancels too.
    "stuck_until_the_deadline": Case(
        faults=(),
        image="portrait-emulator-stuck.jpg",
        operator={"timeout": 1},
        state="failed",
        error=AkoolJobTimeoutError,
        message=("did not finish within 1 s", "cancelled job"),
        submit_requests=2,
        jobs=2,
        tries=2,
        submitting_tries=2,
    ),
    # Kept with output_path once Akool dropped the result: a clear error, no new job.
    "expired_result_url": Case(
        faults=(),
        operator={"retries": 0},
        state="failed",
        error=AkoolResultUnavailableError,
        message=("can no longer be downloaded (HTTP 404)", "7 days"),
        during=expire_the_result_mid_wait,
        freeze_clock=True,
    ),
    # A fault on face detect, which image face swap asks twice before submitting (the picture, then the
    # source portrait): a read, so the hook asks again; one job.
    "5xx_on_detect": Case(
        faults=(fault("http_500", "detect", status=502),), kinds=("faceswap",), modes=("sync",)
    ),
    # Faults on the submission. Refusals that surely created nothing are retried by the hook: one job.
    "1005_burst_on_submit": Case(
        faults=(fault("code_1005", SUBMIT, count=2),), submit_requests=3, modes=("sync",)
    ),
    "429_with_retry_after_on_submit": Case(
        faults=(fault("http_429", SUBMIT, retry_after=1),),
        submit_requests=2,
        retry_after=1.0,
        modes=("sync",),
    ),
    # Anything after which the job may exist is never resent, neither by the hook nor by a task retry:
    # the task fails at once saying so. With after=True the job was created although the reply was lost.
    "read_timeout_on_submit": Case(
        faults=(fault("slow", SUBMIT, seconds=SLOW),),
        connection=SHORT,
        state="failed",
        error=AkoolSubmitOutcomeUnknownError,
        message=(AMBIGUOUS, "no reply within the timeout", "check your Akool jobs"),
        unseen_jobs=1,
        modes=("sync",),
    ),
    "5xx_on_submit": Case(
        faults=(fault("http_500", SUBMIT, status=503),),
        state="failed",
        error=AkoolSubmitOutcomeUnknownError,
        message=(AMBIGUOUS, "HTTP 503"),
        jobs=0,
        modes=("sync",),
    ),
    # Every kind: face swap's retry would detect and submit again; Face Swap Pro's endpoint is v4's.
    "5xx_after_the_submit_ran": Case(
        faults=(fault("http_500", SUBMIT, after=True),),
        state="failed",
        error=AkoolSubmitOutcomeUnknownError,
        message=(AMBIGUOUS,),
        unseen_jobs=1,
        modes=("sync",),
        kinds=("reage", "faceswap", "faceswap_pro"),
    ),
    "dropped_connection_on_submit": Case(
        faults=(fault("drop", SUBMIT, mode="mid_body"),),
        state="failed",
        error=AkoolSubmitOutcomeUnknownError,
        message=(AMBIGUOUS, "the connection broke before a complete reply"),
        unseen_jobs=1,
        modes=("sync",),
    ),
    "not_json_on_submit": Case(
        faults=(fault("not_json", SUBMIT, after=True),),
        state="failed",
        error=AkoolSubmitOutcomeUnknownError,
        message=(AMBIGUOUS,),
        unseen_jobs=1,
        modes=("sync",),
    ),
    "missing_fields_on_submit": Case(
        faults=(fault("missing_fields", SUBMIT, after=True),),
        state="failed",
        error=AkoolSubmitOutcomeUnknownError,
        message=(AMBIGUOUS, "lacks a valid 'data'"),
        unseen_jobs=1,
        modes=("sync",),
    ),
}

DAG_CASES = [
    pytest.param(name, mode, kind, id="-".join((name, mode, *([kind] if kind != "reage" else []))))
    for name, case in CASES.items()
    for mode in case.modes
    for kind in case.kinds
]


@pytest.fixture
def frozen_clock_released(emulator_client: EmulatorClient) -> Iterator[None]:
    yield
    emulator_client.freeze_clock(False)


def run_case(
    name: str,
    mode: str,
    kind: SubmittingKind,
    case: Case,
    emulator: Any,
    client: EmulatorClient,
    conn_id: str,
    output: str,
) -> RecordedRun:
    for spec in case.faults:
        spec = dict(spec)
        client.add_fault(spec.pop("kind"), count=spec.pop("count"), path=kind.path(spec.pop("path")), **spec)
    kwargs: dict[str, Any] = {
        "retries": 1,
        "retry_delay": timedelta(0),
        "poll_interval": POLL,
        "deferrable": mode == "defer",
        "akool_conn_id": conn_id,
        **case.operator,
    }

    @dag(dag_id=f"faults_{name}_{mode}_{kind.name}", schedule=None, start_date=START)
    def faults() -> None:
        kind.operator(emulator, case.image, output_path=output, **kwargs)

    dag_object = faults()
    if case.freeze_clock:
        client.freeze_clock(True)
    stop = threading.Event()
    helper = threading.Thread(target=case.during, args=(client, stop)) if case.during else None
    if helper:
        helper.start()
    try:
        return run_recorded(dag_object, client)
    finally:
        stop.set()
        if helper:
            helper.join(10)


@pytest.mark.parametrize(("name", "mode", "kind_name"), DAG_CASES)
def test_fault_in_a_dag_run(
    airflow_db: Any,
    emulator: Any,
    emulator_client: EmulatorClient,
    akool_connection: Any,
    frozen_clock_released: None,
    tmp_path: Any,
    name: str,
    mode: str,
    kind_name: str,
) -> None:
    case, kind = CASES[name], KINDS[kind_name]
    task_id = kind.name
    conn_id = akool_connection("akool_faults", **case.connection)

    run = run_case(name, mode, kind, case, emulator, emulator_client, conn_id, f"{tmp_path}/")

    ledger = run.ledger
    assert run.states[(task_id, -1)] == case.state, run.failures
    assert run.tis[(task_id, -1)].try_number == case.tries
    if case.error is None:
        result = run.value(task_id)
        assert result["status"] == "success"
        assert run.job(result["id"])["status"] == SUCCESS
        # Kept too: the fault did not spoil the file.
        assert (tmp_path / f"{result['id']}.jpg").read_bytes()[:2] == b"\xff\xd8"
    else:
        error = run.failure(task_id)
        assert isinstance(error, case.error), error
        for fragment in case.message:
            assert fragment in str(error), error
    assert ledger["counts"][kind.submit_endpoint] == case.submit_requests
    assert submissions(ledger) == case.submit_requests
    assert len(ledger["jobs"]) == case.jobs
    # Face detect comes before each new submission only: a resumed job is not detected again.
    detect_faults = sum(spec["count"] for spec in case.faults if spec["path"] == "detect")
    assert ledger["counts"]["detect"] == kind.detects * case.submitting_tries + detect_faults
    if case.unseen_jobs:
        assert len(running_jobs(ledger)) <= case.unseen_jobs
        assert run.value(task_id, key="akool_id") is None  # the provider never learnt the id
    else:
        assert running_jobs(ledger) == []
    if case.jobs and not case.unseen_jobs:
        # The result link of the last job, also where its submission gave no URL (Face Swap Pro).
        last = run.value(task_id, key="akool_id")
        assert run.value(task_id, key="akool_result_url").endswith(f"/media/results/{last}.jpg")
    faults_left = emulator_client.faults()
    assert faults_left == [], f"a fault was never met: {faults_left}"
    if case.polls_answered is not None:
        statuses = [r["http_status"] for r in ledger["requests"] if r["endpoint"] == "listbyids"]
        assert case.polls_answered in statuses
    if case.retry_after is not None:
        assert_retry_after_honoured(ledger, case.retry_after, skip_first=False)
    if name == "stuck_until_the_deadline":
        assert ledger["counts"]["job_del"] == 2
        assert all(job["cancelled"] and job["status"] == FAILED for job in ledger["jobs"].values())
    if name == "token_expiry_while_waiting":
        assert ledger["counts"]["getToken"] == 2
        api_calls = [r for r in ledger["requests"] if r["endpoint"] in (kind.submit_endpoint, "listbyids")]
        assert {r["auth"] for r in api_calls} == {"token", "invalid"}


def assert_retry_after_honoured(ledger: dict[str, Any], retry_after: float, *, skip_first: bool) -> None:
    """Each request after a 429 came no sooner than ``Retry-After`` said (but the first, if skipped)."""
    requests = ledger["requests"]
    refused = [i for i, r in enumerate(requests) if r["http_status"] == 429][1 if skip_first else 0 :]
    assert refused
    for index in refused:
        endpoint = requests[index]["endpoint"]
        following = next(r for r in requests[index + 1 :] if r["endpoint"] == endpoint)
        assert following["at"] - requests[index]["at"] >= retry_after - 0.05


# --- The same faults met by the hook, on both transports ---------------------------------------------


def call_hook(transport: str, hook: AkoolHook, method: str, *args: Any) -> Any:
    if transport == "sync":
        return getattr(hook, method)(*args)
    import asyncio

    async def go() -> Any:
        async with hook:
            return await getattr(hook, f"a{method}")(*args)

    return asyncio.run(go())


# name: (fault, expected error or None, submit requests, jobs)
SUBMIT_FAULTS: dict[str, tuple[dict[str, Any], type[AkoolError] | None, int, int]] = {
    "5xx": (fault("http_500", "imgreage", status=502), AkoolSubmitOutcomeUnknownError, 1, 0),
    "5xx_after_it_ran": (fault("http_500", "imgreage", after=True), AkoolSubmitOutcomeUnknownError, 1, 1),
    "drop_close": (fault("drop", "imgreage", mode="close"), AkoolSubmitOutcomeUnknownError, 1, 0),
    "drop_reset": (fault("drop", "imgreage", mode="reset"), AkoolSubmitOutcomeUnknownError, 1, 0),
    "drop_mid_body": (fault("drop", "imgreage", mode="mid_body"), AkoolSubmitOutcomeUnknownError, 1, 1),
    "slow_past_the_timeout": (fault("slow", "imgreage", seconds=SLOW), AkoolSubmitOutcomeUnknownError, 1, 1),
    "not_json_after_it_ran": (
        fault("not_json", "imgreage", after=True),
        AkoolSubmitOutcomeUnknownError,
        1,
        1,
    ),
    "missing_fields_after_it_ran": (
        fault("missing_fields", "imgreage", after=True),
        AkoolSubmitOutcomeUnknownError,
        1,
        1,
    ),
    "1005_twice": (fault("code_1005", "imgreage", count=2), None, 3, 1),
    "429_once": (fault("http_429", "imgreage", retry_after=0.2), None, 2, 1),
    "1005_always": (fault("code_1005", "imgreage", count=None), AkoolRateLimitError, 3, 0),
}


@pytest.mark.parametrize("transport", ["sync", "async"])
@pytest.mark.parametrize("name", list(SUBMIT_FAULTS))
def test_submit_fault_through_the_hook(
    emulator: Any, emulator_client: EmulatorClient, akool_connection: Any, transport: str, name: str
) -> None:
    spec, error, requests, jobs = SUBMIT_FAULTS[name]
    spec = dict(spec)
    emulator_client.add_fault(spec.pop("kind"), count=spec.pop("count"), path=spec.pop("path"), **spec)
    conn_id = akool_connection("akool_hook_faults", extra={"timeout": SHORT_TIMEOUT})
    hook = AkoolHook(conn_id, retry_limit=3, retry_delay=0.05)
    face = [{"path": sample(emulator, "portrait.jpg"), "opts": "1,2:3,4:5,6:7,8"}]
    args = (sample(emulator, "portrait.jpg"), 5, face)

    if error is None:
        job = call_hook(transport, hook, "submit_image_reage", *args)
        assert list(emulator_client.ledger()["jobs"]) == [job.id]
    else:
        with pytest.raises(error) as raised:
            call_hook(transport, hook, "submit_image_reage", *args)
        if error is AkoolSubmitOutcomeUnknownError:
            assert AMBIGUOUS in str(raised.value)
    ledger = emulator_client.ledger()
    assert ledger["counts"]["imgreage"] == requests
    assert len(ledger["jobs"]) == jobs
