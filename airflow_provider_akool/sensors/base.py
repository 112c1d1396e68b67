"""The base of sensors that wait for Akool jobs someone else submitted: poke, reschedule or deferrable."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_akool import masking, validation
from airflow_provider_akool.exceptions import AkoolError, AkoolValidationError
from airflow_provider_akool.wait import (
    DEFAULT_NOT_FOUND_GRACE,
    TIMEOUT,
    JobSnapshot,
    Waiter,
    WaitEvent,
    deferred_wait_options,
    execution_timeout_error,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_akool.kinds.base import JobKind


class AkoolJobSensor(masking.LearnsSecretWhenRendered, BaseSensorOperator, ABC):
    """
    Wait for Akool jobs by ``_id``, by the rules of the triggers (:class:`~.wait.Waiter`).

    A failed job (status 4) fails the task; an id Akool does not know fails it after ``not_found_grace``,
    never a silent pass. A sensor does not own the jobs: on its timeout it fails and leaves them running.
    Deferred, it honours the task's ``execution_timeout`` too (Airflow does not while a task is deferred):
    the task fails with Airflow's ``AirflowTaskTimeout`` and leaves the jobs running.

    :param akool_conn_id: the ``akool`` connection.
    :param not_found_grace: seconds an id may stay unknown to Akool before the task fails.
    :param deferrable: wait in the triggerer. Defaults to ``[operators] default_deferrable``.
    :param poke_interval: seconds between checks (default 10), in every mode.
    :param adaptive_polling: when deferred, poll young jobs more often than ``poke_interval`` (from every
        2 s, doubling as they age), at the cost of more requests. Off by default.
    """

    #: The kind of job this sensor waits for: how it is polled, which trigger waits for it when deferred.
    kind: ClassVar[JobKind]

    def __init__(
        self,
        *,
        akool_conn_id: str = "akool_default",
        not_found_grace: float | timedelta = DEFAULT_NOT_FOUND_GRACE,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float | timedelta = 10.0,
        adaptive_polling: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.adaptive_polling = adaptive_polling
        self.akool_conn_id = akool_conn_id
        self.not_found_grace = (
            not_found_grace.total_seconds() if isinstance(not_found_grace, timedelta) else not_found_grace
        )
        self.deferrable = deferrable
        self._waiter: Waiter | None = None

    @abstractmethod
    def ids_to_wait_for(self) -> list[str]:
        """Return the rendered ``_id`` values; raise ``AkoolValidationError`` naming the parameter."""

    def make_trigger(
        self, ids: list[str], *, started_at: float, deadline: float, **wait_options: Any
    ) -> BaseTrigger:
        """
        Return the kind's trigger that waits for ``ids`` in the triggerer, without ``job_id_of``: a sensor
        does not own the jobs it watches, so killing it leaves them running.

        ``wait_options`` are keyword arguments of every Akool trigger to pass on as they are
        (``execution_deadline``, ``first_poll_at``, ``adaptive_polling``).
        """
        return self.kind.make_trigger(
            ids,
            akool_conn_id=self.akool_conn_id,
            poll_interval=self.poke_interval,
            deadline=deadline,
            not_found_grace=float(self.not_found_grace),
            started_at=started_at,
            **wait_options,
        )

    def return_value(self, results: tuple[JobSnapshot, ...]) -> Any:
        """Return the XCom value of a successful wait: one dict per id, in the order given."""
        return [snapshot.as_return_value() for snapshot in results]

    def execute(self, context: Context) -> Any:
        """Check once; then poke (or reschedule) in the worker, or defer to the triggerer."""
        # Airflow's execution_timeout timer starts right before execute(): count from here too.
        try_started_at = time.time()
        ids = self._validate()
        if not self.deferrable:
            return super().execute(context)
        event = self._check(context, ids)
        if event is None:
            waiter = self._waiter_for(context, ids)
            started_at = waiter.started_at
            # The check just made was a poll: the trigger's first comes a poke_interval (or a
            # Retry-After) after it.
            adaptive = bool(self.adaptive_polling)
            options = deferred_wait_options(
                try_started_at,
                self.execution_timeout,
                waiter.first_poll_at(time.time(), adaptive=adaptive),
                adaptive=adaptive,
            )
            self.defer(
                trigger=self.make_trigger(
                    ids, started_at=started_at, deadline=started_at + self.timeout, **options
                ),
                method_name="execute_complete",
                # The deadline is in the trigger, which then reports it as an event (see the operators).
                timeout=None,
            )
        return self._finish(event)

    def _validate(self) -> list[str]:
        """Check every parameter before any request; a secret rendered into one is masked in the error."""
        if isinstance(self.akool_conn_id, str) and self.akool_conn_id.strip():
            # The masker learns the API key only when the connection is read; validation comes first.
            from airflow_provider_akool.hooks.akool import AkoolHook

            masking.make_secret_known(AkoolHook(self.akool_conn_id))
        try:
            ids = self.ids_to_wait_for()
            self.not_found_grace = validation.seconds("not_found_grace", self.not_found_grace)
            # A string "false" is truthy, and a zero interval would poll Akool without pause when deferred.
            self.deferrable = validation.boolean("deferrable", self.deferrable)
            self.poke_interval = validation.seconds("poke_interval", self.poke_interval)
            self.adaptive_polling = validation.boolean("adaptive_polling", self.adaptive_polling)
        except AkoolValidationError as error:
            raise masking.redacted_error(error) from None
        return ids

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """Check the jobs once: done when all succeeded; raise when one failed or stays unknown."""
        event = self._check(context, self.ids_to_wait_for())
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(event))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger fired; everything comes from the event."""
        return self._finish(WaitEvent.from_payload(event))

    def _waiter_for(self, context: Context, ids: list[str]) -> Waiter:
        if self._waiter is None:
            # In poke mode this instance lives for the whole wait; in reschedule mode it does not, so the
            # grace period counts from the first try, which Airflow remembers.
            started_at = time.time()
            if self.reschedule:
                first = context["ti"].get_first_reschedule_date(context)
                started_at = first.timestamp() if first else started_at
            self._waiter = Waiter(
                ids=ids,
                poll_interval=self.poke_interval,
                started_at=started_at,
                not_found_grace=float(self.not_found_grace),
                log=self.log,
            )
        return self._waiter

    def _check(self, context: Context, ids: list[str]) -> WaitEvent | None:
        """Poll once and judge; None while the jobs are still running."""
        waiter = self._waiter_for(context, ids)
        # One attempt per check, as in the trigger: the next poke is the retry.
        from airflow_provider_akool.hooks.akool import AkoolHook

        hook = AkoolHook(self.akool_conn_id, retry_limit=1)
        try:
            found = self.kind.fetch(hook, ids)
        except AkoolError as error:
            return waiter.poll_failed(error, time.time())
        finally:
            hook.close()
        return waiter.polled(found, time.time())

    def _finish(self, event: WaitEvent) -> Any:
        if event.execution_timed_out:
            # Airflow's own exception, as its timer raises in poke mode; the jobs are not the sensor's.
            raise execution_timeout_error(f"{event.message}; the job(s) were left running")
        if event.status == TIMEOUT:
            raise AirflowSensorTimeout(event.message)
        event.raise_for_status()
        self.log.info("%s", event.message)
        return masking.redact(self.return_value(event.results))


class AkoolResultIdsSensorBase(AkoolJobSensor):
    """
    A sensor of a kind whose submissions return ``_id`` values polled many at once (reage, face swap):
    it waits for ``result_ids`` (one ``_id``, a list, or an XCom of either; the operators' return dicts are
    taken too, by their ``id``). A subclass sets ``kind``.
    """

    template_fields: Sequence[str] = ("result_ids", "akool_conn_id")

    def __init__(self, *, result_ids: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result_ids = result_ids

    def ids_to_wait_for(self) -> list[str]:
        """Return the rendered ``result_ids`` as a list of ids."""
        return validation.collect_ids("result_ids", self.result_ids, key="id")
