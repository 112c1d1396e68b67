"""
One poller for many waits: the Akool triggers of one triggerer that use the same connection share it.

A trigger that polls on its own costs one request per wait per interval, and a thousand waits polling
together are the burst Akool answers with 1005. Instead every trigger asks a :class:`SharedPoller` of its
event loop, connection and kind of job for its next poll (:meth:`SharedPoller.poll`), saying how long it
would have slept. The poller gathers the polls that are due into rounds:

- reage (``listbyids`` takes many ids): one request per ``batch_size`` distinct ids of a round, and the
  regular polls of all waits are put on one grid (each pause, counted from the round that answered, is
  shortened to the previous multiple of itself, never below half of it), so waits of the same interval
  meet in the same rounds whenever they started;
- background change (one id per ``infobymodelid``): one request per id, each regular pause shortened by a
  random part, so waits that started together spread out.

Either way at most ``max_concurrency`` requests of a poller are in flight, and the first request of a round
goes alone: if Akool refuses it as too frequent (1005, 429) or refuses the credentials or the account, the
rest of the round is not sent. A rate limit pauses the whole poller (at least the ``Retry-After``); an
auth or account error goes to every wait of the poller. Each wait gets exactly its own result, or the error
of the request that held its ids, or the error of its own entry when only that entry of the reply could not
be read (the other waits of the batch get their results), which its
:class:`~airflow_provider_akool.wait.Waiter` judges by the usual rules (backoff, bounds, grace).

Nothing here outlives a trigger's kwargs: a trigger registers with each poll and leaves when its ``run()``
task ends or is cancelled, so a poller is only a cache. It runs while polls are waiting and stops after
:data:`IDLE_SECONDS` without any; a restarted triggerer simply builds new ones as triggers poll again.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import math
import random
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_akool.deprecation import renamed
from airflow_provider_akool.exceptions import (
    AkoolAccountError,
    AkoolAuthError,
    AkoolError,
    AkoolNotFoundError,
    AkoolPartialReplyError,
    AkoolRateLimitError,
)
from airflow_provider_akool.kinds.base import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_JITTER,
    DEFAULT_MAX_CONCURRENCY,
    AsyncFetch,
)
from airflow_provider_akool.wait import MAX_POLL_BACKOFF, JobSnapshot

if TYPE_CHECKING:
    from airflow_provider_akool.hooks.akool import AkoolHook

log = logging.getLogger(__name__)

#: Polls due this close together go in one round (timers of one loop never fire at the same instant).
GATHER_SECONDS = 0.02
#: How long a poller without waits stays up, so that waits between two polls do not rebuild it.
IDLE_SECONDS = 5.0
#: Waits handed their result per event-loop iteration (each wakes a trigger that judges it, may log a line,
#: and polls again). In Airflow's triggerer a trigger's log line goes through structlog to the supervisor:
#: about 1 ms on a busy core, so 100 wake-ups at once (a takeover of 200 triggers) took half of Airflow's
#: 0.2 s limit for a loop iteration.
FAN_OUT_CHUNK = 25
#: Waits whose ids a round gathers per event-loop iteration (10,000 waits in one round: 20 iterations).
ROUND_CHUNK = 500
#: The most a first poll of a background-change wait is put off to spread waits that start together.
MAX_FIRST_POLL_SPREAD = 1.0

# Past this many halvings a pause is left off the grid (a pause cut short by a deadline, say).
_MAX_GRID_HALVINGS = 6
# Refusals that say nothing about the ids asked for: the rest of the round would be refused the same way.
_ROUND_STOPPERS = (AkoolRateLimitError, AkoolAuthError, AkoolAccountError)
# Refusals of the credentials or the account: every wait of the connection ends with them.
_ACCOUNT_ERRORS = (AkoolAuthError, AkoolAccountError)


@dataclass
class _RoundState:
    """
    What the requests of one round gathered. A plain object rather than the cells of a self-calling closure:
    such a closure is a reference cycle, which kept every round's replies alive until a full garbage
    collection (tens of thousands of objects at 10,000 waits, and the collections it brought on stalled the
    loop).
    """

    #: The states read, by id.
    found: dict[str, JobSnapshot] = field(default_factory=dict)
    #: The error of each id whose request failed.
    failed: dict[str, BaseException] = field(default_factory=dict)
    #: The refusal that stops the rest of the round (rate limit, credentials, account).
    stop: AkoolError | None = None
    #: Whether the connection was read again this round (after an auth error).
    renewed: bool = False
    #: For each id, the wait (its place in the round) that asked for it first.
    owner: dict[str, int] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class _Entry:
    """One trigger waiting for its next poll."""

    ids: tuple[str, ...]
    #: When to poll (event-loop time).
    at: float
    #: The trigger's ``poll_interval``: the base of the shared pause after a rate limit.
    interval: float
    #: The trigger's deadline (epoch seconds), which a pause must not hold it past.
    deadline: float | None
    future: asyncio.Future[dict[str, JobSnapshot]]
    #: When the round that answered began (loop time): the next pause of the same wait counts from it.
    polled_at: float | None = None


class SharedPoller:
    """
    Poll Akool for all the waits of one event loop, connection and kind of job, in shared rounds.

    Get one with :func:`shared_poller`; a trigger calls :meth:`poll` for each of its polls.

    :param akool_conn_id: the ``akool`` connection every request goes through (one hook, one client).
    :param fetch: one request for a list of ids (at most ``batch_size`` of them).
    :param batch_size: distinct ids per request; 1 sends one request per id.
    :param max_concurrency: requests in flight at once.
    :param align: put regular polls on a grid, so waits of the same interval share rounds (batch endpoints).
    :param jitter: the part of each regular pause taken off at random, so waits spread out (single-id
        endpoints); first polls are put off by up to this part of the interval (at most
        :data:`MAX_FIRST_POLL_SPREAD`).
    """

    def __init__(
        self,
        akool_conn_id: str,
        *,
        fetch: AsyncFetch,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        align: bool = False,
        jitter: float = 0.0,
    ) -> None:
        if batch_size < 1 or max_concurrency < 1:
            raise ValueError("batch_size and max_concurrency must be at least 1")
        self.akool_conn_id = akool_conn_id
        self.fetch = fetch
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.align = align
        self.jitter = jitter
        #: Rounds run and requests sent since the poller was made (for tests and the benchmark).
        self.rounds = 0
        self.requests = 0
        self._entries: dict[_Entry, None] = {}
        self._task: asyncio.Task[None] | None = None
        self._hook: AkoolHook | None = None
        # Set while the poller sleeps: an earlier poll that registers wakes it.
        self._wake: asyncio.Future[None] | None = None
        self._wake_at = math.inf
        # The shared pause after a rate limit, and the refusal that caused it.
        self._resume_at = 0.0
        self._limited_in_a_row = 0
        self._limit_error: AkoolRateLimitError | None = None
        # When each waiting task's last poll was made, for its next pause (see poll()).
        self._polled_at: weakref.WeakKeyDictionary[asyncio.Task[Any], float] = weakref.WeakKeyDictionary()

    @property
    def waiting(self) -> int:
        """How many triggers wait for a poll now."""
        return len(self._entries)

    async def poll(
        self,
        ids: Sequence[str],
        *,
        delay: float,
        grid: float | None = None,
        interval: float,
        deadline: float | None = None,
        first: bool = False,
    ) -> dict[str, JobSnapshot]:
        """
        Wait ``delay`` seconds at most, then return the states of ``ids`` from the round that polled them.

        The poll may come early (to share a round), never later than ``delay`` unless Akool asked the
        poller to slow down. Cancelling the caller takes its ids out of the next rounds.

        :param ids: the ids of this wait.
        :param delay: the pause the trigger would sleep before polling on its own.
        :param grid: for a regular pause: the interval it comes from, the grid of aligned pollers. None
            after a failed poll (a backoff is kept as it is).
        :param interval: the trigger's ``poll_interval``.
        :param deadline: the trigger's deadline (epoch seconds), or None.
        :param first: whether this is the wait's first poll.
        :raises AkoolError: the request that held these ids failed; the caller's ``Waiter`` judges it.
        """
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        now = loop.time()
        # The pause counts from the previous poll, not from when this wait got round to judging it: the
        # waits of one round, woken one after another, then land on the same instant again.
        since = self._polled_at.pop(task, None) if task is not None else None
        entry = _Entry(
            ids=tuple(ids),
            at=self._schedule(min(now, since) if since is not None else now, delay, grid, interval, first),
            interval=interval,
            deadline=deadline,
            future=loop.create_future(),
        )
        self._entries[entry] = None
        if _gc_freeze is not False and len(self._entries) >= _gc_frozen_at * 2:
            freeze_gc(len(self._entries))
        if self._task is None:
            self._task = loop.create_task(self._run(), name=f"akool-poller-{self.akool_conn_id}")
        elif entry.at < self._wake_at and self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        try:
            return await entry.future
        finally:
            self._entries.pop(entry, None)
            if task is not None and entry.polled_at is not None:
                self._polled_at[task] = entry.polled_at
            if entry.future.done() and not entry.future.cancelled():
                # Mark it retrieved: a caller cancelled right after its result came must not log it.
                entry.future.exception()

    def _schedule(
        self, since: float, delay: float, grid: float | None, interval: float, first: bool
    ) -> float:
        """Return when to poll (loop time): never later than ``delay`` after ``since``, but a first spread."""
        at = since + delay
        if self.align and grid:
            # The previous multiple of the grid: every wait of this interval lands on the same instants. A
            # wait that is not on the grid yet (a first poll, a backoff) gets there through halves of it, so
            # no poll comes sooner than half its pause.
            step = grid
            for _ in range(_MAX_GRID_HALVINGS):
                aligned = math.floor(at / step) * step
                if aligned - since >= delay / 2:
                    at = aligned
                    break
                step /= 2
        elif self.jitter:
            if first:
                at += random.uniform(0, min(self.jitter * interval, MAX_FIRST_POLL_SPREAD))
            elif grid:
                at -= random.uniform(0, self.jitter * delay)
        return at

    # --- The loop -------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                now = loop.time()
                due, start = self._due(now)
                if start is None:
                    if not await self._sleep(loop, now + IDLE_SECONDS) and not self._entries:
                        return
                    continue
                if start > now:
                    await self._sleep(loop, start)
                    continue
                if now < self._resume_at:
                    # Held by a rate limit until past their deadline: they get the refusal, and no request.
                    self._fail(due, self._limit_error or AkoolRateLimitError("paused by a rate limit"), now)
                    continue
                await self._round(due)
                # Not kept while the poller sleeps until the next round: the entries of this one (their
                # futures, the results in them) would stay alive an interval longer, for the collector.
                del due
                # Let the waits woken by the round's last hand-out poll again before the next round is
                # made: after a round that overran the next grid point they are already due, and without
                # this they would miss it and go in a round (and requests) of their own.
                await asyncio.sleep(0)
        except BaseException as error:
            # Cancelled with its loop, or a bug: no trigger may be left waiting for a round that never comes.
            self._fail([e for e in self._entries if not e.future.done()], error, loop.time())
            raise
        finally:
            self._task = None
            hook, self._hook = self._hook, None
            if hook is not None:
                await hook.aclose()

    def _due(self, now: float) -> tuple[list[_Entry], float | None]:
        """
        Return the entries to poll in a round now and when the earliest waiting entry is ready (loop time),
        or None when no entry waits. The lists are built here, so none outlives the poller's next sleep.
        """
        offset = time.time() - now
        start: float | None = None
        due: list[_Entry] = []
        for entry in self._entries:
            if entry.future.done():
                continue
            at = self._ready_at(entry, offset)
            if start is None or at < start:
                start = at
            if at <= now + GATHER_SECONDS:
                due.append(entry)
        return due, start

    def _ready_at(self, entry: _Entry, offset: float) -> float:
        """When ``entry`` can be polled: at its time, after a rate-limit pause, yet not past its deadline."""
        ready = max(entry.at, self._resume_at)
        if entry.deadline is not None and ready > entry.at:
            ready = min(ready, max(entry.at, entry.deadline - offset))
        return ready

    async def _sleep(self, loop: asyncio.AbstractEventLoop, until: float) -> bool:
        """Sleep until ``until`` (loop time) or until an earlier poll registers; True if woken early."""
        wake: asyncio.Future[None] = loop.create_future()
        self._wake, self._wake_at = wake, until
        timer = loop.call_at(until, _resolve, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake, self._wake_at = None, math.inf
        return loop.time() < until

    def _make_hook(self) -> AkoolHook:
        # Imported here: the HTTP clients are needed to run a trigger, not to parse a DAG file.
        from airflow_provider_akool.hooks.akool import AkoolHook

        # One attempt per request: each wait's Waiter backs off and polls again, by its own bounds.
        return AkoolHook(self.akool_conn_id, retry_limit=1, batch_size=self.batch_size)

    async def _renew_hook(self) -> None:
        """Read the connection again (after an auth error: the key may have been rotated)."""
        old, self._hook = self._hook, self._make_hook()
        if old is not None:
            await old.aclose()

    # --- A round --------------------------------------------------------------------------------

    async def _round(self, due: list[_Entry]) -> None:
        """Poll the ids of ``due`` and give each entry its result or its error."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.rounds += 1
        if self._hook is None:
            self._hook = self._make_hook()
        state = _RoundState()
        ids: dict[str, None] = {}
        for index, entry in enumerate(due, 1):
            for akool_id in entry.ids:
                if akool_id not in ids:
                    ids[akool_id] = None
                    state.owner[akool_id] = index
            if index % ROUND_CHUNK == 0:
                # Thousands of waits in one round: gathering their ids must not hold the loop either.
                await asyncio.sleep(0)
        ordered = list(ids)
        units = [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        if not units:  # waits for no id at all: nothing to ask
            for entry in due:
                entry.polled_at = started
                entry.future.set_result({})
            return

        # The first request goes alone: if Akool refuses it as too frequent, the round costs one request.
        await self._send(units[0], state)
        rest = iter(units[1:])

        async def worker() -> None:
            for unit in rest:
                await self._send(unit, state)

        workers = min(self.max_concurrency, len(units) - 1)
        if workers > 0:
            await asyncio.gather(*(worker() for _ in range(workers)))

        found, failed, stop = state.found, state.failed, state.stop
        for index, entry in enumerate(due, 1):
            if not entry.future.done():
                error = next((failed[i] for i in entry.ids if i in failed), None)
                if error is not None:
                    self._fail([entry], error, started)
                else:
                    entry.polled_at = started
                    entry.future.set_result({i: found[i] for i in entry.ids if i in found})
            if index % FAN_OUT_CHUNK == 0:
                # Each result wakes a trigger: thousands in one loop iteration would stall the loop.
                await asyncio.sleep(0)
        if isinstance(stop, _ACCOUNT_ERRORS):
            # The account or the key, not these ids: every wait of this connection ends with it.
            self._fail([e for e in self._entries if not e.future.done()], stop, started)
        if isinstance(stop, AkoolRateLimitError):
            self._pause(loop, stop, due)
        else:
            self._limited_in_a_row = 0

    async def _send(self, unit: list[str], state: _RoundState) -> None:
        """One request of a round: its ids' states into ``state.found``, or their errors into ``failed``."""
        if state.stop is not None:
            state.failed.update(dict.fromkeys(unit, state.stop))
            return
        hook = self._hook
        try:
            state.found.update(await self._fetch(unit))
        except AkoolPartialReplyError as error:
            # Some entries could not be read: only the waits of those ids get an error (each its own,
            # naming its id); the other ids of the batch keep their results.
            state.found.update({i: s for i, s in error.found.items() if isinstance(s, JobSnapshot)})
            state.failed.update(error.errors)
        except AkoolAuthError as error:
            if hook is not self._hook or not state.renewed:
                # Read the connection again, once per round (the key may have been rotated); ask again.
                if hook is self._hook:
                    state.renewed = True
                    await self._renew_hook()
                await self._send(unit, state)
                return
            state.failed.update(dict.fromkeys(unit, error))
            state.stop = state.stop or error
        except AkoolNotFoundError as error:
            groups: dict[int, list[str]] = {}
            for akool_id in unit:
                groups.setdefault(state.owner[akool_id], []).append(akool_id)
            if len(groups) == 1:
                state.failed.update(dict.fromkeys(unit, error))
                return
            # Whether listbyids answers 1008 when one id is unknown is not documented: ask again wait by
            # wait, so one unknown id cannot make the other waits of its batch look unknown too.
            for group in groups.values():
                await self._send(group, state)
        except _ROUND_STOPPERS as error:
            state.failed.update(dict.fromkeys(unit, error))
            state.stop = state.stop or error
        except Exception as error:
            # Any other failure of this request (5xx, a dropped connection, a connection that cannot
            # be read): its ids get it; the rest of the round goes on.
            state.failed.update(dict.fromkeys(unit, error))

    async def _fetch(self, unit: list[str]) -> dict[str, JobSnapshot]:
        if self._hook is None:  # pragma: no cover - _round makes it first
            self._hook = self._make_hook()
        self.requests += 1
        return await self.fetch(self._hook, unit)

    def _pause(self, loop: asyncio.AbstractEventLoop, error: AkoolRateLimitError, due: list[_Entry]) -> None:
        """Hold every poll of this poller after a rate limit: doubling, at least the ``Retry-After``."""
        self._limited_in_a_row += 1
        base = min(entry.interval for entry in due)
        pause = base * 2 ** (self._limited_in_a_row - 1)
        if error.retry_after is not None:
            pause = max(pause, error.retry_after)
        pause = min(pause, max(MAX_POLL_BACKOFF, base))
        self._resume_at = loop.time() + pause
        self._limit_error = error
        log.warning(
            "Akool asked to slow down (%s): status polls of %d wait(s) on %s pause for %.1f s",
            error,
            len(self._entries),
            self.akool_conn_id,
            pause,
        )

    @staticmethod
    def _fail(entries: Sequence[_Entry], error: BaseException, polled_at: float) -> None:
        for entry in entries:
            if entry.future.done():
                continue
            entry.polled_at = polled_at
            if isinstance(error, asyncio.CancelledError):
                # The poller alone was cancelled (its loop's shutdown cancels the triggers first): the
                # triggers must not take that for their own cancellation.
                error = RuntimeError("the shared Akool poller stopped")
            # A copy per wait: each trigger raises its own, and tracebacks do not pile up on one object.
            try:
                own = copy.copy(error)
            except Exception:  # pragma: no cover - an exception that cannot be copied is shared
                own = error
            entry.future.set_exception(own)


#: ``[akool] triggerer_gc_freeze``, read at the first poll of the process (None until then).
_gc_freeze: bool | None = None
#: The waits of the poller that last froze the collector (0: never frozen).
_gc_frozen_at = 0


def freeze_gc(waits: int) -> bool:
    """
    Apply ``[akool] triggerer_gc_freeze`` for a poller that has ``waits`` waits now: when the setting is on,
    move every object alive now out of the garbage collector's scans (``gc.freeze()``).

    Called by :meth:`SharedPoller.poll` at the first poll of the process and again each time a poller's
    waits have doubled since the last freeze (1, 2, 4, ... 8192: 14 times up to 10,000 waits), so
    both the process's start-up heap and the long-lived objects of the waits leave the scans. Python's full
    garbage collection scans every object it tracks in one go: at 10,000 waits in one triggerer each one
    stalled the event loop for a few hundred ms (see docs/performance.md). Airflow's triggerer does not
    freeze its collector (its DAG processor does, before forking); this changes the whole process, so it
    is an opt-in setting, off by default. Only the young generations are collected first (a full
    collection would be the very stall this avoids). A reference cycle alive at a freeze that becomes
    garbage later is never collected; with freezes only as the waits double, that is bounded by what was
    alive at those few moments, not by how long the triggerer runs. Objects freed by their reference count
    (the provider's waits leave no cycles) are freed as ever.

    :return: whether it froze the collector now.
    """
    global _gc_freeze, _gc_frozen_at
    if _gc_freeze is None:
        from airflow.providers.common.compat.sdk import conf

        try:
            _gc_freeze = conf.getboolean("akool", "triggerer_gc_freeze", fallback=False)
        except Exception as error:  # a malformed value: say so, and leave the collector as it is
            _gc_freeze = False
            log.warning(
                "[akool] triggerer_gc_freeze is not a boolean (%s): the garbage collector is not frozen",
                error,
            )
    if not _gc_freeze or waits < _gc_frozen_at * 2:
        return False
    _gc_frozen_at = max(1, waits)
    gc.collect(1)
    gc.freeze()
    log.info(
        "[akool] triggerer_gc_freeze: at %d wait(s), %d objects of this process are out of the garbage "
        "collector's scans (gc.freeze)",
        waits,
        gc.get_freeze_count(),
    )
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_LOCK = threading.Lock()
_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[object, ...], SharedPoller]] = (
    weakref.WeakKeyDictionary()
)


def shared_poller(kind: str, akool_conn_id: str, *, fetch: AsyncFetch, **options: Any) -> SharedPoller:
    """
    Return the poller of the running event loop for ``kind`` of job on ``akool_conn_id``, making it once.

    :param kind: the kind's poller key (``reage``, ``background change``): one poller per endpoint.
    :param akool_conn_id: the connection.
    :param fetch: see :class:`SharedPoller`; the same for every call with the same ``kind``.
    :param options: the other keyword arguments of :class:`SharedPoller` (``batch_size``,
        ``max_concurrency``, ``align``, ``jitter``); waits asking for another ``batch_size`` or
        ``max_concurrency`` get a poller of their own.
    """
    loop = asyncio.get_running_loop()
    sizes = (
        options.get("batch_size", DEFAULT_BATCH_SIZE),
        options.get("max_concurrency", DEFAULT_MAX_CONCURRENCY),
    )
    key = (kind, akool_conn_id, *sizes)
    with _LOCK:
        pollers = _POLLERS.setdefault(loop, {})
        poller = pollers.get(key)
        if poller is None:
            poller = pollers[key] = SharedPoller(akool_conn_id, fetch=fetch, **options)
    return poller


def pollers_of_this_loop() -> list[SharedPoller]:
    """Return the pollers of the running event loop (for tests and the benchmark)."""
    with _LOCK:
        return list(_POLLERS.get(asyncio.get_running_loop(), {}).values())


#: Names of before the one vocabulary (issue 21), kept as deprecated aliases: ``Fetch`` is the sync type of
#: :mod:`~airflow_provider_akool.kinds.base`; the shared poller takes an ``AsyncFetch``.
__getattr__ = renamed(__name__, {"Fetch": "AsyncFetch"})

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_JITTER",
    "DEFAULT_MAX_CONCURRENCY",
    "AsyncFetch",
    "SharedPoller",
    "freeze_gc",
    "pollers_of_this_loop",
    "shared_poller",
]
