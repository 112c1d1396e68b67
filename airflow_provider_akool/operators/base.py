"""
The base of operators that submit an Akool job and wait for it: reage (image, video) and background change.

A subclass names its kind of job (:class:`~airflow_provider_akool.kinds.base.JobKind`: how it is polled
and cancelled, which trigger waits for it) and says what to check and how to submit; this class does the
rest the same way for every kind of job: validation after rendering and before any request, XCom for the UI
link, the wait in the worker or in the triggerer, the deadline, cancelling when killed, failures,
``output_path`` and the return value.

Crash safety (Airflow 3.3+): through ``ResumableJobMixin``, the submitted job is recorded in the task's
``task_state_store`` before any wait, so a try that died (a killed worker, a lost pod, a wait stopped by
errors) is followed by a try that resumes the same job instead of paying for a second one. Below 3.3 the
compat stand-in has no store and every try submits anew, as before.
"""

from __future__ import annotations

import enum
import inspect
import os
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from airflow.providers.common.compat.sdk import ResumableJobMixin, conf
from airflow.sdk import BaseOperator

from airflow_provider_akool import inputs, masking, validation
from airflow_provider_akool.exceptions import (
    AkoolError,
    AkoolJobTimeoutError,
    AkoolNotFoundError,
    AkoolResponseError,
    AkoolValidationError,
)
from airflow_provider_akool.lineage import AkoolLineageMixin
from airflow_provider_akool.links import RESULT_URL_XCOM_KEY, AkoolResultLink, safe_link
from airflow_provider_akool.models import JobStatus
from airflow_provider_akool.operators.job_state import JobRecord, TryState
from airflow_provider_akool.protocol import RESULT_RETENTION_DAYS
from airflow_provider_akool.wait import (
    CALLBACK,
    DEFAULT_NOT_FOUND_GRACE,
    SUCCESS,
    JobSnapshot,
    Waiter,
    WaitEvent,
    deferred_wait_options,
    execution_timeout_error,
)
from airflow_provider_akool.webhook.callback_url import (
    AIRFLOW_RECEIVER,
    CALLBACK_XCOM_KEY,
    new_callback_url,
    pending_mark,
    public_base_url,
    relaxed_poll_interval,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger
    from pydantic import JsonValue

    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.kinds.base import JobKind

#: XCom keys pushed right after the submission, before any wait (and before deferring).
AKOOL_ID_XCOM_KEY = "akool_id"
JOB_ID_XCOM_KEY = "akool_job_id"

#: The ``task_state_store`` key of the submitted job (a :class:`~.job_state.JobRecord`).
#: Renaming it would make the retries of tasks in flight submit again.
JOB_RECORD_KEY = "akool_job"
#: What :meth:`AkoolJobOperator.get_job_status` says of a recorded job Akool does not know (yet).
UNKNOWN_STATUS = "unknown"
#: ... of a recorded job Akool still does not know once the grace has passed: submitted anew.
MISSING_STATUS = "missing"
#: ... of a record this provider cannot read: submitted anew.
UNREADABLE_STATUS = "unreadable"
#: ... of a recorded job that succeeded too long ago for Akool to still keep its result: submitted anew.
EXPIRED_STATUS = "expired"
_ACTIVE_STATUSES = frozenset({JobStatus.QUEUED.label, JobStatus.PROCESSING.label, UNKNOWN_STATUS})


class _Unset(enum.Enum):
    FIELD = enum.auto()


#: The ``webhook_url`` a built-in :meth:`AkoolJobOperator.submit` gets from a subclass written before submit
#: took one (``super().submit(hook, context)``): the operator's ``webhook_url``, as it was then.
FROM_FIELD: Final = _Unset.FIELD
#: What ``submit`` takes as ``webhook_url``: the URL, None, or :data:`FROM_FIELD`.
WebhookUrl = str | None | Literal[_Unset.FIELD]

DEFAULT_POLL_INTERVAL = 10.0
#: Akool's own advice: a job not done within 3 hours has a problem with its input.
DEFAULT_TIMEOUT = 3 * 60 * 60.0


class AkoolJobOperator(
    AkoolLineageMixin, masking.LearnsSecretWhenRendered, ResumableJobMixin, BaseOperator, ABC
):
    """
    Submit one Akool job, then wait for it in the worker or, with ``deferrable=True``, in the triggerer.

    On Airflow 3.3+ the job is recorded in ``task_state_store`` (key ``akool_job``) right after the
    submission, before any wait or deferral. A later try of the same task instance (a retry after a worker
    died or the wait failed, or a cleared task) asks Akool about the recorded job first: queued or
    processing, it waits for that job again, with the deadline of the first submission; succeeded, it
    returns its result (and keeps it at ``output_path``) without waiting; failed, cancelled by the
    deadline, unknown to Akool, or submitted more than 7 days before (its result gone), it submits a new
    job. Below 3.3 every try submits a new job.

    :param akool_conn_id: the ``akool`` connection.
    :param webhook_url: an http(s) URL Akool calls with the job's progress (``webhookUrl``), or
        ``"airflow"``: Akool calls the provider's receiver on Airflow's API server (switched on with
        ``[akool] webhook_receiver``), whose callback resumes the deferred task at once; the trigger then
        polls only every ``max(poll_interval, 60 s)``, as the fallback. See ``docs/webhooks.md``.
    :param wait_for_completion: wait for the job to finish; False returns right after the submission, with
        the status at that time.
    :param deferrable: wait in the triggerer, freeing the worker slot. Defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between status checks.
    :param timeout: seconds for the whole wait, from the submission. On expiry the job is cancelled where
        Akool allows it and the task fails with
        :class:`~airflow_provider_akool.exceptions.AkoolJobTimeoutError`. The task's own
        ``execution_timeout`` is honoured while deferred too (Airflow does not enforce it there): the job
        is cancelled where Akool allows it and the task fails with Airflow's ``AirflowTaskTimeout``, as
        in the worker.
    :param adaptive_polling: when deferred, poll a young job more often than ``poll_interval`` (from
        every 2 s, doubling as it ages) to see a quick job finish sooner, at the cost of more requests.
        Off by default: every mode polls every ``poll_interval``.
    :param output_path: where to keep the result once the job succeeded: a local path or an
        ``ObjectStoragePath`` URI (``file:///data/out/``, ``s3://aws_default@bucket/prefix/``); a folder
        receives ``<akool id>.<ext>``. Akool keeps results for 7 days only. What can be checked without
        writing (the scheme is served, the connection exists, the folder can be written, the file is not
        there yet, one name per map index) is checked before the job is submitted.
    :param overwrite: replace a file already at ``output_path``. By default a result never replaces a
        file (another task's or another run's): keeping it fails with
        :class:`~airflow_provider_akool.exceptions.AkoolOutputExistsError`, before the submission when
        the name is known then; a file with the very same bytes (a retry's own result) is accepted.
    :param input_url_expiry: how long (seconds or a ``timedelta``, at most 7 days) the URLs signed for
        media inputs given as object-storage URIs (``s3://aws_default@bucket/key``) stay valid; long enough
        for Akool to download them when the job leaves its queue. Default one day.
    """

    template_fields: Sequence[str] = ("akool_conn_id", "webhook_url", "output_path")
    operator_extra_links = (AkoolResultLink(),)
    #: The result URL this task knows, for :class:`AkoolResultLink` (Airflow asks the link in this process
    #: when the task defers or ends, also before Akool gave a URL).
    result_link_url: str | None = None
    #: The kind of job this operator submits: how it is polled and cancelled, which trigger waits for it.
    kind: ClassVar[JobKind]
    #: The parameter that names the image or video the job changes (``modify_image``): checked after
    #: rendering, right before :meth:`validate_inputs`, and given signed by :meth:`media`. None where the
    #: operator checks and signs its media itself.
    media_parameter: ClassVar[str | None] = None
    # ResumableJobMixin keeps the submitted job under this key of task_state_store.
    external_id_key = JOB_RECORD_KEY

    def __init__(
        self,
        *,
        akool_conn_id: str = "akool_default",
        webhook_url: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | timedelta = DEFAULT_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        output_path: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        durable: bool | None = None,
        adaptive_polling: bool = False,
        input_url_expiry: float | timedelta = inputs.DEFAULT_INPUT_URL_EXPIRY,
        **kwargs: Any,
    ) -> None:
        # Named here, not left to the mixin: Airflow 3.1's partial() checks keywords against the
        # signatures of operator classes only, and the compat stand-in is not one. Passed on only when
        # given, so the stand-in warns only about an explicit value.
        if durable is not None:
            kwargs["durable"] = durable
        super().__init__(**kwargs)
        self.akool_conn_id = akool_conn_id
        self.webhook_url = webhook_url
        self.wait_for_completion = wait_for_completion
        self.overwrite = overwrite
        self.deferrable = deferrable
        self.poll_interval = (
            poll_interval.total_seconds() if isinstance(poll_interval, timedelta) else poll_interval
        )
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        self.output_path = output_path
        self.adaptive_polling = adaptive_polling
        self.input_url_expiry = input_url_expiry
        # What this try learns on its way (the job, its wait, its result); each execute() starts anew.
        self._try_state = TryState()

    @cached_property
    def hook(self) -> AkoolHook:
        """The hook of submissions, cancels and downloads (with the hook's retries)."""
        return self.make_hook()

    def make_hook(self, **kwargs: Any) -> AkoolHook:
        """Return a new hook on :attr:`akool_conn_id`; ``kwargs`` go to :class:`AkoolHook`."""
        # Imported here: the HTTP clients are needed to run a task, not to parse a DAG file.
        from airflow_provider_akool.hooks.akool import AkoolHook

        return AkoolHook(self.akool_conn_id, **kwargs)

    @property
    def job_kind(self) -> str:
        """Deprecated alias of ``kind.name``: the kind of job as messages say it (``reage``)."""
        warnings.warn(
            "AkoolJobOperator.job_kind is deprecated; use kind.name",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.kind.name

    # --- What a subclass says ------------------------------------------------------------------

    @abstractmethod
    def validate_inputs(self) -> None:
        """Check the job's own rendered parameters; raise ``AkoolValidationError`` naming the parameter."""

    @abstractmethod
    def submit(self, hook: AkoolHook, context: Context, webhook_url: str | None) -> JobSnapshot:
        """
        Submit the job (after validation) and return what the submission said (``kind.submitted``).

        ``webhook_url`` is the URL to give Akool as ``webhookUrl``: the rendered ``webhook_url``, or with
        ``webhook_url="airflow"`` this task's callback URL (whose token stays out of fields, logs and XCom).
        """

    def media(self) -> dict[str, str]:
        """Return :attr:`media_parameter` signed, as the request takes it (``{"modify_image": <URL>}``)."""
        name = self.media_parameter
        return {} if name is None else {name: self.signed_input(name, getattr(self, name))}

    def webhook_url_of(self, given: WebhookUrl) -> str | None:
        """Return the URL ``submit`` gives Akool: ``given``, or the operator's own for :data:`FROM_FIELD`."""
        return self.webhook_url if given is FROM_FIELD else given

    # --- What the kind says --------------------------------------------------------------------

    def poll(self, hook: AkoolHook, job: JobSnapshot) -> JobSnapshot | None:
        """Ask Akool once for the job's state; None when Akool does not know the id (yet)."""
        return self.kind.fetch_one(hook, job.id)

    def make_trigger(
        self, job: JobSnapshot, *, started_at: float, deadline: float, **wait_options: Any
    ) -> BaseTrigger:
        """
        Return the kind's trigger that waits for ``job`` in the triggerer, with ``deadline`` in its kwargs.

        ``wait_options`` are keyword arguments of every Akool trigger to pass on as they are
        (``execution_deadline``, ``first_poll_at``, ``adaptive_polling``). Where the kind can be cancelled
        the trigger gets the ``job_id``, so a user killing the deferred task cancels the job.
        """
        return self.kind.make_trigger(
            [job.id],
            akool_conn_id=self.akool_conn_id,
            poll_interval=float(self.poll_interval),
            deadline=deadline,
            job_id_of={job.id: job.job_id} if self.kind.can_cancel else None,
            started_at=started_at,
            **wait_options,
        )

    def cancel(self, hook: AkoolHook, job: JobSnapshot) -> bool:
        """Cancel the remote job by its ``job_id`` and return True; False where Akool cannot cancel it."""
        if self.kind.cancel is None or not job.job_id:
            return False
        self.kind.cancel(hook, [job.job_id])
        return True

    # --- Execution -----------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, then submit and wait (here or deferred), or resume the job an earlier try recorded."""
        # Airflow's execution_timeout timer starts right before execute(): count from here too.
        self._try_state = TryState(started_at=time.time())
        self._validate()
        if context.get("task_state_store") is not None:
            # Not the mixin's return value: when it resumes a running job it returns what
            # poll_until_complete returned, which its own signature says is None.
            self.execute_resumable(context)
        else:
            # No store to resume from (Airflow < 3.3, or a bare context): what the compat stand-in does,
            # without the mixin's warning that the store is missing.
            record = self.submit_job(context)
            self.poll_until_complete(record, context)
            self.get_job_result(record, context)
        if self._try_state.result is None:  # pragma: no cover - poll_until_complete or get_job_result set it
            raise AkoolError(f"the {self.kind.name} job ended without a result")
        return masking.redact(self._try_state.result)

    def _validate(self) -> None:
        """Check every parameter; a secret rendered into one (by mistake) is masked in the error."""
        if isinstance(self.akool_conn_id, str) and self.akool_conn_id.strip():
            # The masker learns the API key only when the connection is read; validation comes first.
            masking.make_secret_known(self.hook)
        try:
            self._check_parameters()
            self.adaptive_polling = validation.boolean("adaptive_polling", self.adaptive_polling)
        except AkoolValidationError as error:
            raise masking.redacted_error(error) from None

    # --- ResumableJobMixin ---------------------------------------------------------------------

    def submit_job(self, context: Context) -> JsonValue:
        """Submit the job, push its ids to XCom and return the record the mixin stores."""
        output_path = self._output_path_to_keep()
        if output_path is not None:
            from airflow_provider_akool import storage  # fsspec only when a result is kept

            # Only before a new job: a resumed one was checked when it was submitted, and its result may
            # be the file already there.
            storage.check_mapped_output(self, context)
            storage.check_output_free(output_path, overwrite=self.overwrite)
        started_at = time.time()
        job, webhook_digest = self._submit_with_webhook(context)
        self.log.info("Submitted %s job %s (job_id %s)", self.kind.name, job.id, job.job_id or "none")
        self._push_job(context, job)
        # With the digest only: a later try that resumes this job expects the same callback URL.
        record = JobRecord(job, started_at, kind=self.kind.name, webhook_token_sha256=webhook_digest)
        self._try_state.job, self._try_state.submitted_now = record, True
        return record.to_stored()

    def _submit_with_webhook(self, context: Context) -> tuple[JobSnapshot, str | None]:
        """Submit; with ``webhook_url="airflow"`` give Akool this task's callback URL, return its digest."""
        if self.webhook_url != AIRFLOW_RECEIVER:
            return self._submit(context, self.webhook_url), None
        url, digest = new_callback_url(context, self.akool_conn_id)
        # The pending mark first: the receiver checks a callback that comes before the deferral by it (the
        # token's digest and this task's connection), and the trigger reads this key when it starts (Airflow's
        # client logs an error-level "XCom not found" for a key that does not exist). Before the submission,
        # so that a callback arriving before the deferral overwrites it, never the other way round.
        self._leave_pending_mark(context, digest)
        # Passed as a value: the rendered field, logs and XCom keep "airflow" and never the token.
        return self._submit(context, url), digest

    def _submit(self, context: Context, webhook_url: str | None) -> JobSnapshot:
        """Call :meth:`submit` with ``webhook_url`` (the old way for a subclass written before it did)."""
        if "webhook_url" in inspect.signature(self.submit).parameters:
            return self.submit(self.hook, context, webhook_url)
        warnings.warn(
            f"{type(self).__name__}.submit(hook, context) is deprecated: take the URL to give Akool as "
            "submit(hook, context, webhook_url) instead of reading self.webhook_url",
            DeprecationWarning,
            stacklevel=3,
        )
        given = self.webhook_url
        # What the old signature reads; swapped only for the submission.
        self.webhook_url = webhook_url
        try:
            return self.submit(self.hook, context)  # type: ignore[call-arg]
        finally:
            self.webhook_url = given

    def _leave_pending_mark(self, context: Context, webhook_digest: str) -> None:
        """Leave the mark the receiver checks the callbacks of this task's job by (see ``callbacks``)."""
        context["ti"].xcom_push(key=CALLBACK_XCOM_KEY, value=pending_mark(webhook_digest, self.akool_conn_id))

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        """
        Ask Akool once about the job an earlier try recorded; return its status label.

        A record this provider cannot read, a job Akool still does not know once the not-found grace has
        passed, or one that succeeded too long ago for its result to be kept, comes back as a status that
        is neither active nor succeeded, so a new job is submitted.
        A failed read raises: the task fails and its next try asks again, rather than paying twice.
        """
        recorded = JobRecord.from_stored(external_id)
        if recorded is None:
            self.log.warning(
                "task_state_store holds %s under %s, which is not an Akool job record; submitting a new job",
                external_id,
                self.external_id_key,
            )
            return UNREADABLE_STATUS
        job, submitted_at = recorded.job, recorded.submitted_at
        try:
            snapshot = self.poll(self.hook, job)
        except AkoolNotFoundError:
            snapshot = None
        age = time.time() - submitted_at
        if snapshot is None or snapshot.status is None:
            self._try_state.job = recorded
            if age < DEFAULT_NOT_FOUND_GRACE:
                return UNKNOWN_STATUS  # just submitted: the wait gives it the rest of the grace
            self.log.warning(
                "%s job %s of an earlier try (%.0f s ago) is unknown to Akool; submitting a new job",
                self.kind.name,
                job.id,
                age,
            )
            return MISSING_STATUS
        if snapshot.status is JobStatus.SUCCESS and age > RESULT_RETENTION_DAYS * 24 * 3600:
            # A task cleared weeks later must not "succeed" with a result Akool has dropped.
            self.log.warning(
                "%s job %s of an earlier try succeeded more than %d days ago and its result is gone; "
                "submitting a new job",
                self.kind.name,
                job.id,
                RESULT_RETENTION_DAYS,
            )
            return EXPIRED_STATUS
        self._try_state.job = replace(
            recorded,
            job=JobSnapshot(
                id=job.id,
                status=snapshot.status,
                url=snapshot.url or job.url,
                job_id=snapshot.job_id or job.job_id,
                reasons=snapshot.reasons,
            ),
        )
        # Said once, by poll_until_complete or get_job_result, with what this try does about it.
        return snapshot.label or UNKNOWN_STATUS

    def is_job_active(self, status: str) -> bool:
        """Queued, processing, or just submitted and not known yet: wait for it again."""
        return status in _ACTIVE_STATUSES

    def is_job_succeeded(self, status: str) -> bool:
        """Succeeded: return its result without waiting or submitting."""
        return status == JobStatus.SUCCESS.label

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        """Wait for the job here, or defer; keep the task's value for :meth:`get_job_result`."""
        record = self._record_of(external_id)
        job, started_at = record.job, record.submitted_at
        if not self._try_state.submitted_now:
            self.log.info(
                "Resuming %s job %s (job_id %s) of an earlier try, submitted %.0f s ago and %s, instead of "
                "submitting a new one",
                self.kind.name,
                job.id,
                job.job_id or "none",
                time.time() - started_at,
                job.label or "not known to Akool yet",
            )
            self._push_job(context, job)
        if not self.wait_for_completion:
            self._try_state.result = job.as_return_value()
            return
        # The deadline counts from the first submission, also when a later try resumes the job.
        deadline = started_at + self.timeout
        self._try_state.running_job = job
        # Deferrable: check once, since a quick job may be done already and a deferral costs a round trip.
        # In the worker, execution_timeout is Airflow's own timer, which calls on_kill (the job is cancelled).
        webhook_digest = record.webhook_token_sha256 if self.webhook_url == AIRFLOW_RECEIVER else None
        if webhook_digest and not self._try_state.submitted_now:
            # A resumed job: Airflow cleared the XComs of the earlier try, its mark among them, and the job's
            # callbacks still carry the token of its first submission.
            self._leave_pending_mark(context, webhook_digest)
        if webhook_digest and self.deferrable and self._try_state.submitted_now:
            # Just submitted: the callback will say when it is done, and a poll now would only cost a request,
            # unless the submission gave no result URL (Face Swap Pro): one poll then finds it, so the task
            # shows its "Akool result" link while it waits in the triggerer, as a reage task does.
            event = None
            if not job.url:
                event = self._wait_here(job, started_at, deadline, once=True, context=context)
            self._try_state.first_poll_at = time.time() + relaxed_poll_interval(self.poll_interval)
        else:
            event = self._wait_here(job, started_at, deadline, once=self.deferrable, context=context)
        if event is None:
            self._try_state.running_job = None  # from now on the trigger owns the job (and its on_kill)
            self.defer(
                trigger=self.make_trigger(
                    job,
                    started_at=started_at,
                    deadline=deadline,
                    **self._trigger_wait_options(),
                    **({"webhook_token_sha256": webhook_digest} if webhook_digest else {}),
                ),
                method_name="execute_complete",
                # The deadline is in the trigger: Airflow's own deferral timeout would skip
                # execute_complete and every on_kill, leaving the remote job running unseen.
                timeout=None,
            )
        self._try_state.result = self._finish(context, event)

    def get_job_result(self, external_id: JsonValue, context: Context) -> dict[str, Any]:
        """Return the value of the wait, or of a job that had succeeded before this try began."""
        if self._try_state.result is not None:
            return self._try_state.result
        job = self._record_of(external_id).job
        self.log.info("%s job %s had succeeded before this try; not submitting again", self.kind.name, job.id)
        self._push_job(context, job)
        if not self.wait_for_completion:
            self._try_state.result = job.as_return_value()
        else:
            succeeded = WaitEvent(SUCCESS, f"job {job.id} succeeded", (job,))
            self._try_state.result = self._finish(context, succeeded)
        return self._try_state.result

    def _record_of(self, external_id: JsonValue) -> JobRecord:
        """The job this try works on: submitted or polled by this try, else read from ``external_id``."""
        if self._try_state.job is not None:
            return self._try_state.job
        recorded = JobRecord.from_stored(external_id)
        if recorded is None:
            raise AkoolError(f"not an Akool job record: {external_id!r}")
        return recorded

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired; everything comes from the event (the defer kwargs may not)."""
        wait_event = WaitEvent.from_payload(event)
        if wait_event.reported_by == CALLBACK:
            # In the task's own log: Airflow's triggerer logs the stopped trigger as "cancelled by user
            # action" when the receiver resumed the task, which reads like a kill.
            self.log.info(
                "Akool's callback finished the wait: %s job %s is %s",
                self.kind.name,
                ", ".join(snapshot.id for snapshot in wait_event.results),
                wait_event.status,
            )
        return masking.redact(self._finish(context, wait_event))

    def _trigger_wait_options(self) -> dict[str, Any]:
        """The trigger kwargs of this try's wait: its execution_timeout, the first poll, adaptive polling."""
        # The check before deferring was a poll: _wait_here noted when the next one is due.
        return deferred_wait_options(
            self._try_state.started_at,
            self.execution_timeout,
            self._try_state.first_poll_at,
            adaptive=bool(self.adaptive_polling),
        )

    def on_kill(self) -> None:
        """
        Cancel the job when the task is killed while it waits in the worker.

        Airflow calls this on ``execution_timeout`` in the worker too (its timer raises
        ``AirflowTaskTimeout`` in ``execute``), so the job is cancelled there as on the deferred path.
        """
        job = self._try_state.running_job
        if job is None:
            return
        self._try_state.running_job = None
        # A hook of its own: on_kill may interrupt the worker's hook in the middle of a request.
        if self.cancel(self.make_hook(), job):
            self.log.info(
                "Cancelled %s job %s (job_id %s) because the task was killed",
                self.kind.name,
                job.id,
                job.job_id,
            )
        else:
            self.log.warning(
                "Akool cannot cancel a %s job: job %s may still finish and be billed",
                self.kind.name,
                job.id,
            )

    # --- The steps -----------------------------------------------------------------------------

    def _check_parameters(self) -> None:
        """Check every rendered parameter before any request."""
        if not (isinstance(self.akool_conn_id, str) and self.akool_conn_id.strip()):
            raise AkoolValidationError(
                f"akool_conn_id must be the id of an akool connection; got {self.akool_conn_id!r}"
            )
        # A string such as "false" would otherwise count as true.
        self.wait_for_completion = validation.boolean("wait_for_completion", self.wait_for_completion)
        self.deferrable = validation.boolean("deferrable", self.deferrable)
        self.overwrite = validation.boolean("overwrite", self.overwrite)
        if self.webhook_url == AIRFLOW_RECEIVER:
            public_base_url()  # configured, before any request
        else:
            validation.optional_http_url("webhook_url", self.webhook_url)
        path = self.output_path
        if (
            path is not None
            and not isinstance(path, os.PathLike)
            and not (isinstance(path, str) and path.strip())
        ):
            raise AkoolValidationError(
                f"output_path must be a local path or a URI such as s3://bucket/prefix/; got {path!r}"
            )
        if (path := self._output_path_to_keep()) is not None:
            # Imported here: fsspec and ObjectStoragePath are only needed when a result is kept.
            from airflow_provider_akool import storage

            # Scheme, connection, a folder that can be written: before any request, so nothing is paid.
            storage.check_output_path(path)
        self.poll_interval = validation.seconds("poll_interval", self.poll_interval)
        self.timeout = validation.seconds("timeout", self.timeout)
        self.input_url_expiry = inputs.expiry_seconds(self.input_url_expiry)
        if (name := self.media_parameter) is not None:
            setattr(self, name, inputs.check_media(name, getattr(self, name)))
        self.validate_inputs()

    def _output_path_to_keep(self) -> str | os.PathLike[str] | None:
        """Return where the result is kept: ``output_path`` if given and the task waits, else None."""
        if self.output_path is None or not self.wait_for_completion:
            return None
        return self.output_path

    def signed_input(self, name: str, value: Any) -> str:
        """
        Return the URL Akool downloads the media parameter ``name`` from (see :mod:`..inputs`).

        An object-storage input is checked and signed once per operator instance, right before the
        submission; the URL stays out of the operator's fields, so out of rendered templates and XCom.
        """
        signed = self._try_state.signed_inputs
        if name not in signed:
            signed[name] = inputs.signed_url(
                name, value, expiry=inputs.expiry_seconds(self.input_url_expiry), logger=self.log
            )
        return signed[name]

    def _push_job(self, context: Context, job: JobSnapshot) -> None:
        """Push the ids (and the result URL, where known) so the UI link works while the job runs."""
        self.note_lineage_job(job.as_return_value())
        ti = context["ti"]
        ti.xcom_push(key=AKOOL_ID_XCOM_KEY, value=job.id)
        ti.xcom_push(key=JOB_ID_XCOM_KEY, value=job.job_id)
        self._push_result_url(context, job.url)

    def _push_result_url(self, context: Context, url: str | None) -> None:
        """
        Push the result URL (XCom ``akool_result_url``, and the link's) once this try knows it.

        Reage's submission gives it; Face Swap Pro's does not, and its first status reply does: whichever
        comes first pushes it, once per try, so the link is there before a deferral, not only at the end.
        """
        url = safe_link(url) or None
        if url is None or url == self._try_state.result_url:
            return
        context["ti"].xcom_push(key=RESULT_URL_XCOM_KEY, value=url)
        self._try_state.result_url = self.result_link_url = url

    def _wait_here(
        self,
        job: JobSnapshot,
        started_at: float,
        deadline: float,
        *,
        once: bool = False,
        context: Context | None = None,
    ) -> WaitEvent | None:
        """
        Wait in this process by the rules of the trigger; with ``once``, poll once (None: not settled).

        Polls make one attempt each: the loop backs off and polls again, as the trigger does. With
        ``context``, a result URL a poll gives before the job is done is pushed at once.
        """
        waiter = Waiter(
            ids=[job.id],
            poll_interval=self.poll_interval,
            started_at=started_at,
            deadline=deadline,
            job_id_of={job.id: job.job_id},
            log=self.log,
        )
        poll_hook = self.make_hook(retry_limit=1)
        try:
            while (event := self._poll_once(waiter, poll_hook, job, context)) is None and not once:
                time.sleep(waiter.delay)
            # After the last check: when the trigger polls first, if this wait is deferred.
            adaptive = bool(self.adaptive_polling)
            self._try_state.first_poll_at = waiter.first_poll_at(time.time(), adaptive=adaptive)
            return event
        finally:
            poll_hook.close()

    def _poll_once(
        self, waiter: Waiter, hook: AkoolHook, job: JobSnapshot, context: Context | None = None
    ) -> WaitEvent | None:
        try:
            snapshot = self.poll(hook, job)
        except AkoolError as error:
            return waiter.poll_failed(error, time.time())
        if snapshot is not None and snapshot.id == job.id and context is not None:
            self._push_result_url(context, snapshot.url)
        return waiter.polled({job.id: snapshot} if snapshot else {}, time.time())

    def _finish(self, context: Context, event: WaitEvent) -> dict[str, Any]:
        """Act on how the wait ended: cancel on the deadline, fail on failure, keep and return on success."""
        self._try_state.running_job = None
        if event.results:  # for the lineage events, also of a failed or timed out wait
            self.note_lineage_job(event.results[0].as_return_value())
        if event.status == "timeout":
            # Triggers only report the deadline: cancelling here serves the worker wait and the deferred one.
            message = f"{event.message}; {self._cancel_unfinished(event)}"
            if event.execution_timed_out:
                # Airflow's own exception, as its timer raises in the worker (retries as it would).
                raise execution_timeout_error(message)
            raise AkoolJobTimeoutError(message)
        event.raise_for_status()
        (job,) = event.results
        job = self._with_result_url(context, job)
        self.log.info("%s job %s succeeded: %s", self.kind.name, job.id, job.url)
        context["ti"].xcom_push(key=RESULT_URL_XCOM_KEY, value=job.url)
        self.result_link_url = job.url
        result = job.as_return_value(self._keep(job))
        self.note_lineage_job(result)
        return result

    def _with_result_url(self, context: Context, job: JobSnapshot) -> JobSnapshot:
        """
        Return ``job`` with a usable result URL: its own, else the one its submission returned.

        A success reply without an http(s) ``url`` (none, or ``javascript:...``, which the protocol drops)
        falls back on the submission's URL (reage gives the final address at once): from this try's
        submission, or, after a deferral (a fresh operator), from the XCom pushed at submit time.
        """
        if job.url:
            return job
        url = None
        if self._try_state.job is not None and self._try_state.job.job.id == job.id:
            url = self._try_state.job.job.url
        else:
            ti = context["ti"]
            # Only if the ids pushed beside it name this very job.
            pushed_id = ti.xcom_pull(task_ids=ti.task_id, key=AKOOL_ID_XCOM_KEY, map_indexes=ti.map_index)
            if pushed_id == job.id:
                pushed = ti.xcom_pull(task_ids=ti.task_id, key=RESULT_URL_XCOM_KEY, map_indexes=ti.map_index)
                url = safe_link(pushed) or None
        if not url:
            raise AkoolResponseError(
                f"Akool says {self.kind.name} job {job.id} succeeded, but gave no usable result URL (none, "
                "or not http(s)) and its submission gave none either: find the result of job "
                f"{job.id} in Akool, or retry the task"
            )
        self.log.warning(
            "Akool gave no usable result URL for %s job %s; using the one its submission returned",
            self.kind.name,
            job.id,
        )
        return replace(job, url=url)

    def _cancel_unfinished(self, event: WaitEvent) -> str:
        """Cancel what the deadline left running; return what happened, for the task's error."""
        unfinished = event.unfinished()
        if not unfinished:
            return "nothing was left to cancel"
        done = []
        for job in unfinished:
            try:
                cancelled = self.cancel(self.hook, job)
            except AkoolError as error:
                return f"cancelling job {job.id} failed too ({error}): cancel it in Akool yourself"
            if not cancelled:
                return (
                    f"Akool cannot cancel a {self.kind.name} job: job {job.id} may still finish and be billed"
                )
            done.append(f"{job.id} (job_id {job.job_id})")
        return f"cancelled job {', '.join(done)} (job/del)"

    def _keep(self, job: JobSnapshot) -> str | None:
        """Keep the result at ``output_path`` and return where it went; None when it is not kept."""
        output_path = self._output_path_to_keep()
        if output_path is None:
            return None
        if not job.url:
            raise AkoolError(f"{self.kind.name} job {job.id} succeeded without a result URL to keep")
        from airflow_provider_akool import storage  # fsspec only when a result is kept

        # Akool keeps a result 7 days after the job finished; the submission time is a safe lower bound.
        finished_by = self._try_state.job.submitted_at if self._try_state.job is not None else time.time()
        # keep_result logs where the file went (one line, with its size).
        return storage.keep_result(
            self.hook,
            job.url,
            output_path,
            akool_id=job.id,
            overwrite=self.overwrite,
            kept_until=finished_by + RESULT_RETENTION_DAYS * 24 * 3600,
        )
