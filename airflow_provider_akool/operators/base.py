"""
The base of operators that submit an Akool job and wait for it: reage (image, video) and background change.

A subclass says what to check, how to submit, how to poll, how to cancel and which trigger waits for it;
this class does the rest the same way for every kind of job: validation after rendering and before any
request, XCom for the UI link, the wait in the worker or in the triggerer, the deadline, cancelling when
killed, failures, ``output_path`` and the return value.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseOperator

from airflow_provider_akool import validation
from airflow_provider_akool.exceptions import AkoolError, AkoolJobTimeoutError, AkoolValidationError
from airflow_provider_akool.links import RESULT_URL_XCOM_KEY, AkoolResultLink
from airflow_provider_akool.wait import JobSnapshot, Waiter, WaitEvent

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_akool.hooks.akool import AkoolHook

#: XCom keys pushed right after the submission, before any wait (and before deferring).
AKOOL_ID_XCOM_KEY = "akool_id"
JOB_ID_XCOM_KEY = "akool_job_id"

DEFAULT_POLL_INTERVAL = 10.0
#: Akool's own advice: a job not done within 3 hours has a problem with its input.
DEFAULT_TIMEOUT = 3 * 60 * 60.0


class AkoolJobOperator(BaseOperator, ABC):
    """
    Submit one Akool job, then wait for it in the worker or, with ``deferrable=True``, in the triggerer.

    :param akool_conn_id: the ``akool`` connection.
    :param webhook_url: an http(s) URL Akool calls with the job's progress (``webhookUrl``).
    :param wait_for_completion: wait for the job to finish; False returns right after the submission, with
        the status at that time.
    :param deferrable: wait in the triggerer, freeing the worker slot. Defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between status checks.
    :param timeout: seconds for the whole wait, from the submission. On expiry the job is cancelled where
        Akool allows it and the task fails with
        :class:`~airflow_provider_akool.exceptions.AkoolJobTimeoutError`.
    :param output_path: where to keep the result once the job succeeded: a local path or an
        ``ObjectStoragePath`` URI (``file:///data/out/``, ``s3://aws_default@bucket/prefix/``); a folder
        receives ``<akool id>.<ext>``. Akool keeps results for 7 days only.
    """

    template_fields: Sequence[str] = ("akool_conn_id", "webhook_url", "output_path")
    operator_extra_links = (AkoolResultLink(),)
    #: The Akool endpoint family, for messages (``reage``, ``background change``).
    job_kind: ClassVar[str] = "Akool"

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.akool_conn_id = akool_conn_id
        self.webhook_url = webhook_url
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = (
            poll_interval.total_seconds() if isinstance(poll_interval, timedelta) else poll_interval
        )
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        self.output_path = output_path
        # The job being waited for in this worker, for on_kill; None once it finished.
        self._running_job: JobSnapshot | None = None

    @cached_property
    def hook(self) -> AkoolHook:
        """The hook of submissions, cancels and downloads (with the hook's retries)."""
        return self.make_hook()

    def make_hook(self, **kwargs: Any) -> AkoolHook:
        """Return a new hook on :attr:`akool_conn_id`; ``kwargs`` go to :class:`AkoolHook`."""
        # Imported here: the HTTP clients are needed to run a task, not to parse a DAG file.
        from airflow_provider_akool.hooks.akool import AkoolHook

        return AkoolHook(self.akool_conn_id, **kwargs)

    # --- What a subclass says ------------------------------------------------------------------

    @abstractmethod
    def validate_inputs(self) -> None:
        """Check the job's own rendered parameters; raise ``AkoolValidationError`` naming the parameter."""

    @abstractmethod
    def submit(self, hook: AkoolHook, context: Context) -> JobSnapshot:
        """Submit the job (after validation) and return what the submission said."""

    @abstractmethod
    def poll(self, hook: AkoolHook, job: JobSnapshot) -> JobSnapshot | None:
        """Ask Akool once for the job's state; None when Akool does not know the id (yet)."""

    @abstractmethod
    def make_trigger(self, job: JobSnapshot, *, started_at: float, deadline: float) -> BaseTrigger:
        """Return the trigger that waits for ``job`` in the triggerer, with ``deadline`` in its kwargs."""

    def cancel(self, hook: AkoolHook, job: JobSnapshot) -> bool:
        """Cancel the remote job and return True, or return False where Akool cannot cancel it."""
        return False

    # --- Execution -----------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, submit, then wait (here or deferred) unless ``wait_for_completion`` is False."""
        self._check_parameters()
        started_at = time.time()
        job = self.submit(self.hook, context)
        self.log.info("Submitted %s job %s (job_id %s)", self.job_kind, job.id, job.job_id or "none")
        self._push_job(context, job)
        if not self.wait_for_completion:
            return job.as_return_value()
        deadline = started_at + self.timeout
        self._running_job = job
        # Deferrable: check once, since a quick job may be done already and a deferral costs a round trip.
        event = self._wait_here(job, started_at, deadline, once=self.deferrable)
        if event is None:
            self._running_job = None  # from now on the trigger owns the job (and its on_kill)
            self.defer(
                trigger=self.make_trigger(job, started_at=started_at, deadline=deadline),
                method_name="execute_complete",
                # The deadline is in the trigger: Airflow's own deferral timeout would skip
                # execute_complete and every on_kill, leaving the remote job running unseen.
                timeout=None,
            )
        return self._finish(context, event)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired; everything comes from the event (the defer kwargs may not)."""
        return self._finish(context, WaitEvent.from_payload(event))

    def on_kill(self) -> None:
        """Cancel the job when the task is killed while it waits in the worker."""
        job = self._running_job
        if job is None:
            return
        self._running_job = None
        # A hook of its own: on_kill may interrupt the worker's hook in the middle of a request.
        if self.cancel(self.make_hook(), job):
            self.log.info(
                "Cancelled %s job %s (job_id %s) because the task was killed",
                self.job_kind,
                job.id,
                job.job_id,
            )

    # --- The steps -----------------------------------------------------------------------------

    def _check_parameters(self) -> None:
        """Check every rendered parameter before any request."""
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
        self.poll_interval = validation.seconds("poll_interval", self.poll_interval)
        self.timeout = validation.seconds("timeout", self.timeout)
        self.validate_inputs()

    def _push_job(self, context: Context, job: JobSnapshot) -> None:
        """Push the ids (and the result URL, where known) so the UI link works while the job runs."""
        ti = context["ti"]
        ti.xcom_push(key=AKOOL_ID_XCOM_KEY, value=job.id)
        ti.xcom_push(key=JOB_ID_XCOM_KEY, value=job.job_id)
        if job.url:
            ti.xcom_push(key=RESULT_URL_XCOM_KEY, value=job.url)

    def _wait_here(
        self, job: JobSnapshot, started_at: float, deadline: float, *, once: bool = False
    ) -> WaitEvent | None:
        """
        Wait in this process by the rules of the trigger; with ``once``, poll once (None: not settled).

        Polls make one attempt each: the loop backs off and polls again, as the trigger does.
        """
        waiter = Waiter(
            ids=[job.id],
            poll_interval=self.poll_interval,
            started_at=started_at,
            deadline=deadline,
            job_ids={job.id: job.job_id},
            log=self.log,
        )
        poll_hook = self.make_hook(retry_limit=1)
        try:
            while (event := self._poll_once(waiter, poll_hook, job)) is None and not once:
                time.sleep(waiter.delay)
            return event
        finally:
            poll_hook.close()

    def _poll_once(self, waiter: Waiter, hook: AkoolHook, job: JobSnapshot) -> WaitEvent | None:
        try:
            snapshot = self.poll(hook, job)
        except AkoolError as error:
            return waiter.poll_failed(error, time.time())
        return waiter.polled({job.id: snapshot} if snapshot else {}, time.time())

    def _finish(self, context: Context, event: WaitEvent) -> dict[str, Any]:
        """Act on how the wait ended: cancel on the deadline, fail on failure, keep and return on success."""
        self._running_job = None
        if event.status == "timeout":
            # Triggers only report the deadline: cancelling here serves the worker wait and the deferred one.
            raise AkoolJobTimeoutError(f"{event.message}; {self._cancel_unfinished(event)}")
        event.raise_for_status()
        (job,) = event.results
        self.log.info("%s job %s succeeded: %s", self.job_kind, job.id, job.url)
        if job.url:
            context["ti"].xcom_push(key=RESULT_URL_XCOM_KEY, value=job.url)
        output_path = None
        if self.output_path:
            output_path = self._keep(job)
        return job.as_return_value(output_path)

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
                    f"Akool cannot cancel a {self.job_kind} job: job {job.id} may still finish and be billed"
                )
            done.append(f"{job.id} (job_id {job.job_id})")
        return f"cancelled job {', '.join(done)} (job/del)"

    def _keep(self, job: JobSnapshot) -> str:
        if not job.url:
            raise AkoolError(f"{self.job_kind} job {job.id} succeeded without a result URL to keep")
        # Imported here: fsspec and ObjectStoragePath are only needed when a result is kept.
        from airflow_provider_akool.storage import keep_result

        kept = keep_result(self.hook, job.url, self.output_path or "", akool_id=job.id)
        self.log.info("Kept the result of %s job %s at %s", self.job_kind, job.id, kept)
        return kept
