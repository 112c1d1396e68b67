"""
The rules of waiting for Akool jobs, without I/O, and the event a wait ends with.

Triggers (async, in the triggerer), the worker-side wait of non-deferrable operators and sensors all poll
Akool in a loop of their own, but they judge what a poll means with :class:`Waiter`, so every mode behaves
the same: the same outcomes, the same backoff after a failed poll, the same grace for ids Akool does not
know yet, one log line per status change. Whatever mode waited, the outcome is a :class:`WaitEvent`, which
is also the payload of the trigger's one final ``TriggerEvent``::

    {
        "status": "success" | "failed" | "timeout" | "not_found" | "error",
        "message": "<what happened, in words>",
        "deadline": "timeout" | "execution_timeout",  # only in timeout events: which deadline ended it
        "results": [  # one per id waited for, in the order given
            {"id": "<_id>", "job_id": "<job_id or None>",
             "status": "queued" | "processing" | "success" | "failed" | None,  # None: Akool did not know it
             "url": "<result URL or None>", "reasons": [<what Akool said went wrong>]},
        ],
        "error": None | {"type": "<AkoolError subclass>", "code": <Akool code or None>,
                         "endpoint": "<endpoint or None>", "message": "<message>", "attributes": {...}},
    }
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from airflow_provider_akool import exceptions, protocol
from airflow_provider_akool.deprecation import warn_renamed
from airflow_provider_akool.exceptions import (
    AkoolError,
    AkoolJobFailedError,
    AkoolJobTimeoutError,
    AkoolNotFoundError,
    AkoolRateLimitError,
    AkoolResponseError,
)
from airflow_provider_akool.models import BackgroundChangeResult, JobStatus, ReageResult

#: How long an id may stay unknown to Akool before the wait fails: a job that was just submitted may take a
#: moment to appear in ``listbyids``, but an id that never appears must not keep a task waiting silently.
DEFAULT_NOT_FOUND_GRACE = 60.0
#: Failed polls in a row before the wait gives up.
DEFAULT_MAX_POLL_ERRORS = 10
#: The longest pause between polls after failures, whatever the backoff or ``Retry-After`` says.
MAX_POLL_BACKOFF = 300.0
#: The shortest pause of adaptive polling: a job is never polled more often than this (unless the user's
#: ``poll_interval`` is shorter still). Below 2 s the extra polls buy little: the operator looked once at
#: submission, and an Akool job takes seconds.
MIN_ADAPTIVE_INTERVAL = 2.0
#: While a job is young its pause is at most this part of its age, so a quick job is seen soon after it
#: finished and a long (video) one is not polled more than it needs.
ADAPTIVE_AGE_FRACTION = 0.5

SUCCESS, FAILED, TIMEOUT, NOT_FOUND, ERROR = "success", "failed", "timeout", "not_found", "error"
EVENT_STATUSES = (SUCCESS, FAILED, TIMEOUT, NOT_FOUND, ERROR)
#: Which deadline ended a ``timeout`` wait: the wait's own ``timeout`` (from the submission, or the sensor's
#: ``timeout``), or the task's ``execution_timeout`` (from the start of the try), whichever came first.
WAIT_TIMEOUT, EXECUTION_TIMEOUT = "timeout", "execution_timeout"
DEADLINES = (WAIT_TIMEOUT, EXECUTION_TIMEOUT)
#: ``WaitEvent.reported_by`` of an event made from Akool's callback (the receiver's, or the trigger's from
#: the mark a callback left), not from a poll.
CALLBACK = "callback"
REPORTERS = (CALLBACK,)
_LABELS = {status.label: status for status in JobStatus}

# A stand-in for "a status read", so that polls retry by the hook's own rule for reads.
_STATUS_READ = protocol.build_list_reage_results(["0" * 24])


class StatusLogger(Protocol):
    """What a :class:`Waiter` logs to: a ``logging.Logger``, or the ``log`` of an operator or trigger."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...


@dataclass(frozen=True)
class JobSnapshot:
    """
    What one poll said about one job.

    :param id: the Akool ``_id``.
    :param status: the job's status, or None when Akool did not know the id.
    :param url: the result URL, where Akool gave one.
    :param job_id: the reage ``job_id`` (what cancelling takes), where there is one.
    :param reasons: what Akool said went wrong (``error_reasons`` of background change), as sent.
    """

    id: str
    status: JobStatus | None
    url: str | None = None
    job_id: str | None = None
    reasons: tuple[Any, ...] = ()

    @classmethod
    def of_reage(cls, result: ReageResult) -> JobSnapshot:
        """Return the snapshot of a ``listbyids`` entry."""
        return cls(id=result.id, status=result.status, url=result.url, job_id=result.job_id)

    @classmethod
    def of_background_change(cls, result: BackgroundChangeResult) -> JobSnapshot:
        """Return the snapshot of an ``infobymodelid`` reply (background change)."""
        return cls(
            id=result.id, status=result.status, url=result.image_url, reasons=tuple(result.error_reasons)
        )

    @classmethod
    def of_image(cls, result: BackgroundChangeResult) -> JobSnapshot:
        """Deprecated: use :meth:`of_background_change`."""
        warn_renamed("JobSnapshot.of_image", "JobSnapshot.of_background_change")
        return cls.of_background_change(result)

    @property
    def label(self) -> str | None:
        """The status as XCom and events spell it, or None when Akool did not know the id."""
        return self.status.label if self.status is not None else None

    def as_return_value(self, output_path: str | None = None) -> dict[str, Any]:
        """Return what operators and sensors return: ``{"id", "job_id", "status", "url", "output_path"}``."""
        return {
            "id": self.id,
            "job_id": self.job_id,
            "status": self.label,
            "url": self.url,
            "output_path": output_path,
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as a JSON-like dict (an entry of an event's ``results``)."""
        return {
            "id": self.id,
            "job_id": self.job_id,
            "status": self.label,
            "url": self.url,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, entry: Any) -> JobSnapshot:
        """Read an entry of an event's ``results``; raise ``ValueError`` when it is not one."""
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str) or not entry["id"]:
            raise ValueError(f"a result must be an object with a non-empty 'id'; got {entry!r}")
        label = entry.get("status")
        if label is not None and label not in _LABELS:
            raise ValueError(f"unknown status {label!r} for {entry['id']}")
        for key in ("url", "job_id"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise ValueError(f"{key} of {entry['id']} must be a string or null")
        reasons = entry.get("reasons") or []
        if not isinstance(reasons, list):
            raise ValueError(f"reasons of {entry['id']} must be a list")
        return cls(
            id=entry["id"],
            status=_LABELS[label] if label is not None else None,
            url=entry.get("url"),
            job_id=entry.get("job_id"),
            reasons=tuple(reasons),
        )


@dataclass(frozen=True)
class WaitEvent:
    """
    How a wait ended: the payload of a trigger's final event, and what every wait mode acts on.

    :param status: ``success``, ``failed``, ``timeout``, ``not_found`` or ``error``.
    :param message: what happened, in words a user can act on (never a credential: built from ids,
        statuses and Akool's own messages).
    :param results: the last known state of each job waited for, in the order given.
    :param error: for ``error``: the class, code and attributes of the Akool error that ended the wait.
    :param deadline: for ``timeout``: which deadline ended the wait, :data:`WAIT_TIMEOUT` or
        :data:`EXECUTION_TIMEOUT` (the task resumes on a fresh instance and raises from this alone).
    :param reported_by: :data:`CALLBACK` when Akool's callback reported the final state (the task's log
        says so), None when a poll found it.
    """

    status: str
    message: str
    results: tuple[JobSnapshot, ...]
    error: dict[str, Any] | None = None
    deadline: str | None = None
    reported_by: str | None = None

    def to_payload(self) -> dict[str, Any]:
        """Return the event as the JSON-like dict a ``TriggerEvent`` carries."""
        payload = {
            "status": self.status,
            "message": self.message,
            "results": [snapshot.to_dict() for snapshot in self.results],
            "error": self.error,
        }
        if self.deadline is not None:
            payload["deadline"] = self.deadline
        if self.reported_by is not None:
            payload["reported_by"] = self.reported_by
        return payload

    def by_callback(self) -> WaitEvent:
        """Return this event as reported by Akool's callback."""
        return replace(self, reported_by=CALLBACK)

    @property
    def execution_timed_out(self) -> bool:
        """Whether the task's ``execution_timeout`` (not the wait's own ``timeout``) ended the wait."""
        return self.status == TIMEOUT and self.deadline == EXECUTION_TIMEOUT

    @classmethod
    def from_payload(cls, payload: Any) -> WaitEvent:
        """
        Read and check an event's payload.

        :raises AkoolError: the payload is not an event of this provider (a resumed task must not act on
            something it does not understand).
        """
        try:
            if not isinstance(payload, Mapping):
                raise ValueError(f"the event must be an object; got {type(payload).__name__}")
            status, message = payload.get("status"), payload.get("message")
            if status not in EVENT_STATUSES:
                raise ValueError(f"unknown event status {status!r}")
            if not isinstance(message, str):
                raise ValueError("the event has no message")
            raw_results = payload.get("results")
            if not isinstance(raw_results, list) or not raw_results:
                raise ValueError("the event has no results")
            results = tuple(JobSnapshot.from_dict(entry) for entry in raw_results)
            error = payload.get("error")
            if status == ERROR and (not isinstance(error, Mapping) or not isinstance(error.get("type"), str)):
                raise ValueError("an error event must say which error ended the wait")
            # Absent from the events of earlier versions, whose only deadline was the wait's timeout.
            deadline = payload.get("deadline")
            if deadline is not None and deadline not in DEADLINES:
                raise ValueError(f"unknown deadline {deadline!r}")
            # Absent from the events of earlier versions and of polls.
            reported_by = payload.get("reported_by")
            if reported_by is not None and reported_by not in REPORTERS:
                raise ValueError(f"unknown reporter {reported_by!r}")
        except ValueError as err:
            raise AkoolError(
                f"the wait ended with an event this provider does not understand: {err}"
            ) from None
        return cls(
            status=status,
            message=message,
            results=results,
            error=dict(error) if error else None,
            deadline=deadline if status == TIMEOUT else None,
            reported_by=reported_by,
        )

    @classmethod
    def of_error(cls, error: AkoolError, results: Sequence[JobSnapshot]) -> WaitEvent:
        """Return the event of a wait that an Akool error ended."""
        attributes = {
            key: value
            for key, value in vars(error).items()
            if key not in ("message", "code", "endpoint") and _is_json_scalar(value)
        }
        ids = ", ".join(snapshot.id for snapshot in results)
        return cls(
            status=ERROR,
            message=f"the wait for job(s) {ids} stopped: {error}",
            results=tuple(results),
            error={
                "type": type(error).__name__,
                "code": error.code,
                "endpoint": error.endpoint,
                "message": error.message,
                "attributes": attributes,
            },
        )

    def unfinished(self) -> list[JobSnapshot]:
        """Return the jobs that were neither successful nor failed at the last poll."""
        return [s for s in self.results if s.status is None or not s.status.is_terminal()]

    def raise_for_status(self) -> None:
        """
        Raise the exception this event stands for; return when every job succeeded.

        ``failed`` raises :class:`AkoolJobFailedError` (the Akool id, job id and reasons), ``timeout``
        :class:`AkoolJobTimeoutError`, ``not_found`` :class:`AkoolNotFoundError`, and ``error`` the class the
        event names (the same class the hook raised, chosen by name and code, never by message text).
        """
        if self.status == SUCCESS:
            return
        if self.status == FAILED:
            failed = next((s for s in self.results if s.status is JobStatus.FAILED), self.results[0])
            raise AkoolJobFailedError(
                self.message, akool_id=failed.id, job_id=failed.job_id, reasons=list(failed.reasons)
            )
        if self.status == TIMEOUT:
            if self.execution_timed_out:
                raise execution_timeout_error(self.message)
            raise AkoolJobTimeoutError(self.message)
        if self.status == NOT_FOUND:
            raise AkoolNotFoundError(self.message)
        raise _rebuild_error(self.error or {}, self.message)


def execution_timeout_error(message: str) -> BaseException:
    """Return Airflow's own ``AirflowTaskTimeout`` (what its timer raises in the worker) with ``message``."""
    # Imported here: the rules of waiting need no Airflow; only the task that raises it does.
    from airflow.providers.common.compat.sdk import AirflowTaskTimeout

    error: BaseException = AirflowTaskTimeout(message)
    return error


def try_deadline(start_of_try: float, execution_timeout: float | None) -> float | None:
    """
    Return when the task's ``execution_timeout`` ends this try (epoch seconds), or None without one.

    ``start_of_try`` is when ``execute()`` began, which is when Airflow's own timer starts in the worker,
    so a deferred try ends when the same try in the worker would. Not ``ti.start_date``: it is stamped
    before the task process loads the DAG (seconds earlier: 3 s on 3.1.8, 9 s on 3.3.2 under
    ``dag.test()`` here), and after a deferral 3.1 resets it to the resume time while 3.3 keeps it.
    """
    return None if execution_timeout is None else start_of_try + execution_timeout


def deferred_wait_options(
    start_of_try: float, execution_timeout: timedelta | None, first_poll_at: float | None, *, adaptive: bool
) -> dict[str, Any]:
    """
    Return the trigger kwargs that carry a try's wait into the triggerer, for operators and sensors alike.

    ``execution_deadline``: when the task's ``execution_timeout`` ends the try (:func:`try_deadline`);
    ``first_poll_at``: when the trigger polls first (the check made before deferring was a poll, so
    :meth:`Waiter.first_poll_at`); ``adaptive_polling`` only where asked, so rows stay as they were.
    """
    options: dict[str, Any] = {
        "execution_deadline": try_deadline(
            start_of_try, execution_timeout.total_seconds() if execution_timeout is not None else None
        ),
        "first_poll_at": first_poll_at,
    }
    if adaptive:
        options["adaptive_polling"] = True
    return options


def _is_json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _rebuild_error(error: Mapping[str, Any], fallback_message: str) -> AkoolError:
    """Return the exception an error event names, with its code, endpoint and attributes."""
    cls = getattr(exceptions, str(error.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, AkoolError)):
        cls = AkoolError
    code = error.get("code")
    endpoint = error.get("endpoint")
    message = error.get("message")
    attributes = error.get("attributes")
    # The reconstruction pickling uses: every AkoolError subclass, whatever its constructor takes.
    return exceptions._rebuild(
        cls,
        message if isinstance(message, str) else fallback_message,
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        endpoint if isinstance(endpoint, str) else None,
        dict(attributes) if isinstance(attributes, Mapping) else {},
    )


def poll_error_delay(
    error: AkoolError, errors_in_a_row: int, poll_interval: float, max_errors: int
) -> float | None:
    """
    Return how long to pause after a failed poll, or None when the wait should stop.

    Transient failures (the hook's rule for reads: connection errors, 5xx, 429, 1005; and a reply that
    could not be understood, such as a gateway's maintenance page, which a wait of hours should outlive)
    back off exponentially from ``poll_interval`` up to :data:`MAX_POLL_BACKOFF`, never shorter than a
    ``Retry-After`` the server sent, for up to ``max_errors`` failures in a row. Anything else (a refused key,
    a banned account) will not get better by waiting.
    """
    transient = protocol.is_retryable(_STATUS_READ, error) or isinstance(error, AkoolResponseError)
    if errors_in_a_row > max_errors or not transient:
        return None
    delay = poll_interval * 2 ** (errors_in_a_row - 1)
    if isinstance(error, AkoolRateLimitError) and error.retry_after is not None:
        delay = max(delay, error.retry_after)
    return min(delay, max(MAX_POLL_BACKOFF, poll_interval))


@dataclass
class Waiter:
    """
    The state of one wait and the rules that end it; the caller polls and sleeps, this decides.

    Feed it each poll with :meth:`polled` or :meth:`poll_failed`; each returns the final
    :class:`WaitEvent` or None, and :attr:`delay` is then the pause before the next poll. A success or a
    failure reported by a poll wins over a deadline that passed while it was in flight.

    :param ids: the ``_id`` values waited for, in the order results are reported.
    :param job_id_of: the ``job_id`` of each ``_id`` where the caller knows it (fills results Akool leaves
        out).
    :param started_at: when the wait began (epoch seconds): the origin of elapsed times and of the grace.
    :param deadline: when to give up (epoch seconds), or None to wait without a deadline.
    :param execution_deadline: when the task's ``execution_timeout`` ends this try (epoch seconds), or
        None; the earlier of the two deadlines ends the wait, and the event says which.
    :param not_found_grace: seconds after ``started_at`` during which an unknown id is still waited for.
    :param log: where status changes are logged (one INFO line each, none per poll).
    """

    ids: Sequence[str]
    poll_interval: float
    started_at: float
    deadline: float | None = None
    job_id_of: Mapping[str, str | None] = field(default_factory=dict)
    not_found_grace: float = DEFAULT_NOT_FOUND_GRACE
    max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS
    log: StatusLogger = field(default_factory=lambda: logging.getLogger(__name__))
    execution_deadline: float | None = None
    delay: float = 0.0
    errors_in_a_row: int = 0
    last: dict[str, JobSnapshot] = field(default_factory=dict)
    #: The last status Akool gave for each id and when (epoch seconds): an id that had one and then
    #: disappears from Akool's answers vanished (deleted, or expired) rather than was never there.
    seen: dict[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def ends_at(self) -> tuple[float, str] | None:
        """The deadline that comes first (epoch seconds) and which one it is; None without any."""
        deadlines = [
            (at, kind)
            for at, kind in ((self.deadline, WAIT_TIMEOUT), (self.execution_deadline, EXECUTION_TIMEOUT))
            if at is not None
        ]
        return min(deadlines) if deadlines else None

    def snapshots(self) -> tuple[JobSnapshot, ...]:
        """The last known state of each job, in the order of :attr:`ids`."""
        return tuple(
            self.last.get(i) or JobSnapshot(id=i, status=None, job_id=self.job_id_of.get(i)) for i in self.ids
        )

    def first_poll_at(self, now: float, *, adaptive: bool) -> float:
        """
        Return when a trigger should poll first (epoch seconds), after the check a task made before deferring.

        That check was a poll: the next one comes this wait's pause later, as it would in the worker
        (``poll_interval``, or the backoff after a failed check, at least a ``Retry-After``), not as soon as
        the trigger starts. With adaptive polling a successful check is followed at the adaptive pause of
        the job's age instead, never later than ``poll_interval``.
        """
        pause = self.delay
        if adaptive and not self.errors_in_a_row:
            pause = min(pause, adaptive_interval(now - self.started_at, self.poll_interval))
        return now + pause

    def polled(self, found: Mapping[str, JobSnapshot], now: float) -> WaitEvent | None:
        """Take the results of a poll (by ``_id``; ids Akool did not know are absent)."""
        self.errors_in_a_row = 0
        for akool_id in self.ids:
            snapshot = found.get(akool_id)
            known_job_id = self.job_id_of.get(akool_id)
            if snapshot is None:
                snapshot = JobSnapshot(id=akool_id, status=None, job_id=known_job_id)
            elif snapshot.job_id is None and known_job_id:
                snapshot = replace(snapshot, job_id=known_job_id)
            previous = self.last.get(akool_id)
            if previous is None or previous.status != snapshot.status:
                self._log_change(snapshot, now)
            self.last[akool_id] = snapshot
            if snapshot.label is not None:
                self.seen[akool_id] = (snapshot.label, now)
        snapshots = self.snapshots()
        failed = [s for s in snapshots if s.status is JobStatus.FAILED]
        if failed:
            return WaitEvent(FAILED, _failure_message(failed), snapshots)
        if all(s.status is JobStatus.SUCCESS for s in snapshots):
            return WaitEvent(SUCCESS, f"job(s) {_ids(snapshots)} succeeded", snapshots)
        missing = [s for s in snapshots if s.status is None]
        if missing and now - self.started_at >= self.not_found_grace:
            return WaitEvent(NOT_FOUND, self._not_found_message(missing, now), snapshots)
        return self._next(now)

    def _not_found_message(self, missing: Sequence[JobSnapshot], now: float) -> str:
        """Say which ids were never known (check them) and which were known and then vanished."""
        vanished = [s for s in missing if s.id in self.seen]
        unknown = [s for s in missing if s.id not in self.seen]
        parts = []
        for snapshot in vanished:
            label, at = self.seen[snapshot.id]
            parts.append(
                f"job {snapshot.id} (job_id {snapshot.job_id or 'none'}) was known to Akool, last as "
                f"{label} at {_utc(at)} ({at - self.started_at:.0f} s into the wait), and has vanished "
                f"from Akool's answers since: it was deleted on Akool, or its result expired (Akool keeps "
                f"results {protocol.RESULT_RETENTION_DAYS} days)"
            )
        if unknown:
            parts.append(
                f"the id(s) {_ids(unknown)} are unknown to Akool {now - self.started_at:.0f} s after the "
                f"wait began (grace {self.not_found_grace:g} s). Check the ids: they must be the _id "
                "values a submission returned, from the same account"
            )
        return ". ".join(parts)

    def poll_failed(self, error: AkoolError, now: float) -> WaitEvent | None:
        """Take a poll that raised ``error``."""
        if isinstance(error, AkoolNotFoundError):
            # Whether listbyids answers 1008 for unknown ids or leaves them out is not documented: either
            # way it means "not known (yet)", which the grace period decides.
            return self.polled({}, now)
        self.errors_in_a_row += 1
        delay = poll_error_delay(error, self.errors_in_a_row, self.poll_interval, self.max_poll_errors)
        if delay is None:
            return WaitEvent.of_error(error, self.snapshots())
        self.log.warning(
            "Polling Akool failed (%s); poll %d of at most %d in a row, next in %.1f s",
            error,
            self.errors_in_a_row,
            self.max_poll_errors,
            delay,
        )
        return self._next(now, delay)

    def _next(self, now: float, delay: float | None = None) -> WaitEvent | None:
        snapshots = self.snapshots()
        ends = self.ends_at
        if ends is not None and now >= ends[0]:
            deadline, kind = ends
            last = ", ".join(f"{s.id} {s.label or 'unknown'}" for s in snapshots)
            if kind == EXECUTION_TIMEOUT:
                message = (
                    f"the task's execution_timeout ended this try {now - self.started_at:.0f} s into the "
                    f"wait for job(s) {_ids(snapshots)} (last status: {last})"
                )
            else:
                message = (
                    f"job(s) {_ids(snapshots)} did not finish within {deadline - self.started_at:g} s "
                    f"(last status: {last})"
                )
            return WaitEvent(TIMEOUT, message, snapshots, deadline=kind)
        delay = self.poll_interval if delay is None else delay
        # Poll once more right at the deadline rather than sleeping past it.
        self.delay = delay if ends is None else max(0.0, min(delay, ends[0] - now))
        return None

    def _log_change(self, snapshot: JobSnapshot, now: float) -> None:
        vanished = snapshot.status is None and snapshot.id in self.seen
        if snapshot.status is JobStatus.SUCCESS:
            state = "succeeded"
        elif snapshot.status is JobStatus.FAILED:
            state = "failed"
        elif snapshot.status is not None:
            state = f"is {snapshot.label}"
        else:
            state = "is no longer known to Akool" if vanished else "is not known to Akool (yet)"
        self.log.info("Akool job %s %s after %.1f s", snapshot.id, state, now - self.started_at)


def adaptive_interval(age: float, ceiling: float, floor: float = MIN_ADAPTIVE_INTERVAL) -> float:
    """
    Return the pause before the next poll of a job waited for ``age`` seconds.

    It is ``ceiling / 2**k``: the largest such pause not above ``ADAPTIVE_AGE_FRACTION`` of the age, or the
    smallest not below ``floor``; never above ``ceiling`` (the user's ``poll_interval``). With a 10 s
    interval a job is polled at 0, 2.5, 5, 7.5, 10, 15, 20, 30, 40... s after its wait began. Halvings of one
    interval nest, so waits of the same interval still meet on the grid of a shared poller as they age.
    """
    step = ceiling
    target = max(age * ADAPTIVE_AGE_FRACTION, floor)
    while step > target and step / 2 >= floor:
        step /= 2
    return step


def first_poll_at(waiter: Waiter, now: float, *, adaptive: bool) -> float:
    """Return ``waiter.first_poll_at(now, adaptive=adaptive)`` (the function ``triggers.base`` re-exports)."""
    return waiter.first_poll_at(now, adaptive=adaptive)


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ids(snapshots: Iterable[JobSnapshot]) -> str:
    return ", ".join(s.id for s in snapshots)


def _failure_message(failed: Sequence[JobSnapshot]) -> str:
    parts = []
    for snapshot in failed:
        reasons = "; ".join(str(reason) for reason in snapshot.reasons) or "Akool gave no reason"
        parts.append(f"job {snapshot.id} (job_id {snapshot.job_id or 'none'}) failed (status 4): {reasons}")
    return ". ".join(parts)
