"""
Failures a retry cannot fix fail the task at once; transient ones and failed jobs keep the user's retries.

Each case is a ``dag.test()`` run of one image reage with ``retries=3`` and no retry delay, in the worker and
deferred. A failure whose class is an ``AirflowFailException`` (bad input, 1003, 1007, 1102, 1200, ...)
runs 1 try; a failed job (status 4) and transient failures run all 4. The deferred cases that fail in the
trigger go through the error event, which ``wait._rebuild_error`` turns back into the same class. Where
face swap's path differs (``Case.kind``, ``tests/support/job_kinds.py``) it runs too: image face swap's
detect of the picture changed, Face Swap Pro's v4 submission.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import dag

from airflow_provider_akool import wait
from airflow_provider_akool.emulator import EmulatorClient
from airflow_provider_akool.exceptions import (
    AkoolAccountBannedError,
    AkoolError,
    AkoolInsufficientCreditError,
    AkoolInvalidParameterError,
    AkoolJobFailedError,
    AkoolMissingAuthError,
    AkoolRateLimitError,
    AkoolResponseError,
    AkoolTooManyFacesError,
    AkoolValidationError,
)
from tests.support.airflow_version import HAS_TASK_STATE_STORE
from tests.support.dag_runs import run_recorded
from tests.support.job_kinds import KINDS, SUBMIT
from tests.support.ledger import submissions

START = pendulum.datetime(2026, 1, 1, tz="UTC")
POLL = 0.1
RETRIES = 3


def fault(kind: str, path: str, count: int | None = None, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "path": path, "count": count, **extra}


@dataclass(frozen=True)
class Case:
    """
    :param tries: tries the task runs: 1 when it fails at once, ``RETRIES + 1`` when it keeps its retries.
    :param submits: submit requests that reach the emulator, or None when they depend on Airflow's version.
    :param trigger_polls: in deferred mode, the ``listbyids`` requests (the error came from the trigger).
    :param kind: the kind of ``tests/support/job_kinds.py`` that runs the case.
    :param modes: ``sync`` (the worker waits), ``defer``: a failure before any wait needs only the first.
    """

    error: type[AkoolError]
    tries: int
    faults: tuple[dict[str, Any], ...] = ()
    operator: dict[str, Any] = field(default_factory=dict)
    submits: int | None = 0
    trigger_polls: int | None = None
    kind: str = "reage"
    modes: tuple[str, ...] = ("sync", "defer")


AT_ONCE, ALL_TRIES = 1, RETRIES + 1
CASES = {
    # Fails at once, before any request.
    "bad_input": Case(AkoolValidationError, AT_ONCE, operator={"face_reage": 99}),
    # 1007 found by face detect (the emulator's faces marker): nothing is submitted.
    "too_many_faces": Case(AkoolTooManyFacesError, AT_ONCE, operator={"image": "group-faces-9.jpg"}),
    # ... by image face swap's detect of the picture changed (9 faces, where a swap takes 8): after the
    # detect, before the source portrait's and before any submission.
    "too_many_faces_face_swap": Case(
        AkoolTooManyFacesError,
        AT_ONCE,
        operator={"image": "group-faces-9.jpg"},
        kind="faceswap",
        modes=("sync",),
    ),
    # Refusals of the submission by code.
    "1003": Case(AkoolInvalidParameterError, AT_ONCE, (fault("code", SUBMIT, code=1003),), submits=1),
    # ... by Face Swap Pro's v4 endpoint.
    "1003_face_swap_pro": Case(
        AkoolInvalidParameterError,
        AT_ONCE,
        (fault("code", SUBMIT, code=1003),),
        submits=1,
        kind="faceswap_pro",
        modes=("sync",),
    ),
    "1102": Case(AkoolMissingAuthError, AT_ONCE, (fault("code", SUBMIT, code=1102),), submits=1),
    "1104": Case(AkoolInsufficientCreditError, AT_ONCE, (fault("code", SUBMIT, code=1104),), submits=1),
    "1200_on_submit": Case(AkoolAccountBannedError, AT_ONCE, (fault("banned", SUBMIT),), submits=1),
    # 1200 met while waiting: in deferred mode by the trigger (the first poll, made in the worker before
    # deferring, is let through by a zero-second "slow" fault), so the error event is rebuilt.
    "1200_while_waiting": Case(
        AkoolAccountBannedError,
        AT_ONCE,
        (fault("slow", "listbyids", count=1, seconds=0), fault("banned", "listbyids")),
        submits=1,
        trigger_polls=2,
    ),
    # Keep their retries: a failed job, transient refusals, and a wait stopped by poll errors.
    "failed_job": Case(
        AkoolJobFailedError, ALL_TRIES, operator={"image": "portrait-emulator-fail.jpg"}, submits=ALL_TRIES
    ),
    # Retry-After 0: the hook's five attempts of each try go at once.
    "429_on_every_submit": Case(
        AkoolRateLimitError, ALL_TRIES, (fault("http_429", SUBMIT, retry_after=0),), submits=5 * ALL_TRIES
    ),
    "wait_stopped_by_poll_errors": Case(
        AkoolResponseError,
        ALL_TRIES,
        (fault("slow", "listbyids", count=1, seconds=0), fault("not_json", "listbyids")),
        # Airflow 3.3 resumes the recorded job on each retry; below 3.3 every try submits anew.
        submits=1 if HAS_TASK_STATE_STORE else ALL_TRIES,
    ),
}


@pytest.fixture
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cap the waits' backoff at the poll interval, so an error budget of 10 polls takes about a second."""
    monkeypatch.setattr(wait, "MAX_POLL_BACKOFF", POLL)


@pytest.mark.parametrize(
    ("name", "mode"),
    [pytest.param(name, mode, id=f"{name}-{mode}") for name, case in CASES.items() for mode in case.modes],
)
def test_a_failure_fails_at_once_or_keeps_its_retries_by_its_class(
    airflow_db: Any,
    emulator: Any,
    emulator_client: EmulatorClient,
    akool_connection: Any,
    short_backoff: None,
    name: str,
    mode: str,
) -> None:
    case, kind = CASES[name], KINDS[CASES[name].kind]
    conn_id = akool_connection("akool_no_retry")
    for spec in case.faults:
        spec = dict(spec)
        path = kind.path(spec.pop("path"))
        emulator_client.add_fault(spec.pop("kind"), count=spec.pop("count"), path=path, **spec)
    options = dict(case.operator)
    image = options.pop("image", "portrait.jpg")

    @dag(dag_id=f"no_retry_{name}_{mode}", schedule=None, start_date=START)
    def no_retry() -> None:
        kind.operator(
            emulator,
            image,
            akool_conn_id=conn_id,
            retries=RETRIES,
            retry_delay=timedelta(0),
            poll_interval=POLL,
            deferrable=mode == "defer",
            **options,
        )

    run = run_recorded(no_retry(), emulator_client)

    error = run.failure(kind.name)
    assert isinstance(error, case.error), error
    assert isinstance(error, AirflowFailException) is (case.tries == AT_ONCE)
    assert run.tis[(kind.name, -1)].try_number == case.tries
    if case.submits is not None:
        assert submissions(run.ledger) == case.submits
    if kind.detects and case.submits == 0 and case.error is AkoolTooManyFacesError:
        # Refused by the detect of the picture changed: the source portrait was never detected either.
        assert run.ledger["counts"]["detect"] == 1
    if case.trigger_polls is not None:
        assert run.ledger["counts"]["listbyids"] == case.trigger_polls
