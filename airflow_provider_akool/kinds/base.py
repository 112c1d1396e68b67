"""
What one kind of Akool job is, and the registry that every part asks by the kind's name.

A :class:`JobKind` is the whole description of a kind: how to submit it (sync and async), how to poll it,
whether and how it is cancelled, which of an operator's parameters are media inputs (image or video: for
signing, lineage and the Akool views), how a reply becomes a
:class:`~airflow_provider_akool.wait.JobSnapshot`, and how the shared poller of the triggerer treats it.
:func:`register` files a kind under its name; :func:`kind_named` finds it again (the trigger, the webhook
receiver, the views and lineage ask here, so a kind defined outside this package works everywhere once
its module has called ``register``).

This module imports nothing of the triggers, sensors or operators: they use the kinds, not the other way
round. The shared poller's defaults live here for that reason.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.protocol import AkoolRequest
    from airflow_provider_akool.wait import JobSnapshot

#: Ids per request of a batch endpoint (``listbyids``), as the hook's own default: Akool publishes no bound
#: (the emulator's is 100).
DEFAULT_BATCH_SIZE = 50
#: Requests of one shared poller (one connection and kind) in flight at once.
DEFAULT_MAX_CONCURRENCY = 4
#: The part of each regular pause of a single-id endpoint's wait taken off at random, to spread the waits.
DEFAULT_JITTER = 0.2

#: The class path of the one generic trigger, ``AkoolKindTrigger``, which serializes the kind's name; a
#: string so that the kinds do not import the triggers.
KIND_TRIGGER = "airflow_provider_akool.triggers.base.AkoolKindTrigger"
#: The package whose modules define the built-in kinds (imported on the first look-up of an unknown name).
BUILT_IN_KINDS = "airflow_provider_akool.kinds"

#: One poll in a worker: the states of ``ids``, by ``_id``; ids Akool does not know are absent. When only
#: some entries of a reply cannot be read it raises ``AkoolPartialReplyError`` with the states of the others
#: (``found``, as :class:`~airflow_provider_akool.wait.JobSnapshot`) and an error per unreadable id
#: (``errors``).
Fetch = Callable[["AkoolHook", list[str]], "dict[str, JobSnapshot]"]
#: The same poll in the triggerer, without blocking the event loop.
AsyncFetch = Callable[["AkoolHook", list[str]], Awaitable["dict[str, JobSnapshot]"]]
#: Cancel jobs by the ids Akool's cancel endpoint takes (the snapshots' ``job_id``).
Cancel = Callable[["AkoolHook", list[str]], None]
AsyncCancel = Callable[["AkoolHook", list[str]], Awaitable[None]]
#: What a submission sends: the request's parameters (media inputs already signed, ``webhook_url`` included)
#: -> the request, without I/O; the hook sends it in a worker (``send``) or on an event loop (``asend``).
BuildRequest = Callable[[Mapping[str, Any]], "AkoolRequest[Any]"]

Media = Literal["image", "video"]


@dataclass(frozen=True)
class MediaInput:
    """
    One operator parameter that names input media.

    :param name: the operator's parameter (``modify_image``).
    :param media: ``image`` or ``video``: how the views show it (and the result of a job whose input it is).
    :param key: for a parameter that is a list of objects (``target_image``), the key of each object that
        holds the media URL (``path``); None for a parameter that is the URL itself.
    """

    name: str
    media: Media = "image"
    key: str | None = None

    def urls(self, value: Any) -> list[Any]:
        """Return the media values the parameter's (rendered) ``value`` holds, in order."""
        if self.key is None:
            return [value]
        if isinstance(value, list | tuple):
            return [item.get(self.key) for item in value if isinstance(item, Mapping)]
        return []


@dataclass(frozen=True)
class JobKind:
    """
    One kind of Akool job, described once for every mode of waiting and every view of it.

    :param name: the kind as messages and the ``task_state_store`` record spell it (``reage``); the key of
        the registry and what :class:`~airflow_provider_akool.triggers.base.AkoolKindTrigger` serializes.
    :param fetch: one poll in a worker (:data:`Fetch`), one attempt per request of the hook given.
    :param afetch: the same poll in the triggerer (:data:`AsyncFetch`).
    :param submitted: the snapshot of a submission's reply (the hook's return value): the ``_id`` to poll,
        the ``job_id`` to cancel by, the result URL and the status where the reply gave them.
    :param trigger: the class path of the trigger that waits for jobs of this kind; by default the generic
        :data:`KIND_TRIGGER` (the released built-in kinds keep their own classes, which Airflow has stored).
    :param cancel: cancel jobs by their ``job_id`` in a worker, or None where Akool cannot cancel them.
    :param acancel: the same in the triggerer; given exactly when ``cancel`` is.
    :param request: what a submission sends (:data:`BuildRequest`), sync and async alike (the hook sends
        it); :meth:`submit_job` and :meth:`asubmit_job` send it and read the reply with ``submitted``.
        None where the operator submits by itself.
    :param inputs: the operator parameters that name input media, in the order lineage reports them and the
        views look for the one to show.
    :param batch_size: ids per request (1: the endpoint takes one id); triggers may ask for another.
    :param max_concurrency: requests of a shared poller in flight at once; triggers may ask for another.
    :param align: put the shared poller's regular polls on one grid, so waits meet in rounds (batches).
    :param jitter: the part of each regular pause a shared poller takes off at random, so waits of a
        single-id endpoint spread out.
    :param poller: the key of the shared poller; kinds polled by the same endpoint with the same ``fetch``
        give the same key so their ids ride in one round. Defaults to ``name``.
    """

    name: str
    fetch: Fetch
    afetch: AsyncFetch
    submitted: Callable[[Any], JobSnapshot]
    trigger: str = KIND_TRIGGER
    cancel: Cancel | None = None
    acancel: AsyncCancel | None = None
    request: BuildRequest | None = None
    inputs: tuple[MediaInput, ...] = ()
    batch_size: int = 1
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    align: bool = False
    jitter: float = 0.0
    poller: str = ""

    def __post_init__(self) -> None:
        if (self.cancel is None) != (self.acancel is None):
            raise ValueError(f"job kind {self.name}: give both cancel and acancel, or neither")
        if self.batch_size < 1 or self.max_concurrency < 1:
            raise ValueError(f"job kind {self.name}: batch_size and max_concurrency must be at least 1")
        if not self.poller:
            object.__setattr__(self, "poller", self.name)

    @property
    def can_cancel(self) -> bool:
        """Whether Akool can cancel jobs of this kind."""
        return self.cancel is not None

    @property
    def trigger_class(self) -> Any:
        """
        The trigger class (an ``AkoolJobTrigger``), imported on first use.

        Typed ``Any``: the triggers use the kinds, so this module does not import them, even for types.
        """
        return _import_class(self.trigger)

    def make_trigger(self, ids: Sequence[str], **kwargs: Any) -> Any:
        """Return the trigger that waits for ``ids``; ``kwargs`` are those of every Akool trigger."""
        return self.trigger_class.for_kind(self, ids, **kwargs)

    def submit_job(self, hook: AkoolHook, params: Mapping[str, Any]) -> JobSnapshot:
        """Submit one job with the request's ``params`` (media signed) in a worker."""
        return self.submitted(hook.send(self._request(params)))

    async def asubmit_job(self, hook: AkoolHook, params: Mapping[str, Any]) -> JobSnapshot:
        """Submit one job without blocking the event loop."""
        return self.submitted(await hook.asend(self._request(params)))

    def _request(self, params: Mapping[str, Any]) -> AkoolRequest[Any]:
        if self.request is None:
            raise TypeError(f"job kind {self.name} has no request: its operator submits by itself")
        return self.request(params)

    def fetch_one(self, hook: AkoolHook, akool_id: str) -> JobSnapshot | None:
        """Poll one job in a worker; None when Akool does not know its id (yet)."""
        return self.fetch(hook, [akool_id]).get(akool_id)

    def input_named(self, name: str) -> MediaInput | None:
        """Return the media input called ``name``, or None."""
        return next((media_input for media_input in self.inputs if media_input.name == name), None)


# --- The registry ------------------------------------------------------------------------------------

_KINDS: dict[str, JobKind] = {}
#: The module that registered each kind, so a trigger rebuilt in another process can import it first.
_HOMES: dict[str, str] = {}
_LOCK = threading.Lock()


def register(kind: JobKind, *, module: str | None = None) -> JobKind:
    """
    File ``kind`` under its name and return it (call it where the kind is defined, at import).

    :param module: the module to import for the kind in a process that has not (a triggerer rebuilding a
        trigger); defaults to the caller's module.
    :raises ValueError: another kind already has the name.
    """
    home = module or sys._getframe(1).f_globals.get("__name__", "")
    with _LOCK:
        known = _KINDS.get(kind.name)
        if known is not None and known != kind:
            raise ValueError(
                f"a job kind named {kind.name!r} is already registered (from {_HOMES[kind.name]})"
            )
        _KINDS[kind.name] = kind
        _HOMES[kind.name] = home
    return kind


def kind_named(name: str, module: str | None = None) -> JobKind:
    """
    Return the kind registered as ``name``, importing the built-in kinds, then ``module``, if needed.

    :raises LookupError: no such kind, naming the ones there are.
    """
    for where in (None, BUILT_IN_KINDS, module):
        if name in _KINDS:
            return _KINDS[name]
        if where:
            importlib.import_module(where)
    if name in _KINDS:
        return _KINDS[name]
    known = ", ".join(sorted(_KINDS)) or "none"
    raise LookupError(f"no Akool job kind named {name!r} is registered (known: {known})")


def trigger_class_at(classpath: str) -> Any:
    """
    Return the trigger class stored as ``classpath`` if it waits for a registered kind, else None.

    What the webhook receiver asks of a deferred task's trigger row: the generic trigger, or the trigger
    class of a registered kind (the released built-in ones, or a kind's own).
    """
    if classpath != KIND_TRIGGER and all(kind.trigger != classpath for kind in registered_kinds()):
        return None
    return _import_class(classpath)


def _import_class(classpath: str) -> Any:
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)


def home_of(kind: JobKind) -> str:
    """The module that registered ``kind`` (empty for a kind that was never registered)."""
    return _HOMES.get(kind.name, "")


def registered_kinds() -> Iterator[JobKind]:
    """Every registered kind, the built-in ones included."""
    importlib.import_module(BUILT_IN_KINDS)
    yield from list(_KINDS.values())


def media_inputs() -> dict[str, MediaInput]:
    """Every media input of every registered kind, by parameter name (the first kind's, on a clash)."""
    found: dict[str, MediaInput] = {}
    for kind in registered_kinds():
        for media_input in kind.inputs:
            found.setdefault(media_input.name, media_input)
    return found


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_JITTER",
    "DEFAULT_MAX_CONCURRENCY",
    "KIND_TRIGGER",
    "AsyncCancel",
    "AsyncFetch",
    "BuildRequest",
    "Cancel",
    "Fetch",
    "JobKind",
    "MediaInput",
    "home_of",
    "kind_named",
    "media_inputs",
    "register",
    "registered_kinds",
    "trigger_class_at",
]
