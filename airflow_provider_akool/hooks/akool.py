"""The Akool hook: connection, authentication, retries, and one method per Akool call."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import ssl
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import httpx
import requests
import tenacity
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_provider_akool import protocol, result_hosts, validation
from airflow_provider_akool.deprecation import warn_renamed
from airflow_provider_akool.exceptions import (
    AkoolConnectionError,
    AkoolError,
    AkoolInvalidTokenError,
    AkoolRateLimitError,
    AkoolValidationError,
)
from airflow_provider_akool.version import __version__

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_akool.models import (
        BackgroundChangeJob,
        BackgroundChangeResult,
        DetectedFaces,
        ReageJob,
        ReageResult,
    )

log = logging.getLogger(__name__)

T = TypeVar("T")
AuthType = Literal["api_key", "bearer", "client_credentials"]
#: The faces reage takes: ``[{"path": <image URL>, "opts": "x,y:x,y:x,y:x,y"}, ...]``.
Faces = Sequence[Mapping[str, str]]
AUTH_TYPES: tuple[AuthType, ...] = ("api_key", "bearer", "client_credentials")

USER_AGENT = f"airflow-provider-akool/{__version__}"
DEFAULT_TIMEOUT = 30.0
#: Ids per ``listbyids`` request. Akool does not publish a bound; 50 keeps URLs short and replies small.
DEFAULT_BATCH_SIZE = 50
#: Akool calls in flight at once from one event loop on one connection (downloads are not counted).
MAX_CONCURRENT_REQUESTS = 20
#: The longest ``Retry-After`` honoured; a server asking for more gets this, then the retry runs out.
MAX_RETRY_AFTER = 120.0
DOWNLOAD_CHUNK_SIZE = 1024 * 1024
#: Any 24-hex id: ``test_connection`` asks for it to prove the credentials without creating anything.
_PROBE_ID = "000000000000000000000000"
#: The port each scheme the hook accepts uses when none is given.
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class AkoolConnectionSettings:
    """
    What the hook reads from an ``akool`` connection, resolved and checked.

    :param base_url: scheme, host and port of the Open API, without a trailing slash.
    :param secret: the API key, or the client secret in ``client_credentials`` mode (never in repr).
    """

    base_url: str
    detect_url: str
    auth_type: AuthType
    secret: str = field(repr=False)
    client_id: str | None
    timeout: float

    @classmethod
    def from_connection(cls, conn: Connection, extra: Mapping[str, Any]) -> AkoolConnectionSettings:
        """Resolve the settings of ``conn``; raise ``AkoolValidationError`` naming any bad field."""
        # Older UIs stored form fields as ``extra__akool__<name>``; accept both spellings.
        extra = {key.removeprefix("extra__akool__"): value for key, value in extra.items()}
        base_url = _base_url(conn.host, conn.schema, conn.port)
        detect_url = extra.get("detect_url") or (
            protocol.DEFAULT_DETECT_URL if base_url == protocol.DEFAULT_BASE_URL else f"{base_url}/detect"
        )
        detect_url = validation.http_url("detect_url (connection extra)", detect_url)
        client_id = conn.login or None
        auth_type = extra.get("auth_type") or "auto"
        if auth_type == "auto":
            auth_type = "client_credentials" if client_id else "api_key"
        if auth_type not in AUTH_TYPES:
            raise AkoolValidationError(
                f"auth_type (connection extra) must be auto or one of {', '.join(AUTH_TYPES)}; "
                f"got {auth_type!r}"
            )
        if auth_type == "client_credentials" and not client_id:
            raise AkoolValidationError(
                "auth_type client_credentials needs the connection's login (the Akool clientId)"
            )
        secret = conn.password or ""
        if not secret:
            raise AkoolValidationError(
                f"the connection {conn.conn_id!r} has no password: set it to the Akool API key "
                "(or the client secret when login holds the clientId)"
            )
        raw_timeout = extra.get("timeout")
        timeout = DEFAULT_TIMEOUT
        if raw_timeout not in (None, ""):
            try:
                timeout = float(raw_timeout)
            except (TypeError, ValueError):
                timeout = -1.0
            if timeout <= 0:
                raise AkoolValidationError(
                    f"timeout (connection extra) must be a positive number of seconds; got {raw_timeout!r}"
                )
        return cls(
            base_url=base_url,
            detect_url=detect_url,
            auth_type=cast("AuthType", auth_type),
            secret=secret,
            client_id=client_id,
            timeout=timeout,
        )


def _base_url(host: str | None, schema: str | None, port: int | None) -> str:
    """
    Build the base URL from a connection's host, schema (the scheme) and port.

    Two forms are accepted: host, scheme and port in their own fields (``openapi.akool.com``, ``https``,
    ``443``), which is what the Airflow UI's Test button needs (it compares host and port with the stored
    ones), and a whole base URL in host (``http://127.0.0.1:8765``), the older form. A port that is the
    scheme's default is left out, so ``https://openapi.akool.com:443`` is Akool's own base URL. Port 0 means
    no port: Airflow 3.1's Test button sends it for a connection without one.
    """
    if not host:
        return protocol.DEFAULT_BASE_URL
    scheme_in_host = "://" in host
    if not scheme_in_host:
        scheme = (schema or "https").strip().lower()
        if scheme not in _DEFAULT_PORTS:
            raise AkoolValidationError(
                f"schema (connection) must be http or https (the scheme); got {schema!r}"
            )
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    try:
        host_port = parts.port
    except ValueError:
        host_port = -1
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or host_port == -1:
        raise AkoolValidationError(
            f"host (connection) must be a base URL such as {protocol.DEFAULT_BASE_URL} or a host name "
            f"such as openapi.akool.com; got {host!r}"
        )
    if scheme_in_host and schema and schema.strip().lower() != parts.scheme:
        raise AkoolValidationError(
            f"schema (connection) is {schema!r} but host {host!r} names {parts.scheme!r}: "
            "leave one of them out"
        )
    if port is not None and not 0 <= port <= 65535:
        raise AkoolValidationError(f"port (connection) must be between 1 and 65535; got {port!r}")
    if host_port is not None and port and port != host_port:
        # Which one would the user mean? Neither silently: say so before any request.
        raise AkoolValidationError(
            f"port (connection) is {port} but host {host!r} names port {host_port}: leave one of them out"
        )
    effective_port = host_port or port or None
    netloc = parts.netloc.rsplit(":", 1)[0] if host_port is not None else parts.netloc
    if effective_port and effective_port != _DEFAULT_PORTS[parts.scheme]:
        netloc = f"{netloc}:{effective_port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class _TokenCache:
    """
    Tokens from getToken, shared by every hook of the process.

    Keyed by base URL, clientId and a digest of the secret, so a triggerer that runs a thousand waits on
    one connection asks for one token, not a thousand. One fetch at a time per key: a thread lock for the
    sync path, an asyncio lock per event loop for the async one.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._async_locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str, str], asyncio.Lock]
        ] = weakref.WeakKeyDictionary()

    @staticmethod
    def key(settings: AkoolConnectionSettings) -> tuple[str, str, str]:
        digest = hashlib.sha256(settings.secret.encode()).hexdigest()
        return (settings.base_url, settings.client_id or "", digest)

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            return self._tokens.get(key)

    def put(self, key: tuple[str, str, str], token: str) -> None:
        with self._lock:
            self._tokens[key] = token

    def discard(self, key: tuple[str, str, str], token: str | None) -> None:
        """Forget ``token`` unless another caller already replaced it with a fresh one."""
        with self._lock:
            if token is None or self._tokens.get(key) == token:
                self._tokens.pop(key, None)

    def fetch_lock(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._lock:
            return self._fetch_locks.setdefault(key, threading.Lock())

    def async_fetch_lock(self, key: tuple[str, str, str]) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._lock:
            return self._async_locks.setdefault(loop, {}).setdefault(key, asyncio.Lock())

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


_TOKENS = _TokenCache()


class _TokenRenewal:
    """
    The 1101 rule of one call, for both transports: a token Akool refuses as invalid or expired is
    forgotten so the call is sent once more with a new one; never a second time, so credentials Akool
    refuses for good fail the call instead of looping.

    :param settings: the connection's settings (the token cache's key).
    :param uses_token: whether the call is sent with a ``getToken`` token at all.
    """

    def __init__(self, settings: AkoolConnectionSettings, uses_token: bool) -> None:
        self.settings = settings
        self.uses_token = uses_token
        self._renewed = False

    def refused(self, token: str | None, error: AkoolInvalidTokenError) -> None:
        """Forget ``token`` so the caller sends again with a new one; raise ``error`` where it may not."""
        if token is None or self._renewed:
            raise error
        self._renewed = True
        log.info("The Akool token was refused (1101); obtaining a new one and trying once more")
        _TOKENS.discard(_TOKENS.key(self.settings), token)


@dataclass
class _SharedClient:
    """An async client shared by the hooks of one event loop and connection, and its request gate."""

    client: httpx.AsyncClient
    #: API calls in flight at once through this client (see :data:`MAX_CONCURRENT_REQUESTS`).
    gate: asyncio.Semaphore
    users: int = 0


class _SharedAsyncClients:
    """
    The ``httpx.AsyncClient`` of each event loop and connection, shared by every hook that uses them.

    A triggerer runs thousands of waits on one loop; one client each would cost a TLS context (tens of
    milliseconds of CPU on the loop) and a connection pool per wait. Hooks acquire the client of their loop
    and connection and release it in ``aclose``; the last release closes it. The TLS context is built once
    per process, off the loop, and given to every client.

    API calls through a shared client pass a gate of :data:`MAX_CONCURRENT_REQUESTS`: httpcore's pool looks
    at every queued request whenever a connection frees up, so a thousand requests queued in it cost
    quadratic CPU on the loop (measured: 30 ms per request with 1000 waits polling on their own), while
    an ``asyncio.Semaphore`` queues them for free. It also keeps a burst of waits from reaching Akool at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _SharedClient]] = (
            weakref.WeakKeyDictionary()
        )
        self._ssl_context: ssl.SSLContext | None = None

    def _make_ssl_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            return self._ssl_context

    async def _assl_context(self) -> ssl.SSLContext:
        if self._ssl_context is not None:
            return self._ssl_context
        # Loading the CA bundle reads files and takes ~20 ms: done in a thread, and only once.
        return await asyncio.to_thread(self._make_ssl_context)

    async def acquire(self, conn_id: str) -> _SharedClient:
        """Return the open client of the running loop and ``conn_id``, counting one more user."""
        ssl_context = await self._assl_context()
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._clients.setdefault(loop, {})
            shared = clients.get(conn_id)
            if shared is None or shared.client.is_closed:
                client = httpx.AsyncClient(
                    headers={"User-Agent": USER_AGENT},
                    follow_redirects=True,
                    verify=ssl_context,
                    # Every gated call can keep its connection alive, across a 10 s poll interval too.
                    limits=httpx.Limits(
                        max_connections=100,
                        max_keepalive_connections=MAX_CONCURRENT_REQUESTS,
                        keepalive_expiry=15.0,
                    ),
                )
                shared = clients[conn_id] = _SharedClient(client, asyncio.Semaphore(MAX_CONCURRENT_REQUESTS))
            shared.users += 1
        return shared

    async def release(self, conn_id: str, shared: _SharedClient, loop: asyncio.AbstractEventLoop) -> None:
        """Count one user less of ``shared``; close its client when none is left."""
        with self._lock:
            clients = self._clients.get(loop, {})
            shared.users -= 1
            last = shared.users <= 0
            if last and clients.get(conn_id) is shared:
                del clients[conn_id]
        if last and not shared.client.is_closed:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            # A client can only be closed on the loop it was made on; another loop's is left to its end.
            if running is loop:
                await shared.client.aclose()


_CLIENTS = _SharedAsyncClients()


class _Backoff(tenacity.wait.wait_base):
    """
    Exponential backoff with jitter, or the server's ``Retry-After`` when it gave one.

    The jitter is half of each delay ("equal jitter"): waits that failed together spread out instead of
    returning as one burst, and no wait is shorter than half its step.
    """

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, AkoolRateLimitError) and error.retry_after is not None:
            return min(error.retry_after, MAX_RETRY_AFTER)
        step = min(self.maximum, self.initial * 2 ** (retry_state.attempt_number - 1))
        return step / 2 + random.uniform(0, step / 2)


class AkoolHook(BaseHook):
    """
    Talk to the Akool Open API: face detect, reage, background change, results and downloads.

    Every call has a sync form for workers (a keep-alive ``requests`` session) and an async form with an
    ``a`` prefix for triggers (``httpx.AsyncClient``). Both build their request and read the reply with
    :mod:`airflow_provider_akool.protocol`, so they behave the same, and both retry with one rule
    (:func:`~airflow_provider_akool.protocol.is_retryable`): reads on any transient failure, submissions
    only when the failed attempt surely created nothing. Both read API replies streaming and stop at
    :data:`~airflow_provider_akool.protocol.MAX_REPLY_BYTES` (``AkoolResponseError``, the rest unread);
    result downloads (:meth:`stream_result`) are files, not replies, and are not capped.

    :param akool_conn_id: the ``akool`` connection to use.
    :param timeout: per-request timeout in seconds; overrides the connection's ``timeout`` extra.
    :param retry_limit: attempts per call, the first included.
    :param retry_delay: the first backoff in seconds; it doubles, with jitter, up to ``retry_max_delay``.
    :param retry_max_delay: the longest backoff in seconds.
    :param batch_size: ids per ``listbyids`` request.
    """

    conn_name_attr = "akool_conn_id"
    default_conn_name = "akool_default"
    conn_type = "akool"
    hook_name = "Akool"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the form's extra fields for Airflow 3.1 (3.2+ reads the provider info's conn-fields)."""
        from airflow_provider_akool.connection_form import form_widgets

        return form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return how the form shows the standard fields, for Airflow 3.1 (3.2+ reads the provider info)."""
        from airflow_provider_akool.connection_form import field_behaviour

        return field_behaviour()

    def __init__(
        self,
        akool_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        retry_limit: int = 5,
        retry_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.akool_conn_id = akool_conn_id
        self.timeout = timeout
        self.retry_limit = validation.integer("retry_limit", retry_limit, minimum=1)
        self.retry_delay = retry_delay
        self.retry_max_delay = retry_max_delay
        self.batch_size = validation.integer("batch_size", batch_size, minimum=1)
        self._settings: AkoolConnectionSettings | None = None
        self._session: requests.Session | None = None
        # The shared client this hook acquired, and the loop it belongs to (see _SharedAsyncClients).
        self._async_client: _SharedClient | None = None
        self._async_client_loop: asyncio.AbstractEventLoop | None = None

    # --- Settings and clients -------------------------------------------------------------------

    @property
    def settings(self) -> AkoolConnectionSettings:
        """The connection's settings, read once per hook."""
        if self._settings is None:
            conn = self.get_connection(self.akool_conn_id)
            self._settings = self._apply_overrides(
                AkoolConnectionSettings.from_connection(conn, conn.extra_dejson)
            )
            mask_secret(self._settings.secret)
        return self._settings

    async def aget_settings(self) -> AkoolConnectionSettings:
        """Read the connection's settings without blocking the event loop."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.akool_conn_id, hook=self)
            extra = await get_async_extra_dejson(conn)
            self._settings = self._apply_overrides(AkoolConnectionSettings.from_connection(conn, extra))
            await _amask_secret(self._settings.secret)
        return self._settings

    def _apply_overrides(self, settings: AkoolConnectionSettings) -> AkoolConnectionSettings:
        if self.timeout is None:
            return settings
        timeout = float(self.timeout)
        if timeout <= 0:
            raise AkoolValidationError(f"timeout must be a positive number of seconds; got {self.timeout!r}")
        return replace(settings, timeout=timeout)

    @property
    def session(self) -> requests.Session:
        """The keep-alive session of the sync path; it carries no credentials (they go per request)."""
        if self._session is None:
            self._session = requests.Session()
            self._session.headers["User-Agent"] = USER_AGENT
        return self._session

    async def _ashared(self) -> _SharedClient:
        """The async client of this loop and connection, shared with the other hooks that use them."""
        loop = asyncio.get_running_loop()
        shared = self._async_client
        if shared is not None and self._async_client_loop is loop and not shared.client.is_closed:
            return shared
        if shared is not None:
            await self.aclose()
        self._async_client = await _CLIENTS.acquire(self.akool_conn_id)
        self._async_client_loop = loop
        return self._async_client

    async def _aclient(self) -> httpx.AsyncClient:
        """The async client of this loop and connection (see :meth:`_ashared`)."""
        return (await self._ashared()).client

    def close(self) -> None:
        """Close the sync session."""
        if self._session is not None:
            self._session.close()
            self._session = None

    async def aclose(self) -> None:
        """Release the async client; the last hook of its loop and connection to release it closes it."""
        client, loop = self._async_client, self._async_client_loop
        self._async_client = self._async_client_loop = None
        if client is not None and loop is not None:
            await _CLIENTS.release(self.akool_conn_id, client, loop)

    async def __aenter__(self) -> AkoolHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- Authentication -------------------------------------------------------------------------

    def _auth_headers(self, settings: AkoolConnectionSettings, token: str | None) -> dict[str, str]:
        if settings.auth_type == "api_key":
            return {"x-api-key": settings.secret}
        if settings.auth_type == "bearer":
            return {"Authorization": f"Bearer {settings.secret}"}
        return {"Authorization": f"Bearer {token}"}

    def _token(self, settings: AkoolConnectionSettings) -> str:
        key = _TOKENS.key(settings)
        with _TOKENS.fetch_lock(key):
            token = _TOKENS.get(key)
            if token is None:
                request = protocol.build_get_token(settings.client_id or "", settings.secret)
                token = self._send_with_retries(settings, request, None)
                mask_secret(token)
                _TOKENS.put(key, token)
                log.info("Obtained an Akool token for client %s", settings.client_id)
        return token

    async def _atoken(self, settings: AkoolConnectionSettings) -> str:
        key = _TOKENS.key(settings)
        async with _TOKENS.async_fetch_lock(key):
            token = _TOKENS.get(key)
            if token is None:
                request = protocol.build_get_token(settings.client_id or "", settings.secret)
                token = await self._asend_with_retries(settings, request, None)
                await _amask_secret(token)
                _TOKENS.put(key, token)
                log.info("Obtained an Akool token for client %s", settings.client_id)
        return token

    # --- Sending, sync --------------------------------------------------------------------------

    def _call(self, request: protocol.AkoolRequest[T]) -> T:
        """Send ``request`` with retries; in ``client_credentials`` mode renew the token once on 1101."""
        settings = self.settings
        renewal = _TokenRenewal(settings, self._uses_token(settings, request))
        while True:
            token = self._token(settings) if renewal.uses_token else None
            try:
                return self._send_with_retries(settings, request, token)
            except AkoolInvalidTokenError as error:
                renewal.refused(token, error)

    def _send_with_retries(
        self, settings: AkoolConnectionSettings, request: protocol.AkoolRequest[T], token: str | None
    ) -> T:
        try:
            for attempt in tenacity.Retrying(**self._retry_policy(request)):
                with attempt:
                    return self._send(settings, request, token)
        except AkoolError as error:
            raise protocol.explain_failure(request, error) from error
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _send(
        self, settings: AkoolConnectionSettings, request: protocol.AkoolRequest[T], token: str | None
    ) -> T:
        headers = self._auth_headers(settings, token) if request.authenticated else {}
        try:
            # Streamed, so that no more than MAX_REPLY_BYTES of a reply are ever read.
            response = self.session.request(
                request.method,
                request.url(settings.base_url),
                params=request.params,
                json=request.json,
                headers=headers,
                timeout=(min(10.0, settings.timeout), settings.timeout),
                stream=True,
            )
        except requests.RequestException as err:
            raise _connection_error(request.endpoint, err) from None
        with response:
            response_headers = _lower_keys(response.headers)
            content = _read_bounded(request.endpoint, response, response_headers)
        reply = protocol.HttpReply(status=response.status_code, headers=response_headers, content=content)
        return protocol.interpret(request, reply)

    # --- Sending, async -------------------------------------------------------------------------

    async def _acall(self, request: protocol.AkoolRequest[T]) -> T:
        """Send ``request`` with retries, without blocking the event loop; renew the token once on 1101."""
        settings = await self.aget_settings()
        renewal = _TokenRenewal(settings, self._uses_token(settings, request))
        while True:
            token = await self._atoken(settings) if renewal.uses_token else None
            try:
                return await self._asend_with_retries(settings, request, token)
            except AkoolInvalidTokenError as error:
                renewal.refused(token, error)

    async def _asend_with_retries(
        self, settings: AkoolConnectionSettings, request: protocol.AkoolRequest[T], token: str | None
    ) -> T:
        try:
            async for attempt in tenacity.AsyncRetrying(**self._retry_policy(request)):
                with attempt:
                    return await self._asend(settings, request, token)
        except AkoolError as error:
            raise protocol.explain_failure(request, error) from error
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _asend(
        self, settings: AkoolConnectionSettings, request: protocol.AkoolRequest[T], token: str | None
    ) -> T:
        headers = self._auth_headers(settings, token) if request.authenticated else {}
        shared = await self._ashared()
        client = shared.client
        try:
            async with shared.gate:
                outgoing = client.build_request(
                    request.method,
                    request.url(settings.base_url),
                    params=request.params,
                    json=request.json,
                    headers=headers,
                    timeout=httpx.Timeout(settings.timeout, connect=min(10.0, settings.timeout)),
                )
                # Streamed, so that no more than MAX_REPLY_BYTES of a reply are ever read.
                response = await client.send(outgoing, stream=True)
                try:
                    response_headers = _lower_keys(response.headers)
                    content = await _aread_bounded(request.endpoint, response, response_headers)
                finally:
                    await response.aclose()
        except httpx.HTTPError as err:
            raise _async_connection_error(request.endpoint, err) from None
        reply = protocol.HttpReply(status=response.status_code, headers=response_headers, content=content)
        return protocol.interpret(request, reply)

    # --- Shared by both paths -------------------------------------------------------------------

    @staticmethod
    def _uses_token(settings: AkoolConnectionSettings, request: protocol.AkoolRequest[Any]) -> bool:
        return request.authenticated and settings.auth_type == "client_credentials"

    def _retry_policy(self, request: protocol.AkoolRequest[Any]) -> dict[str, Any]:
        """The tenacity arguments of one call, the same for the sync and the async path."""

        def log_retry(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "Akool %s failed (%s); attempt %d of %d in %.1f s",
                request.endpoint,
                error,
                state.attempt_number + 1,
                self.retry_limit,
                delay,
            )

        return {
            "retry": tenacity.retry_if_exception(lambda error: protocol.is_retryable(request, error)),
            "stop": tenacity.stop_after_attempt(self.retry_limit),
            "wait": _Backoff(self.retry_delay, self.retry_max_delay),
            "before_sleep": log_retry,
            "reraise": True,
        }

    # --- Akool calls ----------------------------------------------------------------------------

    def detect_faces(self, image_url: str, single_face: bool = True) -> DetectedFaces:
        """Detect the faces of an image; ``.target_image()`` of the value is what reage takes."""
        return self._call(protocol.build_detect_faces(self.settings.detect_url, image_url, single_face))

    async def adetect_faces(self, image_url: str, single_face: bool = True) -> DetectedFaces:
        """Detect the faces of an image (async)."""
        settings = await self.aget_settings()
        return await self._acall(protocol.build_detect_faces(settings.detect_url, image_url, single_face))

    def submit_image_reage(
        self, modify_image: str, face_reage: int, target_image: Faces, webhook_url: str | None = None
    ) -> ReageJob:
        """Submit an image reage job; never resent once it may have reached Akool."""
        return self._call(protocol.build_image_reage(modify_image, face_reage, target_image, webhook_url))

    async def asubmit_image_reage(
        self, modify_image: str, face_reage: int, target_image: Faces, webhook_url: str | None = None
    ) -> ReageJob:
        """Submit an image reage job (async)."""
        return await self._acall(
            protocol.build_image_reage(modify_image, face_reage, target_image, webhook_url)
        )

    def submit_video_reage(
        self, modify_video: str, face_reage: int, target_image: Faces, webhook_url: str | None = None
    ) -> ReageJob:
        """Submit a video reage job; never resent once it may have reached Akool."""
        return self._call(protocol.build_video_reage(modify_video, face_reage, target_image, webhook_url))

    async def asubmit_video_reage(
        self, modify_video: str, face_reage: int, target_image: Faces, webhook_url: str | None = None
    ) -> ReageJob:
        """Submit a video reage job (async)."""
        return await self._acall(
            protocol.build_video_reage(modify_video, face_reage, target_image, webhook_url)
        )

    def _batches(self, ids: Sequence[str] | str) -> list[list[str]]:
        unique = validation.id_list("ids", ids)
        return [unique[i : i + self.batch_size] for i in range(0, len(unique), self.batch_size)]

    def get_reage_results(self, ids: Sequence[str] | str) -> dict[str, ReageResult]:
        """
        Return the results of reage jobs by ``_id``, ``batch_size`` ids per request.

        Ids Akool does not know are absent from the dict; results are matched by ``_id``, never by position.
        An unreadable entry of an id asked for raises ``AkoolPartialReplyError`` naming that id (its
        ``found`` holds the readable results); use :meth:`get_reage_entries` to judge each id on its own.
        """
        entries = self.get_reage_entries(ids)
        entries.raise_for_errors()
        return entries.results

    async def aget_reage_results(self, ids: Sequence[str] | str) -> dict[str, ReageResult]:
        """Return the results of reage jobs by ``_id`` (async)."""
        entries = await self.aget_reage_entries(ids)
        entries.raise_for_errors()
        return entries.results

    def get_reage_entries(self, ids: Sequence[str] | str) -> protocol.ReageEntries:
        """
        Return the ``listbyids`` entries of ``ids``, each judged on its own, ``batch_size`` ids per request.

        A failed request raises; an unreadable entry only puts its id into ``errors``, so the results of
        the other ids still come back. Entries that name no id are ignored with a warning.
        """
        merged = protocol.ReageEntries(results={}, errors={})
        for batch in self._batches(ids):
            merged = _merge_entries(merged, self._call(protocol.build_list_reage_entries(batch)))
        return merged

    async def aget_reage_entries(self, ids: Sequence[str] | str) -> protocol.ReageEntries:
        """Return the ``listbyids`` entries of ``ids``, each judged on its own (async)."""
        merged = protocol.ReageEntries(results={}, errors={})
        for batch in self._batches(ids):
            merged = _merge_entries(merged, await self._acall(protocol.build_list_reage_entries(batch)))
        return merged

    def cancel_reage_jobs(self, job_ids: Sequence[str] | str) -> None:
        """Cancel reage jobs by ``job_id`` (not ``_id``); finished jobs are left as they are."""
        self._call(protocol.build_cancel_reage(validation.id_list("job_ids", job_ids)))

    async def acancel_reage_jobs(self, job_ids: Sequence[str] | str) -> None:
        """Cancel reage jobs by ``job_id`` (async)."""
        await self._acall(protocol.build_cancel_reage(validation.id_list("job_ids", job_ids)))

    def submit_background_change(self, **params: Any) -> BackgroundChangeJob:
        """
        Submit a background change; the keyword arguments are those of
        :func:`~airflow_provider_akool.protocol.build_background_change`.
        """
        return self._call(protocol.build_background_change(**params))

    async def asubmit_background_change(self, **params: Any) -> BackgroundChangeJob:
        """Submit a background change (async)."""
        return await self._acall(protocol.build_background_change(**params))

    def get_background_change_result(self, image_model_id: str) -> BackgroundChangeResult:
        """Return the state of a background-change job."""
        return self._call(protocol.build_background_change_result(image_model_id))

    async def aget_background_change_result(self, image_model_id: str) -> BackgroundChangeResult:
        """Return the state of a background-change job (async)."""
        return await self._acall(protocol.build_background_change_result(image_model_id))

    def get_image_result(self, image_model_id: str) -> BackgroundChangeResult:
        """Deprecated: use :meth:`get_background_change_result`."""
        warn_renamed("AkoolHook.get_image_result", "AkoolHook.get_background_change_result")
        return self.get_background_change_result(image_model_id)

    async def aget_image_result(self, image_model_id: str) -> BackgroundChangeResult:
        """Deprecated: use :meth:`aget_background_change_result`."""
        warn_renamed("AkoolHook.aget_image_result", "AkoolHook.aget_background_change_result")
        return await self.aget_background_change_result(image_model_id)

    # --- Any request: what a kind defined outside this package sends -----------------------------

    def send(self, request: protocol.AkoolRequest[T]) -> T:
        """
        Send a request built with :mod:`~airflow_provider_akool.protocol` and return its parsed reply.

        With the hook's retries (a request that creates a job is never resent once it may have reached
        Akool), authentication and error mapping: what a new kind's submit and fetch call.
        """
        return self._call(request)

    async def asend(self, request: protocol.AkoolRequest[T]) -> T:
        """Send ``request`` without blocking the event loop (see :meth:`send`)."""
        return await self._acall(request)

    # --- Credits --------------------------------------------------------------------------------

    def get_credit(self) -> protocol.Credit:
        """Return the credit balance (``faceswap/quota/info``): an int, or a float if Akool sent one."""
        return self._call(protocol.build_get_credit())

    async def aget_credit(self) -> protocol.Credit:
        """Return the account's credit balance (async)."""
        return await self._acall(protocol.build_get_credit())

    # --- Downloads ------------------------------------------------------------------------------

    @contextmanager
    def stream_result(
        self, url: str, chunk_size: int = DOWNLOAD_CHUNK_SIZE, *, headers: dict[str, str] | None = None
    ) -> Iterator[Iterator[bytes]]:
        """
        Open a result file and yield an iterator over its bytes, ``chunk_size`` at a time.

        The file lives on Akool's CDN: no credentials are sent there. An expired file (Akool keeps results
        for 7 days) raises ``AkoolResultUnavailableError``. A URL, or a redirect, to a loopback, private or
        link-local address raises ``AkoolResultHostError`` before any request to it, unless the
        connection's own host is one (:mod:`~airflow_provider_akool.result_hosts`).

        :param headers: if given, filled with the reply's headers (keys lower-cased) once the file is open,
            so a caller can check ``content-length`` and ``content-type``.
        """
        url = validation.http_url("url", url)
        request = _download_request(url)
        settings = self.settings
        timeout = settings.timeout
        own_private = result_hosts.own_host_is_private(
            settings.base_url, result_hosts.resolve(settings.base_url)[1]
        )

        def open_stream() -> requests.Response:
            hops = protocol.ResultRedirects(url, own_host_private=own_private)
            while True:
                target = hops.check(result_hosts.resolve(hops.next_url())[1])
                try:
                    response = self.session.get(
                        target, stream=True, timeout=(min(10.0, timeout), timeout), allow_redirects=False
                    )
                except requests.RequestException as err:
                    raise _connection_error("download", err) from None
                if not hops.redirected(response.status_code, _lower_keys(response.headers)):
                    break
                response.close()
            error = protocol.download_error(response.status_code, _lower_keys(response.headers))
            if error is not None:
                response.close()
                raise error
            return response

        try:
            response = tenacity.Retrying(**self._retry_policy(request))(open_stream)
        except AkoolError as error:
            raise protocol.explain_failure(request, error) from error
        if headers is not None:
            headers.update(_lower_keys(response.headers))
        try:

            def chunks() -> Iterator[bytes]:
                try:
                    yield from response.iter_content(chunk_size=chunk_size)
                except requests.RequestException as err:
                    raise _connection_error("download", err) from None

            yield chunks()
        finally:
            response.close()

    @asynccontextmanager
    async def astream_result(
        self, url: str, chunk_size: int = DOWNLOAD_CHUNK_SIZE
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open a result file and yield an async iterator over its bytes (async form of ``stream_result``)."""
        url = validation.http_url("url", url)
        request = _download_request(url)
        settings = await self.aget_settings()
        timeout = settings.timeout
        own_private = result_hosts.own_host_is_private(
            settings.base_url, (await result_hosts.aresolve(settings.base_url))[1]
        )
        client = await self._aclient()

        async def open_stream() -> httpx.Response:
            hops = protocol.ResultRedirects(url, own_host_private=own_private)
            while True:
                target = hops.check((await result_hosts.aresolve(hops.next_url()))[1])
                try:
                    response = await client.send(
                        client.build_request(
                            "GET", target, timeout=httpx.Timeout(timeout, connect=min(10.0, timeout))
                        ),
                        stream=True,
                        follow_redirects=False,
                    )
                except httpx.HTTPError as err:
                    raise _async_connection_error("download", err) from None
                if not hops.redirected(response.status_code, _lower_keys(response.headers)):
                    break
                await response.aclose()
            error = protocol.download_error(response.status_code, _lower_keys(response.headers))
            if error is not None:
                await response.aclose()
                raise error
            return response

        try:
            response: httpx.Response = await tenacity.AsyncRetrying(**self._retry_policy(request))(
                open_stream
            )
        except AkoolError as error:
            raise protocol.explain_failure(request, error) from error
        try:

            async def chunks() -> AsyncIterator[bytes]:
                try:
                    async for chunk in response.aiter_bytes(chunk_size):
                        yield chunk
                except httpx.HTTPError as err:
                    raise _async_connection_error("download", err) from None

            yield chunks()
        finally:
            await response.aclose()

    # --- Connection test ------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """
        Make one cheap authenticated read (``listbyids`` of an unknown id), then read the credit balance.

        The first read decides: it is what every job needs. The balance is only reported, so an account
        whose ``quota/info`` cannot be read (an endpoint Akool documents only in its demos) still connects,
        and the message says why the balance is unknown.
        """
        try:
            settings = self.settings
            self._call(protocol.build_list_reage_results([_PROBE_ID]))
        except AkoolError as error:
            return False, str(error)
        connected = f"Connected to Akool at {settings.base_url} ({settings.auth_type})"
        try:
            credit = self.get_credit()
        except AkoolError as error:
            return True, f"{connected}; credit balance unknown ({error})"
        return True, f"{connected}; credit balance: {credit}"


def _merge_entries(merged: protocol.ReageEntries, batch: protocol.ReageEntries) -> protocol.ReageEntries:
    if batch.ignored:
        log.warning(
            "Akool listbyids returned %d entr(ies) without a readable _id; ignored (an id left without "
            "its entry counts as not known yet)",
            batch.ignored,
        )
    return protocol.ReageEntries(
        results={**merged.results, **batch.results},
        errors={**merged.errors, **batch.errors},
        ignored=merged.ignored + batch.ignored,
    )


#: Bytes read from a streamed reply at a time.
_CHUNK_BYTES = 64 * 1024


def _read_bounded(endpoint: str, response: requests.Response, headers: Mapping[str, str]) -> bytes:
    """Read a streamed reply, raising ``AkoolResponseError`` past :data:`protocol.MAX_REPLY_BYTES`."""
    body = protocol.BoundedBody(endpoint, headers)
    try:
        for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
            # Past the limit it raises; leaving the caller's ``with response`` closes the connection.
            body.add(chunk)
    except requests.RequestException as err:
        raise _connection_error(endpoint, err) from None
    return body.content()


async def _aread_bounded(endpoint: str, response: httpx.Response, headers: Mapping[str, str]) -> bytes:
    """Read a streamed reply without blocking, as :func:`_read_bounded` does."""
    body = protocol.BoundedBody(endpoint, headers)
    async for chunk in response.aiter_bytes(_CHUNK_BYTES):
        body.add(chunk)
    return body.content()


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    """A reply's headers with lower-case names, as the protocol reads them."""
    return {k.lower(): v for k, v in headers.items()}


def _download_request(url: str) -> protocol.AkoolRequest[None]:
    """A stand-in request for a download, so downloads retry by the same rule as reads."""

    def parse(payload: Mapping[str, Any]) -> None:
        return None

    return protocol.AkoolRequest(
        endpoint="download", method="GET", path=url, parse=parse, authenticated=False
    )


def _connection_error(endpoint: str, err: requests.RequestException) -> AkoolConnectionError:
    """Classify a ``requests`` failure: did the request surely never reach the server?"""
    not_sent = isinstance(err, requests.ConnectTimeout) or (
        isinstance(err, requests.ConnectionError)
        and not isinstance(err, requests.ReadTimeout)
        and _refused_before_sending(err)
    )
    kind = type(err).__name__
    if isinstance(err, requests.ReadTimeout):
        what = "no reply within the timeout"
    elif not_sent:
        what = "could not connect"
    else:
        what = "the connection broke before a complete reply"
    return AkoolConnectionError(f"{what} ({kind})", request_sent=not not_sent, endpoint=endpoint)


def _refused_before_sending(err: requests.RequestException) -> bool:
    from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

    reason: BaseException | None = (
        err.args[0] if err.args and isinstance(err.args[0], BaseException) else None
    )
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, NameResolutionError))


def _async_connection_error(endpoint: str, err: httpx.HTTPError) -> AkoolConnectionError:
    """Classify an ``httpx`` failure: did the request surely never reach the server?"""
    not_sent = isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    kind = type(err).__name__
    if isinstance(err, httpx.ReadTimeout):
        what = "no reply within the timeout"
    elif not_sent:
        what = "could not connect"
    else:
        what = "the connection broke before a complete reply"
    return AkoolConnectionError(f"{what} ({kind})", request_sent=not not_sent, endpoint=endpoint)


async def _amask_secret(secret: str) -> None:
    """Mask a secret from async code: ``amask_secret`` where the SDK has it (3.3+), else the sync form."""
    try:
        from airflow.sdk.log import amask_secret  # type: ignore[attr-defined, unused-ignore]
    except ImportError:  # Airflow < 3.3
        mask_secret(secret)
        return
    await amask_secret(secret)


__all__ = ["AkoolConnectionSettings", "AkoolHook"]
