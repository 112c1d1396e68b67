"""The shared loop of the triggers that wait for Akool jobs: deadline, backoff, one final event, kill."""

from __future__ import annotations

import asyncio
import importlib
import time
import types
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_akool.deprecation import warn_renamed
from airflow_provider_akool.exceptions import AkoolError
from airflow_provider_akool.kinds.base import home_of, kind_named
from airflow_provider_akool.models import JobStatus
from airflow_provider_akool.triggers.poller import shared_poller
from airflow_provider_akool.wait import (
    ADAPTIVE_AGE_FRACTION,
    DEFAULT_MAX_POLL_ERRORS,
    DEFAULT_NOT_FOUND_GRACE,
    FAILED,
    MIN_ADAPTIVE_INTERVAL,
    SUCCESS,
    JobSnapshot,
    Waiter,
    WaitEvent,
    adaptive_interval,
    first_poll_at,
)
from airflow_provider_akool.webhook.callback_url import (
    read_callback_mark,
    relaxed_poll_interval,
    resume_settle_seconds,
)

if TYPE_CHECKING:
    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.kinds.base import JobKind
    from airflow_provider_akool.triggers.poller import SharedPoller

#: Attempts per cancel request when a deferred task is killed: Airflow gives ``on_kill`` a bounded time.
KILL_RETRY_LIMIT = 3
#: The most a kill's state check and cancel requests may take together.
KILL_TIMEOUT = 60.0
#: The status-line logger of each trigger class (see :meth:`AkoolJobTrigger.status_log`).
_CLASS_LOGS: dict[tuple[type, str | None, str | None], Any] = {}
#: Kills in progress: the loop keeps only weak references to tasks.
_KILLS: set[asyncio.Future[None]] = set()
#: Modules the first poll would import on the triggerer's event loop: the hook's (requests, urllib3,
#: tenacity: ~0.3 s on two busy cores) and anyio's asyncio backend, which httpcore loads at its first
#: connection (~0.1 s).
FIRST_POLL_MODULES = ("airflow_provider_akool.hooks.akool", "anyio._backends._asyncio")
_first_poll_modules_imported = False


def _import_first_poll_modules() -> None:
    for name in FIRST_POLL_MODULES:
        importlib.import_module(name)


async def import_first_poll_modules() -> None:
    """
    Import what the first poll needs in a worker thread, the first time only.

    Imported by the first poll on the triggerer's event loop, they blocked the loop for 0.23-0.41 s (seen on
    the distributed stack: Airflow warns past 0.2 s). Triggers that start while the import runs each wait
    in a thread too: a module is in ``sys.modules`` before it is complete, and importing it from the loop
    then would wait for the import lock on the loop.
    """
    global _first_poll_modules_imported
    if not _first_poll_modules_imported:
        await asyncio.to_thread(_import_first_poll_modules)
        _first_poll_modules_imported = True


class AkoolJobTrigger(BaseTrigger):
    """
    Wait for Akool jobs without blocking the triggerer: poll, back off, and fire exactly one event.

    Everything the wait needs is in the keyword arguments (see :meth:`wait_kwargs`), so a trigger that a
    restarted triggerer rebuilds from them resumes where it was: same deadline, same grace, same elapsed
    times. How to poll and cancel comes from the trigger's :attr:`kind`
    (:class:`~airflow_provider_akool.kinds.base.JobKind`); a subclass names its kind and, where its
    keyword arguments are not the generic ``ids``, how to build it (:meth:`for_ids`) and serialize it. By
    default the polls go through a :class:`~airflow_provider_akool.triggers.poller.SharedPoller`
    (:meth:`shared_poller`), which coalesces the polls of all the waits of the triggerer on one connection;
    the poller keeps no state a restart would lose.

    The event is a :class:`~airflow_provider_akool.wait.WaitEvent` payload. On the deadline the trigger
    only reports ``timeout``: cancelling is left to the task that resumes, because the operator cancels on
    its deadline in both modes (deferred or not) with the same code, and a sensor, which did not submit the
    jobs, must not cancel them at all.

    :param ids: the Akool ``_id`` values to wait for.
    :param akool_conn_id: the ``akool`` connection.
    :param poll_interval: seconds between polls.
    :param deadline: when to stop waiting (epoch seconds), or None for no deadline.
    :param execution_deadline: when the deferring task's ``execution_timeout`` ends its try (epoch seconds),
        or None. Airflow does not enforce ``execution_timeout`` while a task is deferred, so the trigger
        does: the earlier of the two deadlines ends the wait with ``timeout``, and the event's
        ``deadline`` says which one (``timeout`` or ``execution_timeout``).
    :param job_id_of: the ``job_id`` of each ``_id`` (``{_id: job_id}``), when the task that deferred
        submitted the jobs: :meth:`on_kill` cancels them. Leave it empty for jobs the task does not own.
    :param job_ids: deprecated alias of ``job_id_of`` (the name rows stored by earlier versions carry, which
        still rebuild).
    :param not_found_grace: seconds after ``started_at`` during which an id Akool does not know is still
        waited for; after that the wait ends with ``not_found``.
    :param started_at: when the wait began (epoch seconds); defaults to now.
    :param max_poll_errors: failed polls in a row (transient errors, backed off) before the wait ends with
        ``error``.
    :param coalesce: poll through the shared poller of this triggerer and connection (see
        :mod:`~airflow_provider_akool.triggers.poller`); False polls on its own, one request per poll.
    :param adaptive_polling: opt in to polling young jobs more often (from every
        :data:`MIN_ADAPTIVE_INTERVAL` seconds, doubling as the job ages, see :func:`adaptive_interval`):
        a finished quick job is seen sooner, at the cost of more requests. False (the default) polls every
        ``poll_interval``, as the worker and poke modes do.
    :param first_poll_at: when to poll first (epoch seconds), or None to poll at once. The task that
        deferred has just checked the jobs: its next check is ``poll_interval`` after that one (longer
        after a refusal with ``Retry-After``), not right away; absolute, so a trigger rebuilt by a
        restarted triggerer keeps it.
    :param batch_size: ids per request of the shared poller; None takes the kind's.
    :param max_concurrency: requests of the shared poller in flight at once; None takes the kind's.
    :param webhook_token_sha256: the digest of the token of the callback URL the task gave Akool
        (``webhook_url="airflow"``), or None. A callback with that token resumes the task through Airflow's
        own event path (see :mod:`~airflow_provider_akool.webhook.callback_url`); the trigger then polls
        only every ``max(poll_interval, 60 s)``, as the fallback for a callback that never comes.
    """

    @property
    @abstractmethod
    def kind(self) -> JobKind:
        """
        The kind of job this trigger waits for: how it is polled and cancelled.

        A subclass sets it as a class attribute (``kind = REAGE``); abstract here so that this generic
        class is never taken for a trigger of its own.
        """

    def __init__(
        self,
        *,
        ids: Sequence[str],
        akool_conn_id: str = "akool_default",
        poll_interval: float = 10.0,
        deadline: float | None = None,
        job_id_of: Mapping[str, str | None] | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        started_at: float | None = None,
        max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS,
        coalesce: bool = True,
        adaptive_polling: bool = False,
        execution_deadline: float | None = None,
        first_poll_at: float | None = None,
        batch_size: int | None = None,
        max_concurrency: int | None = None,
        webhook_token_sha256: str | None = None,
        job_ids: Mapping[str, str | None] | None = None,
    ) -> None:
        super().__init__()
        if job_ids is not None:
            if job_id_of is not None:
                raise TypeError("give job_id_of only: job_ids is its deprecated alias")
            warn_renamed(f"{type(self).__name__}(job_ids=...)", f"{type(self).__name__}(job_id_of=...)")
            job_id_of = job_ids
        self.ids = list(ids)
        self.akool_conn_id = akool_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.job_id_of = dict(job_id_of or {})
        self.not_found_grace = float(not_found_grace)
        self.started_at = time.time() if started_at is None else float(started_at)
        self.max_poll_errors = int(max_poll_errors)
        self.coalesce = bool(coalesce)
        self.adaptive_polling = bool(adaptive_polling)
        self.execution_deadline = None if execution_deadline is None else float(execution_deadline)
        self.first_poll_at = None if first_poll_at is None else float(first_poll_at)
        self.batch_size = self.kind.batch_size if batch_size is None else int(batch_size)
        self.max_concurrency = self.kind.max_concurrency if max_concurrency is None else int(max_concurrency)
        self.webhook_token_sha256 = webhook_token_sha256 or None
        if self.webhook_token_sha256:
            # A callback is expected: polling is only the safety net.
            self.poll_interval = relaxed_poll_interval(self.poll_interval)

    @classmethod
    def for_ids(cls, ids: Sequence[str], **kwargs: Any) -> AkoolJobTrigger:
        """
        Return the trigger that waits for ``ids``; ``kwargs`` are those of :class:`AkoolJobTrigger`.

        What operators and sensors call, whatever the subclass names its id argument.
        """
        return cls(ids=ids, **kwargs)

    @classmethod
    def for_kind(cls, kind: JobKind, ids: Sequence[str], **kwargs: Any) -> AkoolJobTrigger:
        """Return the trigger that waits for ``ids`` of ``kind`` (a class of one kind ignores ``kind``)."""
        return cls.for_ids(ids, **kwargs)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the keyword arguments that rebuild this trigger."""
        return self.class_path(), {"ids": list(self.ids), **self.wait_kwargs(), **self.poller_kwargs()}

    def class_path(self) -> str:
        """The path Airflow stores to rebuild this trigger (the class's own: moving it breaks old rows)."""
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def wait_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the wait itself, for :meth:`serialize` (JSON-like values only)."""
        kwargs: dict[str, Any] = {
            "akool_conn_id": self.akool_conn_id,
            "poll_interval": self.poll_interval,
            "deadline": self.deadline,
            "not_found_grace": self.not_found_grace,
            "started_at": self.started_at,
            "max_poll_errors": self.max_poll_errors,
        }
        # Only where there are jobs to cancel, so triggers of jobs that cannot be cancelled need no job_id_of.
        if self.job_id_of:
            kwargs["job_id_of"] = dict(self.job_id_of)
        # Only when not the default, so the kwargs stay those an earlier version of the provider can rebuild
        # (a downgrade while triggers are deferred) and triggers of earlier versions still match.
        if not self.coalesce:
            kwargs["coalesce"] = False
        if self.adaptive_polling:
            kwargs["adaptive_polling"] = True
        if self.execution_deadline is not None:
            kwargs["execution_deadline"] = self.execution_deadline
        if self.first_poll_at is not None:
            kwargs["first_poll_at"] = self.first_poll_at
        if self.webhook_token_sha256:
            kwargs["webhook_token_sha256"] = self.webhook_token_sha256
        return kwargs

    def poller_kwargs(self) -> dict[str, Any]:
        """The shared poller's options where they are not the kind's, for :meth:`serialize`."""
        kwargs: dict[str, Any] = {}
        if self.batch_size != self.kind.batch_size:
            kwargs["batch_size"] = self.batch_size
        if self.max_concurrency != self.kind.max_concurrency:
            kwargs["max_concurrency"] = self.max_concurrency
        return kwargs

    @property
    def job_ids(self) -> dict[str, str | None]:
        """Deprecated alias of :attr:`job_id_of`."""
        warn_renamed(f"{type(self).__name__}.job_ids", f"{type(self).__name__}.job_id_of")
        return self.job_id_of

    @property
    def ends_at(self) -> float | None:
        """The earlier of ``deadline`` and ``execution_deadline`` (epoch seconds), or None."""
        deadlines = [d for d in (self.deadline, self.execution_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def make_hook(self, retry_limit: int = 1) -> AkoolHook:
        """
        Return a hook for this trigger.

        Polls make one attempt each (``retry_limit=1``): the wait loop itself backs off and polls again, so
        hook retries on top would multiply the attempts and hide failures from the bound.
        """
        # Imported here: the HTTP clients are needed to run a trigger, not to parse a DAG file.
        from airflow_provider_akool.hooks.akool import AkoolHook

        return AkoolHook(self.akool_conn_id, retry_limit=retry_limit, **self.hook_options())

    def hook_options(self) -> dict[str, Any]:
        """Extra keyword arguments of this trigger's hook: polling alone, a batch endpoint's batch size."""
        return {"batch_size": self.batch_size} if self.kind.batch_size > 1 else {}

    def shared_poller(self) -> SharedPoller | None:
        """Return the poller this wait shares with the others of its loop, connection and kind."""
        return shared_poller(
            self.kind.poller,
            self.akool_conn_id,
            fetch=self.kind.afetch,
            batch_size=self.batch_size,
            max_concurrency=self.max_concurrency,
            align=self.kind.align,
            jitter=self.kind.jitter,
        )

    async def cancel(self, hook: AkoolHook, job_ids: list[str]) -> None:
        """Cancel the remote jobs by ``job_id``; nothing where Akool cannot cancel the kind."""
        if self.kind.acancel is not None:
            await self.kind.acancel(hook, job_ids)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the jobs finish, fail, vanish or pass the deadline; yield one event."""
        if self.webhook_token_sha256:
            # A callback that came before the task deferred left the job's final state in XCom.
            early = await self.callback_event()
            if early is not None:
                # Not at once: the task deferred a moment ago, and an event before the scheduler has seen
                # the deferring worker exit gets the resumed task failed (see resume_settle_seconds). This
                # trigger started after the deferral, so waiting from here is enough.
                await asyncio.sleep(resume_settle_seconds())
                yield TriggerEvent(early.by_callback().to_payload())
                return
        await import_first_poll_modules()
        poller = self.shared_poller() if self.coalesce else None
        if poller is not None:
            event = await self._wait(poller, None)
        else:
            hook = self.make_hook()
            try:
                event = await self._wait(None, hook)
            finally:
                await hook.aclose()
        yield TriggerEvent(event.to_payload())

    def event_for_callback(self, snapshot: JobSnapshot) -> WaitEvent | None:
        """
        Return the event this trigger would fire had its poll found ``snapshot``, if that ends the wait.

        Only a final state (success or failed) of the one job this trigger waits for ends it: the same
        ``Waiter`` rules as a poll, so the webhook's event is the trigger's own.
        """
        if self.ids != [snapshot.id] or snapshot.status not in (JobStatus.SUCCESS, JobStatus.FAILED):
            return None
        event = self.make_waiter().polled({snapshot.id: snapshot}, time.time())
        return event if event is not None and event.status in (SUCCESS, FAILED) else None

    def make_waiter(self, **bounds: Any) -> Waiter:
        """Return the ``Waiter`` of this trigger's ids and grace; ``bounds`` add deadlines, error limits."""
        return Waiter(
            ids=self.ids,
            poll_interval=self.poll_interval,
            started_at=self.started_at,
            job_id_of=self.job_id_of,
            not_found_grace=self.not_found_grace,
            log=self.status_log(),
            **bounds,
        )

    def status_log(self) -> Any:
        """
        The logger of the wait's status lines: the trigger's own where one was set on it, else one logger
        per trigger class and logger name, the very logger ``self.log`` would build (same name, so the
        lines go where they went).

        ``self.log`` builds a structlog logger per trigger (seven objects the garbage collector tracks, kept
        for the whole wait); at 10,000 waits in one triggerer a logger per class spares every full garbage
        collection 70,000 objects to scan. Airflow routes a trigger's lines to its task's log by context
        variables, not by the logger object (``bind_log_contextvars`` in ``TriggerRunner.run_trigger``).
        """
        if self._log is not None:
            return self._log
        if not hasattr(BaseTrigger, "_get_log"):  # an Airflow without LoggingMixin's builder: its own way
            return self.log
        key = (type(self), self._log_config_logger_name, self._logger_name)
        log = _CLASS_LOGS.get(key)
        if log is None:
            holder = types.SimpleNamespace(_log=None, _log_config_logger_name=key[1], _logger_name=key[2])
            log = _CLASS_LOGS[key] = BaseTrigger._get_log(holder, type(self))
        return log

    async def callback_event(self) -> WaitEvent | None:
        """Return the event of a final state a callback with this task's token left for it, or None."""
        if not self.webhook_token_sha256:
            return None
        mark = await read_callback_mark(
            getattr(self, "task_instance", None),
            {i: self.job_id_of.get(i) for i in self.ids},
            self.webhook_token_sha256,
        )
        return self.event_for_callback(mark) if mark is not None else None

    def _next_pause(self, waiter: Waiter, now: float) -> tuple[float, float | None]:
        """Return the pause before the next poll and, for a regular one, the interval it comes from."""
        if waiter.errors_in_a_row:
            return waiter.delay, None  # a backoff, by the Waiter's rules
        step = self.poll_interval
        if self.adaptive_polling:
            step = adaptive_interval(now - self.started_at, self.poll_interval)
        if waiter.delay < step:
            # Cut short to meet the deadline: poll right then, off the grid (aligning such a pause to the
            # grid would poll again and again in the last moments before the deadline).
            return waiter.delay, None
        return step, step

    def _first_pause(self, now: float) -> float:
        """Return the pause before the first poll: until ``first_poll_at``, yet not past a deadline."""
        if self.first_poll_at is None:
            return 0.0
        pause = self.first_poll_at - now
        ends = self.ends_at
        if ends is not None:
            pause = min(pause, ends - now)
        return max(0.0, pause)

    async def _wait(self, poller: SharedPoller | None, hook: AkoolHook | None) -> WaitEvent:
        """Poll through the shared ``poller``, or with this wait's own ``hook``, until the wait ends."""
        # The poll inline rather than a closure and a coroutine of its own per wait: at 10,000 waits in one
        # triggerer every object a wait keeps is one more for each of Python's full garbage collections.
        waiter = self.make_waiter(
            deadline=self.deadline,
            execution_deadline=self.execution_deadline,
            max_poll_errors=self.max_poll_errors,
        )
        delay, grid, first = self._first_pause(time.time()), None, True
        while True:
            try:
                if poller is not None:
                    found = await poller.poll(
                        self.ids,
                        delay=delay,
                        grid=grid,
                        interval=self.poll_interval,
                        deadline=self.ends_at,
                        first=first,
                    )
                else:
                    await asyncio.sleep(delay)
                    found = await self.kind.afetch(hook, self.ids)  # type: ignore[arg-type]
            except AkoolError as error:
                event = waiter.poll_failed(error, time.time())
            else:
                event = waiter.polled(found, time.time())
            if event is not None:
                return event
            (delay, grid), first = self._next_pause(waiter, time.time()), False
            ends = self.ends_at
            if grid is None and not waiter.errors_in_a_row and ends is not None:
                # The last poll, at the deadline: sleep here until it has passed, so the poll is judged
                # after it (a shared poller counts pauses from its last round, a little early).
                await asyncio.sleep(max(0.0, ends - time.time()))
                delay = 0.0

    async def _task_still_deferred(self) -> bool:
        """
        Whether Airflow still has this trigger's task instance deferred.

        Airflow 3.3.2 runs ``on_kill`` for every trigger a triggerer stops running because it is no longer
        assigned to it, and that is also what happens when a triggerer that missed its heartbeats (a stall,
        a busy machine, a slow database) comes back and finds its triggers reassigned to another triggerer.
        A user's kill (mark failed or success, clear) has moved the task out of ``deferred`` first. When the
        state cannot be read the kill is taken at its word.
        """
        ti = getattr(self, "task_instance", None)
        if ti is None:
            return False
        try:
            from airflow.sdk.execution_time import task_runner
            from airflow.sdk.execution_time.comms import GetTICount, TICount

            reply = await task_runner.SUPERVISOR_COMMS.asend(
                GetTICount(
                    dag_id=ti.dag_id,
                    task_ids=[ti.task_id],
                    run_ids=[ti.run_id],
                    map_index=ti.map_index,
                    states=["deferred"],
                )
            )
        except Exception as error:  # an older triggerer, no comms: the kill stands
            self.log.warning("Could not read the task's state before cancelling (%s): cancelling", error)
            return False
        return isinstance(reply, TICount) and reply.count > 0

    async def on_kill(self) -> None:
        """Cancel the jobs of this trigger's task when a user kills the deferred task (Airflow 3.3+)."""
        job_ids = [job_id for job_id in dict.fromkeys(self.job_id_of.values()) if job_id]
        if not job_ids:
            return
        # Airflow 3.3.2 cancels a trigger it stops again at each sync with its supervisor (about every
        # second) while on_kill runs, and swallows that: on a busy triggerer the cancel was cut short and the
        # job ran on (seen on the distributed stack). The work runs in a task of its own, out of their reach.
        kill = asyncio.ensure_future(asyncio.wait_for(self._kill(job_ids), KILL_TIMEOUT))
        _KILLS.add(kill)
        kill.add_done_callback(self._kill_done)
        await asyncio.shield(kill)

    def _kill_done(self, kill: asyncio.Future[None]) -> None:
        _KILLS.discard(kill)
        if not kill.cancelled() and kill.exception() is not None:
            self.log.error("Could not cancel the Akool job(s) of the killed task: %s", kill.exception())

    async def _kill(self, job_ids: list[str]) -> None:
        if await self._task_still_deferred():
            # Not a kill: this triggerer lost the trigger to another one (seen on the distributed stack).
            self.log.warning(
                "Not cancelling Akool job(s) %s: the task is still deferred, so this trigger was moved to "
                "another triggerer (this one missed its heartbeats), not killed",
                ", ".join(job_ids),
            )
            return
        if self.webhook_token_sha256 and await self.callback_event() is not None:
            # Stopped because a callback resumed the task: the job is finished, nothing to cancel.
            self.log.info(
                "Not cancelling Akool job(s) %s: a callback reported them finished", ", ".join(job_ids)
            )
            return
        hook = self.make_hook(retry_limit=KILL_RETRY_LIMIT)
        try:
            await self.cancel(hook, job_ids)
        finally:
            await hook.aclose()
        self.log.info("Cancelled Akool job(s) %s because the task was killed", ", ".join(job_ids))


class AkoolKindTrigger(AkoolJobTrigger):
    """
    Wait for Akool jobs of any registered kind: the one trigger class, which serializes the kind's name.

    The kind is looked up in the registry (:func:`~airflow_provider_akool.kinds.base.kind_named`) when the
    trigger is built, and a triggerer that rebuilds it from its kwargs imports ``kind_module`` first where
    the kind is not registered yet (a kind defined outside this package registers itself at import). The
    other keyword arguments are those of :class:`AkoolJobTrigger`.

    :param kind: the kind's name (``reage``).
    :param kind_module: the module that registers the kind, for a process that has not imported it.
    """

    def __init__(
        self, *, kind: str, ids: Sequence[str], kind_module: str | None = None, **kwargs: Any
    ) -> None:
        self._kind = kind_named(kind, kind_module)
        self.kind_module = kind_module or home_of(self._kind) or None
        super().__init__(ids=ids, **kwargs)

    @property
    def kind(self) -> JobKind:
        """The kind of job this trigger waits for, from the registry."""
        return self._kind

    @classmethod
    def for_kind(cls, kind: JobKind, ids: Sequence[str], **kwargs: Any) -> AkoolJobTrigger:
        """Return the trigger that waits for ``ids`` of ``kind``."""
        return cls(kind=kind.name, ids=ids, **kwargs)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the keyword arguments that rebuild this trigger: the kind by name."""
        kwargs: dict[str, Any] = {"kind": self.kind.name}
        if self.kind_module:
            kwargs["kind_module"] = self.kind_module
        return self.class_path(), {
            **kwargs,
            "ids": list(self.ids),
            **self.wait_kwargs(),
            **self.poller_kwargs(),
        }


__all__ = [
    "ADAPTIVE_AGE_FRACTION",
    "MIN_ADAPTIVE_INTERVAL",
    "AkoolJobTrigger",
    "AkoolKindTrigger",
    "adaptive_interval",
    "first_poll_at",
    "import_first_poll_modules",
]
