"""
The task's side of webhook-first completion: the URL a task gives Akool, its token, and its callback marks.

What the submitting operator and its trigger use; the receiver (the API server's side) decodes the route and
reads and writes the marks defined here.

With ``webhook_url="airflow"`` a submitting operator gives Akool
``<public base>/akool-webhook/<route>/<token>``: ``route`` names the task instance (DAG, run, task, map
index), so the receiver (:mod:`airflow_provider_akool.webhook.receiver`) knows which task a callback
is for; ``token`` is random per submission. Only its SHA-256 is kept, beside the ``akool`` connection the
task submitted with (:class:`CallbackExpectation`): in the task's callback mark in XCom, left before the
submission (:func:`pending_mark`), in the trigger's kwargs (which Airflow encrypts at rest) and in the job
record. The receiver verifies a callback with that connection's credentials, never with one a URL names (the
route also carries a connection id, for URLs already handed out; it is not consulted), and acts on it, before
or after the deferral, only when its token matches the digest. The token itself is masked and never logged.

The receiver leaves the job's final state in the task's XCom (:data:`CALLBACK_XCOM_KEY`), with the digest it
checked the token against: a callback that came before the task deferred is found there by the trigger when it
starts, and a trigger stopped because a callback already resumed its task sees there that the job is finished
and must not be cancelled.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_akool.exceptions import AkoolValidationError
from airflow_provider_akool.models import JobStatus

if TYPE_CHECKING:
    from airflow_provider_akool.wait import JobSnapshot

#: The value of ``webhook_url`` that asks for Airflow's own receiver.
AIRFLOW_RECEIVER = "airflow"
#: Where the plugin mounts its app on the API server, and the route of callbacks in it. A prefix of its
#: own: Starlette gives a request to the first mount whose prefix matches, and the Akool views plugin
#: mounts ``/akool`` (loaded first, it answered every callback at ``/akool/webhook/...`` with 404).
URL_PREFIX = "/akool-webhook"
CALLBACK_PATH = ""
#: While a callback is expected the trigger still polls, but at most this often: a lost callback costs
#: this much latency at worst, not the task.
WEBHOOK_POLL_INTERVAL = 60.0
#: ``[akool] webhook_resume_settle``'s default: seconds after a deferral before a callback may resume the
#: task. It delays only jobs that finish sooner than this after their task deferred.
DEFAULT_RESUME_SETTLE = 10.0
#: The XCom key of the final state a genuine callback reported: ``{"id", "status", "url"}``.
CALLBACK_XCOM_KEY = "akool_webhook_callback"
#: Bytes of randomness in a token (43 characters of URL-safe base64).
TOKEN_BYTES = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
#: The longest route accepted: four names Airflow bounds to 250 characters each, a connection id, JSON.
MAX_ROUTE_CHARS = 2048


def new_token() -> str:
    """Return a fresh unguessable token for one submission's callback URL."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """Return what is kept of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def token_matches(token: str, digest: str) -> bool:
    """Whether ``token`` is the one ``digest`` was made from, compared in constant time."""
    if not _TOKEN.fullmatch(token):
        return False
    return hmac.compare_digest(token_digest(token).encode("ascii"), digest.encode("ascii", "replace"))


def resume_settle_seconds() -> float:
    """
    ``[akool] webhook_resume_settle``: how long after its deferral a task may first be resumed (seconds).

    The worker that deferred exits after deferring and its executor reports that try as "success"; the
    scheduler fails a task it has queued again when that report reaches it afterwards. A resume this long
    after the deferral comes after it (see docs/webhooks.md).
    """
    from airflow.providers.common.compat.sdk import conf

    return max(0.0, conf.getfloat("akool", "webhook_resume_settle", fallback=DEFAULT_RESUME_SETTLE))


def relaxed_poll_interval(poll_interval: float) -> float:
    """Return the pause between polls of a wait that expects a callback: ``poll_interval``, at least 60 s."""
    return max(float(poll_interval), WEBHOOK_POLL_INTERVAL)


@dataclass(frozen=True)
class CallbackRoute:
    """
    The task instance a callback URL is for, and the connection whose credentials verify its callbacks.

    :param dag_id: the DAG.
    :param run_id: the DAG run.
    :param task_id: the task.
    :param map_index: the map index (-1 when not mapped).
    :param conn_id: the ``akool`` connection the task submitted with, as the task named it. Not consulted by
        the receiver: a URL's route is the sender's to choose, so the connection comes from the task's own
        :class:`CallbackExpectation`.
    """

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    conn_id: str

    def encode(self) -> str:
        """Return the route as one URL path segment (URL-safe base64 of JSON, no padding)."""
        # One opaque segment: run ids hold characters (":", "+", "/") that proxies rewrite or refuse.
        text = json.dumps(
            [self.dag_id, self.run_id, self.task_id, self.map_index, self.conn_id], separators=(",", ":")
        )
        return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, segment: str) -> CallbackRoute:
        """Return the route a path segment encodes; ``ValueError`` when it is not one."""
        if not segment or len(segment) > MAX_ROUTE_CHARS:
            raise ValueError("not a callback route")
        try:
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
            fields = json.loads(raw.decode("utf-8"))
        except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
            # RecursionError: a short segment can decode to JSON nested deeper than the parser recurses.
            raise ValueError("not a callback route") from None
        if not (isinstance(fields, list) and len(fields) == 5):
            raise ValueError("not a callback route")
        dag_id, run_id, task_id, map_index, conn_id = fields
        if not all(isinstance(v, str) and v for v in (dag_id, run_id, task_id, conn_id)):
            raise ValueError("not a callback route")
        if isinstance(map_index, bool) or not isinstance(map_index, int):
            raise ValueError("not a callback route")
        return cls(dag_id, run_id, task_id, map_index, conn_id)


def public_base_url() -> str:
    """
    Return the public base URL of Airflow's API server, where Akool sends callbacks.

    ``[akool] webhook_base_url`` (for a deployment behind a reverse proxy), else ``[api] base_url``.
    """
    from airflow.providers.common.compat.sdk import conf

    for section, key in (("akool", "webhook_base_url"), ("api", "base_url")):
        value = (conf.get(section, key, fallback="") or "").strip()
        if value:
            if not re.match(r"https?://[^/\s]+", value):
                raise AkoolValidationError(
                    f'webhook_url="airflow" needs [{section}] {key} to be an http(s) URL such as '
                    f"https://airflow.example.com; got {value!r}"
                )
            return value.rstrip("/")
    raise AkoolValidationError(
        'webhook_url="airflow" needs the public URL of Airflow\'s API server: set [akool] webhook_base_url '
        "(e.g. https://airflow.example.com, what Akool can reach) or [api] base_url"
    )


def callback_url(base_url: str, route: CallbackRoute, token: str) -> str:
    """Return the URL Akool calls for one submission."""
    return f"{base_url.rstrip('/')}{URL_PREFIX}{CALLBACK_PATH}/{route.encode()}/{token}"


@dataclass(frozen=True)
class CallbackExpectation:
    """
    What a task expects of the callbacks of its job: its URL's token (by digest) and who verifies them.

    :param token_sha256: the digest of the token of the callback URL the task gave Akool.
    :param conn_id: the ``akool`` connection the task submitted with: its credentials verify the callbacks,
        whatever connection a URL's route names.
    """

    token_sha256: str
    conn_id: str

    def accepts(self, token: str, conn_id: str) -> bool:
        """Whether a callback verified with ``conn_id`` and carrying ``token`` is one this task gave out."""
        return conn_id == self.conn_id and token_matches(token, self.token_sha256)

    @classmethod
    def of_mark(cls, value: Any) -> CallbackExpectation | None:
        """Return the expectation a callback mark records (pending or final), or None."""
        value = _mark_value(value)
        if not isinstance(value, dict):
            return None
        digest, conn_id = value.get("token_sha256"), value.get("conn_id")
        if not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):
            return None
        if not (isinstance(conn_id, str) and conn_id):
            return None
        return cls(digest, conn_id)


def pending_mark(token_sha256: str, conn_id: str) -> dict[str, Any]:
    """
    Return the mark a task leaves before its job can call back: what the receiver checks a callback by.

    Only the digest of the token is kept, so the mark (readable by whoever may read the task's XComs) cannot
    make a callback URL.
    """
    return {"token_sha256": token_sha256, "conn_id": conn_id}


def callback_mark(snapshot: JobSnapshot, expectation: CallbackExpectation) -> dict[str, Any]:
    """Return the XCom value that records a job's final state, as a callback with the task's token said it."""
    return {
        "id": snapshot.id,
        "status": snapshot.label,
        "url": snapshot.url,
        **pending_mark(expectation.token_sha256, expectation.conn_id),
    }


def _mark_value(value: Any) -> Any:
    """The mark as an object: stored as JSON, it reads back as text or as the object by the version."""
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def snapshot_of_mark(value: Any, job_id_of: dict[str, str | None], token_sha256: str) -> JobSnapshot | None:
    """
    Return the final state a callback mark records for one of the ids of ``job_id_of``, or None.

    Only a mark left for the callback URL whose token digest is ``token_sha256`` counts: the receiver writes
    the digest it checked the callback's token against.
    """
    from airflow_provider_akool.wait import JobSnapshot

    value = _mark_value(value)
    if not isinstance(value, dict):
        return None
    digest = value.get("token_sha256")
    if not (isinstance(digest, str) and hmac.compare_digest(digest.encode(), token_sha256.encode())):
        return None
    akool_id, label, url = value.get("id"), value.get("status"), value.get("url")
    if not isinstance(akool_id, str) or akool_id not in job_id_of:
        return None
    finals = {JobStatus.SUCCESS.label: JobStatus.SUCCESS, JobStatus.FAILED.label: JobStatus.FAILED}
    status = finals.get(label) if isinstance(label, str) else None
    if status is None:
        return None
    return JobSnapshot(
        id=akool_id,
        status=status,
        url=url if isinstance(url, str) and url else None,
        job_id=job_id_of.get(akool_id),
    )


async def read_callback_mark(
    ti: Any, job_id_of: dict[str, str | None], token_sha256: str
) -> JobSnapshot | None:
    """
    Return the final state a callback left in ``ti``'s XCom for one of the ids of ``job_id_of``, read from a
    trigger.

    None when there is none, when it was not left for the URL of ``token_sha256``, or when it cannot be read
    (no task instance, no supervisor: the wait polls).
    """
    if ti is None:
        return None
    try:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import GetXCom, XComResult

        reply = await task_runner.SUPERVISOR_COMMS.asend(
            GetXCom(
                key=CALLBACK_XCOM_KEY,
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                map_index=ti.map_index,
            )
        )
    except Exception:  # no supervisor (a trigger run by hand): nothing to read
        return None
    if not isinstance(reply, XComResult):
        return None
    return snapshot_of_mark(reply.value, job_id_of, token_sha256)


def new_callback_url(context: Any, conn_id: str) -> tuple[str, str]:
    """
    Return the callback URL for a submission by the task of ``context``, and the digest of its token.

    The token is given to the secrets masker first, so a log line that would show the URL shows ``***``.
    """
    from airflow.sdk.log import mask_secret

    ti = context["ti"]
    route = CallbackRoute(ti.dag_id, ti.run_id, ti.task_id, int(ti.map_index), conn_id)
    token = new_token()
    mask_secret(token)
    return callback_url(public_base_url(), route, token), token_digest(token)


def digest_of_record(record: Any) -> str | None:
    """Return the token digest a job record (``task_state_store``) keeps, or None."""
    digest = record.get("webhook_token_sha256") if isinstance(record, dict) else None
    return digest if isinstance(digest, str) and _DIGEST.fullmatch(digest) else None
