"""
Akool's signature scheme for webhook callbacks: verify, decrypt and parse them; and make them (the emulator).

Used by the receiver (:mod:`airflow_provider_akool.webhook.receiver`), by the emulator and by users' own
receivers; public as :mod:`airflow_provider_akool.webhook`, which re-exports its names.

When a job is submitted with ``webhookUrl``, Akool POSTs a JSON body
``{"signature", "dataEncrypt", "timestamp", "nonce"}`` to that URL as the job changes status (2, 3, 4),
and retries until it gets HTTP 200:

- ``signature`` is the lowercase hex SHA-1 of the four strings clientId, timestamp (milliseconds),
  nonce and dataEncrypt, sorted ascending and concatenated;
- ``dataEncrypt`` is the base64 of AES-CBC with PKCS#7 padding, the key being the clientSecret's bytes
  (16, 24 or 32 long: Akool's secrets have 24, so AES-192) and the IV the first 16 bytes of the clientId;
- the plain text is ``{"_id", "status", "type", "url"}``.

:class:`AkoolWebhookVerifier` checks all of it and returns an :class:`AkoolWebhookEvent`, or raises an
:class:`~airflow_provider_akool.exceptions.AkoolWebhookError`. A minimal receiver (FastAPI)::

    verifier = AkoolWebhookVerifier(os.environ["AKOOL_CLIENT_ID"], os.environ["AKOOL_CLIENT_SECRET"])

    @app.post("/akool/webhook")
    async def akool_webhook(request: Request) -> Response:
        try:
            event = verifier.verify(await request.body())
        except AkoolWebhookError as err:
            log.warning("Refused an Akool callback: %s", err)
            return Response(status_code=400)  # the same answer for every rejection
        record(event.id, event.status)  # idempotent: Akool may send a callback more than once
        return Response(status_code=200)

See ``docs/webhooks.md`` for the whole picture, including how to start a DAG run from a callback.

This module does not import Airflow (the emulator signs its callbacks with it and must start fast); the
exception classes are imported only when a callback is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from airflow_provider_akool.models import JobStatus

if TYPE_CHECKING:
    from airflow_provider_akool.exceptions import AkoolWebhookError

__all__ = [
    "AES_KEY_LENGTHS",
    "DEFAULT_MAX_AGE",
    "IV_LENGTH",
    "MAX_BODY_BYTES",
    "AkoolWebhookEvent",
    "AkoolWebhookVerifier",
    "build_callback",
    "callback_shape_problem",
    "compute_signature",
    "credentials_problem",
]

#: Seconds a callback's ``timestamp`` may be away from the receiver's clock, either way.
DEFAULT_MAX_AGE = 300.0
#: Callbacks are a few hundred bytes; anything far larger is refused before JSON parsing or decryption.
MAX_BODY_BYTES = 64 * 1024
AES_KEY_LENGTHS = (16, 24, 32)
IV_LENGTH = 16
_BLOCK_BYTES = 16
_MAX_TIMESTAMP_MS = 2**53 - 1
_SIGNATURE_SHAPE = re.compile(r"[0-9a-fA-F]{40}")
_ENDPOINT = "webhook"


# --- Errors -------------------------------------------------------------------------------------
# The exception classes live in ``exceptions`` (they derive from AirflowException); they are imported at
# the moment of raising so that importing this module, as the emulator does, never imports Airflow.


def _malformed(message: str) -> AkoolWebhookError:
    from airflow_provider_akool.exceptions import AkoolWebhookMalformedError

    return AkoolWebhookMalformedError(message, endpoint=_ENDPOINT)


def _bad_signature() -> AkoolWebhookError:
    from airflow_provider_akool.exceptions import AkoolWebhookSignatureError

    return AkoolWebhookSignatureError(
        "the signature does not match the callback's fields: the body was altered, or it was not signed "
        "for this clientId",
        endpoint=_ENDPOINT,
    )


def _stale(age: float, max_age: float) -> AkoolWebhookError:
    from airflow_provider_akool.exceptions import AkoolWebhookStaleError

    where = f"{age:.0f} s old" if age >= 0 else f"{-age:.0f} s in the future"
    return AkoolWebhookStaleError(
        f"the callback's timestamp is {where}; only callbacks within {max_age:g} s of this machine's clock "
        "are accepted (a replayed callback, or a clock that is off)",
        age_seconds=age,
        endpoint=_ENDPOINT,
    )


def _misconfigured(message: str) -> AkoolWebhookError:
    from airflow_provider_akool.exceptions import AkoolWebhookConfigurationError

    return AkoolWebhookConfigurationError(message, endpoint=_ENDPOINT)


# --- The scheme ---------------------------------------------------------------------------------


def _key_bytes(client_secret: str | bytes) -> bytes:
    return client_secret.encode("utf-8") if isinstance(client_secret, str) else bytes(client_secret)


def credentials_problem(client_id: str, client_secret: str | bytes) -> str | None:
    """
    Return why these credentials cannot sign or decrypt callbacks, or None when they can.

    The message names lengths only, never the secret.
    """
    if not isinstance(client_id, str) or not isinstance(client_secret, (str, bytes)):
        return "client_id and client_secret must be strings"
    key_length = len(_key_bytes(client_secret))
    if key_length not in AES_KEY_LENGTHS:
        return (
            f"client_secret must be 16, 24 or 32 bytes long to be an AES key (Akool's clientSecret has 24); "
            f"this one has {key_length}"
        )
    if len(client_id.encode("utf-8")) < IV_LENGTH:
        return (
            f"client_id must be at least {IV_LENGTH} bytes long: its first {IV_LENGTH} bytes are the AES IV"
        )
    return None


def _cipher(client_id: str, client_secret: str | bytes) -> Cipher[modes.CBC]:
    iv = client_id.encode("utf-8")[:IV_LENGTH]
    return Cipher(algorithms.AES(_key_bytes(client_secret)), modes.CBC(iv))


def compute_signature(client_id: str, timestamp: str, nonce: str, data_encrypt: str) -> str:
    """Return Akool's signature: SHA-1, lowercase hex, of the four strings sorted ascending and joined."""
    # Sorted by UTF-16 code units, the order of JavaScript's default sort; for the ASCII strings Akool
    # sends it is the same as Python's own order.
    parts = sorted(
        (client_id, timestamp, nonce, data_encrypt), key=lambda s: s.encode("utf-16-be", "surrogatepass")
    )
    # JSON may carry lone surrogates ("\ud800"); they must give a mismatch, never an encoding error.
    return hashlib.sha1("".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _encrypt(client_id: str, client_secret: str | bytes, plaintext: bytes) -> str:
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = _cipher(client_id, client_secret).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def _ciphertext(data_encrypt: str) -> bytes:
    """Return the bytes ``dataEncrypt`` stands for, if they can be AES-CBC output at all."""
    try:
        ciphertext = base64.b64decode(data_encrypt, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed("dataEncrypt is not valid base64") from None
    if not ciphertext or len(ciphertext) % _BLOCK_BYTES:
        raise _malformed(
            f"dataEncrypt is {len(ciphertext)} bytes, not a whole number of {_BLOCK_BYTES}-byte AES blocks"
        )
    return ciphertext


def _decrypt(client_id: str, client_secret: str | bytes, data_encrypt: str) -> bytes:
    ciphertext = _ciphertext(data_encrypt)
    decryptor = _cipher(client_id, client_secret).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise _malformed(
            "dataEncrypt does not decrypt to PKCS#7-padded data: it was encrypted with another clientSecret "
            "or clientId, or altered"
        ) from None


def build_callback(
    client_id: str,
    client_secret: str | bytes,
    data: Mapping[str, Any],
    *,
    timestamp_ms: int | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """
    Return the body Akool would POST for ``data``: ``{"signature", "dataEncrypt", "timestamp", "nonce"}``.

    The emulator sends these, and tests make their vectors with it (the example in Akool's documentation
    does not verify with the credentials shown there).

    :param data: the plain text, such as ``{"_id": ..., "status": 3, "type": "faceswap", "url": ...}``.
    :param timestamp_ms: the callback's time in milliseconds since the epoch; by default now.
    :param nonce: by default a random number of up to four digits, like Akool's.
    :raises AkoolWebhookConfigurationError: the credentials cannot be an AES key and IV.
    """
    problem = credentials_problem(client_id, client_secret)
    if problem:
        raise _misconfigured(problem)
    plaintext = json.dumps(dict(data), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    data_encrypt = _encrypt(client_id, client_secret, plaintext)
    stamp = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
    nonce = str(secrets.randbelow(10_000)) if nonce is None else nonce
    return {
        "signature": compute_signature(client_id, str(stamp), nonce, data_encrypt),
        "dataEncrypt": data_encrypt,
        "timestamp": stamp,
        "nonce": nonce,
    }


# --- The event ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AkoolWebhookEvent:
    """
    A verified, decrypted Akool callback.

    :param id: the job's ``_id``, as its submit returned it (for background change, the ``image_model_id``).
    :param status: the job's status; callbacks come for 2 (processing) as well as 3 and 4.
    :param type: what kind of job, as Akool names it (``faceswap`` for reage, ``background change``, ...);
        None if the callback did not say.
    :param url: the result, once the status is 3; None when absent or empty.
    :param timestamp_ms: when Akool sent the callback, in milliseconds since the epoch.
    :param nonce: the callback's nonce.
    :param payload: the whole decrypted object, read-only, for fields Akool may add.
    """

    id: str
    status: JobStatus
    type: str | None
    url: str | None
    timestamp_ms: int
    nonce: str
    payload: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_terminal(self) -> bool:
        """Whether the job has finished (success or failure)."""
        return self.status.is_terminal()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (a DAG run's ``conf``, an XCom), status as its label."""
        return {
            "id": self.id,
            "status": self.status.label,
            "type": self.type,
            "url": self.url,
            "timestamp_ms": self.timestamp_ms,
            "nonce": self.nonce,
        }


# --- Verification -------------------------------------------------------------------------------


def _encoded_size_over(body: Mapping[str, Any], limit: int) -> int | None:
    """
    Return the size the mapping would have as a JSON body once it passes ``limit`` bytes, else None.

    Encoded piece by piece and stopped as soon as the count passes the limit, so a huge mapping (many keys,
    or one enormous ``dataEncrypt``) costs no more than one of its pieces, never a decryption of it.
    """
    encoder = json.JSONEncoder(ensure_ascii=False, default=repr)
    size = 0
    for piece in encoder.iterencode(body):
        size += len(piece.encode("utf-8", "surrogatepass"))
        if size > limit:
            return size
    return None


def _load_body(body: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        # An already parsed body is held to the same cap as the bytes it came from.
        try:
            oversize = _encoded_size_over(body, MAX_BODY_BYTES)
        except (TypeError, ValueError, RecursionError):
            raise _malformed("the callback body is not a JSON object") from None
        if oversize is not None:
            raise _malformed(
                f"the callback body is more than the {MAX_BODY_BYTES} bytes accepted (at least {oversize})"
            )
        return body
    if isinstance(body, str):
        raw: bytes = body.encode("utf-8", "surrogatepass")
    elif isinstance(body, (bytes, bytearray, memoryview)):
        raw = bytes(body)
    else:
        raise _malformed(f"the callback body must be bytes, str or a mapping, not {type(body).__name__}")
    if len(raw) > MAX_BODY_BYTES:
        raise _malformed(f"the callback body is {len(raw)} bytes, more than the {MAX_BODY_BYTES} accepted")
    try:
        loaded = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _malformed("the callback body is not JSON") from None
    if not isinstance(loaded, dict):
        raise _malformed("the callback body is JSON but not an object")
    return loaded


def _text_field(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise _malformed(f"the callback lacks {name!r}")
    if not isinstance(value, str) or not value:
        raise _malformed(f"the callback's {name!r} must be a non-empty string")
    return value


def _timestamp_field(body: Mapping[str, Any]) -> tuple[str, int]:
    """Return the timestamp as the text that was signed, and as milliseconds."""
    value = body.get("timestamp")
    if value is None:
        raise _malformed("the callback lacks 'timestamp'")
    # Akool sends a JSON number; its signature uses the number's decimal text. A float that holds an
    # integer (1710757981609.0) is the same number in JavaScript, so it is taken as that integer.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        text, number = str(value), value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 16:
        text, number = value, int(value)
    else:
        raise _malformed("the callback's 'timestamp' must be an integer number of milliseconds")
    # Bounded like a JavaScript integer, so arithmetic on it stays exact and never overflows a float.
    if not 0 <= number <= _MAX_TIMESTAMP_MS:
        raise _malformed("the callback's 'timestamp' is not a time in milliseconds since the epoch")
    return text, number


def _nonce_field(body: Mapping[str, Any]) -> str:
    value = body.get("nonce")
    if value is None:
        raise _malformed("the callback lacks 'nonce'")
    # Documented as a string; a number would be signed as its decimal text, so take that too.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise _malformed("the callback's 'nonce' must be a non-empty string")
    return value


@dataclass(frozen=True)
class _SignedFields:
    """The four fields of a callback body, read but not verified."""

    signature: str
    data_encrypt: str
    timestamp_text: str
    timestamp_ms: int
    nonce: str


def _signed_fields(body: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> _SignedFields:
    fields = _load_body(body)
    signature = _text_field(fields, "signature")
    data_encrypt = _text_field(fields, "dataEncrypt")
    timestamp_text, timestamp_ms = _timestamp_field(fields)
    return _SignedFields(signature, data_encrypt, timestamp_text, timestamp_ms, _nonce_field(fields))


def callback_shape_problem(body: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> str | None:
    """
    Return why ``body`` cannot be one of Akool's callbacks, judged by its shape alone, or None.

    What a receiver checks before it looks up any credentials: a JSON object of at most 64 KiB with the four
    fields, a signature of 40 hexadecimal digits (a SHA-1), and a ``dataEncrypt`` that is base64 of whole
    AES blocks. Needs no key and proves nothing: :meth:`AkoolWebhookVerifier.verify` does.
    """
    from airflow_provider_akool.exceptions import AkoolWebhookError

    try:
        fields = _signed_fields(body)
        _ciphertext(fields.data_encrypt)
    except AkoolWebhookError as error:
        return str(error)
    if not _SIGNATURE_SHAPE.fullmatch(fields.signature.strip()):
        return "the signature is not 40 hexadecimal digits (a SHA-1)"
    return None


def _parse_plaintext(plaintext: bytes, timestamp_ms: int, nonce: str) -> AkoolWebhookEvent:
    try:
        data = json.loads(plaintext.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _malformed("the decrypted dataEncrypt is not JSON") from None
    if not isinstance(data, dict):
        raise _malformed("the decrypted dataEncrypt is JSON but not an object")
    job_id = data.get("_id")
    if not isinstance(job_id, str) or not job_id:
        raise _malformed("the decrypted dataEncrypt lacks a string '_id'")
    raw_status = data.get("status")
    # Documented as a number; a string of one digit is taken as well, since it cannot mean anything else.
    if isinstance(raw_status, str) and raw_status.strip().isdigit():
        raw_status = int(raw_status.strip())
    if isinstance(raw_status, bool) or not isinstance(raw_status, int):
        raise _malformed("the decrypted dataEncrypt lacks an integer 'status'")
    try:
        status = JobStatus(raw_status)
    except ValueError:
        raise _malformed(f"the decrypted dataEncrypt has an unknown status {raw_status}") from None
    kind = data.get("type")
    url = data.get("url")
    if kind is not None and not isinstance(kind, str):
        raise _malformed("the decrypted dataEncrypt has a 'type' that is not a string")
    if url is not None and not isinstance(url, str):
        raise _malformed("the decrypted dataEncrypt has a 'url' that is not a string")
    return AkoolWebhookEvent(
        id=job_id,
        status=status,
        type=kind or None,
        url=url or None,
        timestamp_ms=timestamp_ms,
        nonce=nonce,
        payload=MappingProxyType(data),
    )


class AkoolWebhookVerifier:
    """
    Verify, decrypt and parse Akool's webhook callbacks for one account.

    Checks, in order: the body is a JSON object with the four fields; the signature matches (compared in
    constant time); the timestamp is within ``max_age`` of ``clock()`` either way; ``dataEncrypt``
    decrypts; the plain text has an ``_id`` and a known ``status``. The verifier keeps no state, so one
    instance can serve every request and thread.

    Akool may send the same callback more than once (it retries until it gets HTTP 200): treat events as
    idempotent, keyed by ``(id, status)``.

    :param client_id: the account's clientId (its first 16 bytes are the AES IV).
    :param client_secret: the account's clientSecret, which is also its API key (16, 24 or 32 bytes).
    :param max_age: seconds the callback's timestamp may be away from ``clock()``, past or future;
        None turns the check off (for callbacks that were stored and are verified later).
    :param clock: returns the current time in seconds since the epoch; tests pass a fixed one.
    :raises AkoolWebhookConfigurationError: the credentials cannot be an AES key and IV, or ``max_age``
        is not a positive number.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str | bytes,
        *,
        max_age: float | None = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        problem = credentials_problem(client_id, client_secret)
        if problem:
            raise _misconfigured(problem)
        if max_age is not None and (
            isinstance(max_age, bool)
            or not isinstance(max_age, (int, float))
            or not 0 < max_age < float("inf")
        ):
            raise _misconfigured(f"max_age must be a positive number of seconds or None; got {max_age!r}")
        self.client_id = client_id
        self._client_secret = client_secret
        self.max_age = max_age
        self.clock = clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.client_id!r}, max_age={self.max_age!r})"

    def verify(self, body: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> AkoolWebhookEvent:
        """
        Return the event a callback carries, or raise why it is refused.

        :param body: the request body as received (bytes or text), or already parsed into a mapping;
            either is refused past 64 KiB (a mapping measured as the JSON it stands for).
        :raises AkoolWebhookMalformedError: not of Akool's form, or ``dataEncrypt`` does not decrypt.
        :raises AkoolWebhookSignatureError: the signature does not match.
        :raises AkoolWebhookStaleError: the timestamp is outside the freshness window.
        """
        fields = _signed_fields(body)
        expected = compute_signature(self.client_id, fields.timestamp_text, fields.nonce, fields.data_encrypt)
        # Bytes on both sides: compare_digest refuses str with non-ASCII characters, and a forged
        # signature may hold any. Hex case carries no meaning, so upper case is accepted.
        if not hmac.compare_digest(
            expected.encode("ascii"), fields.signature.strip().lower().encode("utf-8", "surrogatepass")
        ):
            raise _bad_signature()

        # Checked after the signature, so a timestamp that was altered reports as tampering, not as age.
        if self.max_age is not None:
            age = self.clock() - fields.timestamp_ms / 1000.0
            if not abs(age) <= self.max_age:
                raise _stale(age, self.max_age)

        plaintext = _decrypt(self.client_id, self._client_secret, fields.data_encrypt)
        return _parse_plaintext(plaintext, fields.timestamp_ms, fields.nonce)
