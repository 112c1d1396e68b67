"""Verifying Akool's webhook callbacks: good ones pass, tampered, stale and malformed ones are refused."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_akool.exceptions import (
    AkoolError,
    AkoolWebhookConfigurationError,
    AkoolWebhookError,
    AkoolWebhookMalformedError,
    AkoolWebhookSignatureError,
    AkoolWebhookStaleError,
)
from airflow_provider_akool.models import JobStatus
from airflow_provider_akool.webhook import (
    DEFAULT_MAX_AGE,
    MAX_BODY_BYTES,
    AkoolWebhookEvent,
    AkoolWebhookVerifier,
    build_callback,
    callback_shape_problem,
    compute_signature,
)
from airflow_provider_akool.webhook import signing as webhook_module

CLIENT_ID = "akool-client-id-0001"
SECRET = "0123456789abcdefghijklmn"  # 24 bytes, like Akool's clientSecret: AES-192
JOB_ID = "6593c94c0ef703e8c055e3c8"
RESULT = "https://example.test/final.jpg"
DATA = {"_id": JOB_ID, "status": 3, "type": "faceswap", "url": RESULT}
NOW_MS = 1710757981609

# A known-answer vector made outside Python, so that build_callback and the verifier cannot agree on a
# mistake: the plain text below encrypted with
#   openssl enc -aes-192-cbc -K <hex of SECRET> -iv <hex of CLIENT_ID[:16]> -base64 -A
# and signed with
#   printf '%s\n' "$CLIENT_ID" "$TIMESTAMP" "$NONCE" "$DATA_ENCRYPT" | LC_ALL=C sort | tr -d '\n' | sha1sum
OPENSSL_PLAINTEXT = (
    '{"_id":"6593c94c0ef703e8c055e3c8","status":3,"type":"faceswap","url":"https://example.test/final.jpg"}'
)
OPENSSL_VECTOR = {
    "signature": "8f7e854820bf7b9bfe8501b42907a11b4833ec3d",
    "dataEncrypt": (
        "5+DYcvpAVr3JufSv6qfxEZry97FdJl8QIyb2asSnp2EqoMM/BoeK04x8BRowB9wBHsNTBVMZ4AdqmPTNK54FdnT5V3VYLnMx"
        "gWUGFcqk6nQhjSq7vJtFtBvVxwXGFzZ6ta3BGixLYAhjY+WDKrN9eA=="
    ),
    "timestamp": NOW_MS,
    "nonce": "1529",
}


def verifier(**kwargs: Any) -> AkoolWebhookVerifier:
    kwargs.setdefault("clock", lambda: NOW_MS / 1000)
    return AkoolWebhookVerifier(CLIENT_ID, SECRET, **kwargs)


def callback(data: Any = None, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("timestamp_ms", NOW_MS)
    kwargs.setdefault("nonce", "1529")
    return build_callback(CLIENT_ID, SECRET, DATA if data is None else data, **kwargs)


# --- An independent implementation of the scheme, straight from AKOOL_API.md --------------------------


def reference_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def reference_encrypt(plaintext: bytes, *, pad: bool = True, secret: str = SECRET) -> str:
    if pad:
        padder = padding.PKCS7(128).padder()
        plaintext = padder.update(plaintext) + padder.finalize()
    cipher = Cipher(algorithms.AES(secret.encode()), modes.CBC(CLIENT_ID.encode()[:16]))
    encryptor = cipher.encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode()


def reference_decrypt(data_encrypt: str) -> bytes:
    cipher = Cipher(algorithms.AES(SECRET.encode()), modes.CBC(CLIENT_ID.encode()[:16]))
    decryptor = cipher.decryptor()
    padded = decryptor.update(base64.b64decode(data_encrypt)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def signed(data_encrypt: str, timestamp: Any = NOW_MS, nonce: Any = "1529") -> dict[str, Any]:
    """A body around any dataEncrypt, correctly signed (as anyone who knows the clientId can do)."""
    return {
        "signature": reference_signature(CLIENT_ID, str(timestamp), str(nonce), data_encrypt),
        "dataEncrypt": data_encrypt,
        "timestamp": timestamp,
        "nonce": nonce,
    }


# --- Good callbacks -----------------------------------------------------------------------------------


def test_the_openssl_vector_verifies() -> None:
    event = verifier().verify(json.dumps(OPENSSL_VECTOR).encode())
    assert event == AkoolWebhookEvent(
        id=JOB_ID, status=JobStatus.SUCCESS, type="faceswap", url=RESULT, timestamp_ms=NOW_MS, nonce="1529"
    )
    assert dict(event.payload) == json.loads(OPENSSL_PLAINTEXT)


def test_build_callback_reproduces_the_openssl_vector() -> None:
    assert callback() == OPENSSL_VECTOR


def test_build_callback_follows_the_scheme_by_an_independent_implementation() -> None:
    data = {"_id": JOB_ID, "status": 2, "type": "background change", "url": ""}
    body = build_callback(CLIENT_ID, SECRET, data)
    assert set(body) == {"signature", "dataEncrypt", "timestamp", "nonce"}
    assert isinstance(body["timestamp"], int)
    assert isinstance(body["nonce"], str)
    assert json.loads(reference_decrypt(body["dataEncrypt"])) == data
    assert body["signature"] == reference_signature(
        CLIENT_ID, str(body["timestamp"]), body["nonce"], body["dataEncrypt"]
    )


@pytest.mark.parametrize(
    "as_body",
    [
        lambda body: json.dumps(body).encode(),
        lambda body: json.dumps(body),
        lambda body: bytearray(json.dumps(body).encode()),
        lambda body: memoryview(json.dumps(body).encode()),
        lambda body: body,
    ],
    ids=["bytes", "str", "bytearray", "memoryview", "mapping"],
)
def test_a_good_callback_verifies_in_any_form_of_body(as_body: Callable[[dict[str, Any]], Any]) -> None:
    event = verifier().verify(as_body(callback()))
    assert (event.id, event.status, event.type, event.url) == (JOB_ID, JobStatus.SUCCESS, "faceswap", RESULT)
    assert event.is_terminal


def test_a_processing_callback_verifies_and_has_no_url() -> None:
    event = verifier().verify(callback({"_id": JOB_ID, "status": 2, "type": "faceswap", "url": ""}))
    assert (event.status, event.url, event.is_terminal) == (JobStatus.PROCESSING, None, False)


def test_fields_beyond_the_documented_ones_are_kept_in_the_payload() -> None:
    event = verifier().verify(callback({**DATA, "msg": "done"}))
    assert event.payload["msg"] == "done"
    with pytest.raises(TypeError):
        event.payload["msg"] = "changed"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.status = JobStatus.FAILED  # type: ignore[misc]


def test_type_and_url_may_be_absent() -> None:
    event = verifier().verify(callback({"_id": JOB_ID, "status": 4}))
    assert (event.status, event.type, event.url) == (JobStatus.FAILED, None, None)


def test_the_event_becomes_a_json_dict_with_the_status_label() -> None:
    event = verifier().verify(callback())
    assert json.loads(json.dumps(event.to_dict())) == {
        "id": JOB_ID,
        "status": "success",
        "type": "faceswap",
        "url": RESULT,
        "timestamp_ms": NOW_MS,
        "nonce": "1529",
    }


def test_a_timestamp_or_nonce_sent_in_another_json_type_is_signed_as_its_text() -> None:
    data_encrypt = callback()["dataEncrypt"]
    assert verifier().verify(signed(data_encrypt, timestamp=str(NOW_MS))).timestamp_ms == NOW_MS
    assert verifier().verify(signed(data_encrypt, timestamp=NOW_MS, nonce=1529)).nonce == "1529"
    body = signed(data_encrypt)
    body["timestamp"] = float(NOW_MS)
    assert verifier().verify(body).timestamp_ms == NOW_MS


def test_an_upper_case_signature_is_the_same_signature() -> None:
    body = callback()
    body["signature"] = body["signature"].upper()
    assert verifier().verify(body).id == JOB_ID


@pytest.mark.parametrize("secret", ["k" * 16, "k" * 24, "k" * 32, b"k" * 32])
def test_aes_128_192_and_256_keys_all_work(secret: str | bytes) -> None:
    body = build_callback(CLIENT_ID, secret, DATA)
    assert AkoolWebhookVerifier(CLIENT_ID, secret).verify(body).url == RESULT


def test_the_signature_sorts_like_javascript() -> None:
    # U+FFFF sorts after U+10000 by UTF-16 code units (JavaScript), before it by code points (Python).
    high, astral = "\uffff", "\U00010000"
    expected = hashlib.sha1(("a" + "b" + astral + high).encode()).hexdigest()
    assert compute_signature("a", "b", high, astral) == expected


# --- Tampered callbacks ---------------------------------------------------------------------------


def flip(text: str, index: int) -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    char = text[index]
    replacement = alphabet[(alphabet.index(char) + 1) % len(alphabet)] if char in alphabet else "A"
    return text[:index] + replacement + text[index + 1 :]


@pytest.mark.parametrize(
    ("field", "tamper"),
    [
        ("signature", lambda v: flip(v, 0)),
        ("signature", lambda v: flip(v, -1)),
        ("signature", lambda v: v[:-1]),
        ("signature", lambda v: v + "0"),
        ("signature", lambda v: "é" * 40),
        ("dataEncrypt", lambda v: flip(v, 0)),
        ("dataEncrypt", lambda v: flip(v, 40)),
        ("timestamp", lambda v: v + 1),
        ("timestamp", lambda v: v - 1000),
        ("nonce", lambda v: v + "0"),
        ("nonce", lambda v: flip(v, 0)),
    ],
)
def test_a_callback_with_any_field_changed_is_refused_as_tampered(
    field: str, tamper: Callable[[Any], Any]
) -> None:
    body = callback()
    body[field] = tamper(body[field])
    with pytest.raises(AkoolWebhookSignatureError, match="signature does not match"):
        verifier().verify(body)


def test_a_callback_signed_for_another_client_id_is_refused() -> None:
    body = build_callback("another-client-id-000", SECRET, DATA, timestamp_ms=NOW_MS)
    with pytest.raises(AkoolWebhookSignatureError):
        verifier().verify(body)


def test_altered_data_with_a_recomputed_signature_does_not_decrypt() -> None:
    # The signature has no secret in it; the encryption is what a forger without the secret cannot redo.
    data_encrypt = callback()["dataEncrypt"]
    raw = bytearray(base64.b64decode(data_encrypt))
    raw[0] ^= 0x01
    with pytest.raises(AkoolWebhookMalformedError):
        verifier().verify(signed(base64.b64encode(bytes(raw)).decode()))


def test_data_encrypted_with_another_secret_is_refused() -> None:
    data_encrypt = reference_encrypt(OPENSSL_PLAINTEXT.encode(), secret="another-secret-24-bytes!")
    with pytest.raises(AkoolWebhookMalformedError, match=r"decrypt|not JSON"):
        verifier().verify(signed(data_encrypt))


# --- Freshness --------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-DEFAULT_MAX_AGE, 0.0, DEFAULT_MAX_AGE])
def test_a_callback_within_the_window_either_way_is_fresh(offset: float) -> None:
    assert verifier(clock=lambda: NOW_MS / 1000 + offset).verify(callback()).id == JOB_ID


def test_a_stale_callback_is_refused_with_its_age() -> None:
    with pytest.raises(AkoolWebhookStaleError, match=r"301 s old") as caught:
        verifier(clock=lambda: NOW_MS / 1000 + 301).verify(callback())
    assert caught.value.age_seconds == pytest.approx(301)


def test_a_callback_from_the_future_is_refused() -> None:
    with pytest.raises(AkoolWebhookStaleError, match=r"301 s in the future") as caught:
        verifier(clock=lambda: NOW_MS / 1000 - 301).verify(callback())
    assert caught.value.age_seconds == pytest.approx(-301)


def test_the_window_is_configurable_and_can_be_turned_off() -> None:
    with pytest.raises(AkoolWebhookStaleError):
        verifier(max_age=10, clock=lambda: NOW_MS / 1000 + 11).verify(callback())
    year_later = NOW_MS / 1000 + 365 * 24 * 3600
    assert verifier(max_age=None, clock=lambda: year_later).verify(callback()).id == JOB_ID


def test_the_default_clock_is_the_wall_clock() -> None:
    assert (
        AkoolWebhookVerifier(CLIENT_ID, SECRET).verify(build_callback(CLIENT_ID, SECRET, DATA)).id == JOB_ID
    )
    with pytest.raises(AkoolWebhookStaleError):
        AkoolWebhookVerifier(CLIENT_ID, SECRET).verify(callback())  # signed in March 2024


def test_a_stale_timestamp_that_was_altered_reports_tampering_not_age() -> None:
    body = callback()
    body["timestamp"] -= 3_600_000
    with pytest.raises(AkoolWebhookSignatureError):
        verifier().verify(body)


# --- Malformed callbacks -----------------------------------------------------------------------------


def without(name: str) -> dict[str, Any]:
    body = callback()
    del body[name]
    return body


def replaced(**fields: Any) -> dict[str, Any]:
    return {**callback(), **fields}


def encrypted_plaintext(plaintext: bytes) -> dict[str, Any]:
    return signed(reference_encrypt(plaintext))


MALFORMED: dict[str, tuple[Any, str]] = {
    "not JSON": (b"signature=abc&nonce=1", "not JSON"),
    "not UTF-8": (b"\xff\xfe{}", "not JSON"),
    "a JSON array": (b"[]", "not an object"),
    "an int body": (42, "bytes, str or a mapping"),
    "too large": (b" " * (MAX_BODY_BYTES + 1), "more than"),
    "no signature": (without("signature"), "lacks 'signature'"),
    "no dataEncrypt": (without("dataEncrypt"), "lacks 'dataEncrypt'"),
    "no timestamp": (without("timestamp"), "lacks 'timestamp'"),
    "no nonce": (without("nonce"), "lacks 'nonce'"),
    "signature not a string": (replaced(signature=123), "'signature' must be"),
    "empty dataEncrypt": (replaced(dataEncrypt=""), "'dataEncrypt' must be"),
    "timestamp a bool": (replaced(timestamp=True), "'timestamp' must be"),
    "timestamp a word": (replaced(timestamp="soon"), "'timestamp' must be"),
    "timestamp a fraction": (replaced(timestamp=1.5), "'timestamp' must be"),
    "timestamp negative": (replaced(timestamp=-1), "not a time"),
    "timestamp huge": (replaced(timestamp=10**400), "not a time"),
    "nonce a list": (replaced(nonce=[1]), "'nonce' must be"),
    "dataEncrypt not base64": (signed("not base64!"), "not valid base64"),
    "dataEncrypt not whole blocks": (signed(base64.b64encode(b"x" * 15).decode()), "whole number"),
    "bad padding": (signed(reference_encrypt(b"0123456789abcde\x00", pad=False)), "PKCS#7"),
    "plaintext not JSON": (encrypted_plaintext(b"hello"), "not JSON"),
    "plaintext not an object": (encrypted_plaintext(b"[1, 2]"), "not an object"),
    "plaintext without _id": (encrypted_plaintext(b'{"status": 3}'), "'_id'"),
    "plaintext without status": (encrypted_plaintext(b'{"_id": "a"}'), "'status'"),
    "plaintext status a bool": (encrypted_plaintext(b'{"_id": "a", "status": true}'), "'status'"),
    "plaintext status unknown": (encrypted_plaintext(b'{"_id": "a", "status": 7}'), "unknown status 7"),
    "plaintext type a number": (encrypted_plaintext(b'{"_id": "a", "status": 3, "type": 1}'), "'type'"),
    "plaintext url a list": (encrypted_plaintext(b'{"_id": "a", "status": 3, "url": []}'), "'url'"),
}


@pytest.mark.parametrize(("body", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_callback_is_refused_with_a_clear_reason(body: Any, message: str) -> None:
    with pytest.raises(AkoolWebhookMalformedError, match=message) as caught:
        verifier().verify(body)
    assert isinstance(caught.value, AkoolWebhookError)
    assert isinstance(caught.value, AkoolError)
    assert str(caught.value).startswith("Akool [webhook]: ")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "not JSON"),
        (without("nonce"), "lacks 'nonce'"),
        (replaced(signature="forged"), "40 hexadecimal digits"),
        (replaced(signature="0" * 39), "40 hexadecimal digits"),
        (replaced(dataEncrypt="not base64!"), "not valid base64"),
        (replaced(dataEncrypt="AAAA"), "whole number of 16-byte AES blocks"),
    ],
    ids=["not json", "no nonce", "no sha1", "short sha1", "not base64", "not whole blocks"],
)
def test_the_shape_of_a_body_is_judged_without_any_key(body: Any, problem: str) -> None:
    found = callback_shape_problem(json.dumps(body) if isinstance(body, dict) else body)
    assert found is not None
    assert problem in found


def test_a_genuine_body_and_any_well_shaped_forgery_pass_the_shape_check() -> None:
    # The shape proves nothing: a forged signature of the right form passes, and verify() refuses it.
    assert callback_shape_problem(json.dumps(callback())) is None
    assert callback_shape_problem(replaced(signature="A" * 40)) is None


def test_a_status_sent_as_a_digit_string_is_read_as_the_number() -> None:
    event = verifier().verify(encrypted_plaintext(b'{"_id": "a", "status": "2"}'))
    assert event.status is JobStatus.PROCESSING


# --- Credentials and settings ---------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", "k" * 15, "k" * 17, "emulator-api-key-0123456789", "k" * 33, "é" * 9])
def test_a_secret_that_is_no_aes_key_is_refused_at_once(secret: str) -> None:
    with pytest.raises(AkoolWebhookConfigurationError, match="16, 24 or 32 bytes") as caught:
        AkoolWebhookVerifier(CLIENT_ID, secret)
    assert isinstance(caught.value, ValueError)
    if secret:
        assert secret not in str(caught.value)
    with pytest.raises(AkoolWebhookConfigurationError):
        build_callback(CLIENT_ID, secret, DATA)


def test_a_client_id_too_short_for_the_iv_is_refused() -> None:
    with pytest.raises(AkoolWebhookConfigurationError, match="at least 16 bytes"):
        AkoolWebhookVerifier("short-id", SECRET)


@pytest.mark.parametrize("max_age", [0, -1, float("inf"), float("nan"), True, "300"])
def test_a_max_age_that_is_no_positive_number_is_refused(max_age: Any) -> None:
    with pytest.raises(AkoolWebhookConfigurationError, match="max_age"):
        verifier(max_age=max_age)


# --- Secrets and errors ---------------------------------------------------------------------------


def all_rejections() -> Iterator[AkoolWebhookError]:
    bodies: list[Any] = [body for body, _ in MALFORMED.values()]
    bodies += [replaced(signature="0" * 40), replaced(nonce="tampered")]
    for body in bodies:
        try:
            verifier().verify(body)
        except AkoolWebhookError as err:
            yield err
    try:
        verifier(clock=lambda: 0.0).verify(callback())
    except AkoolWebhookError as err:
        yield err


def test_no_rejection_and_no_repr_reveals_the_secret() -> None:
    errors = list(all_rejections())
    assert len(errors) == len(MALFORMED) + 3
    for err in errors:
        assert SECRET not in str(err)
        assert SECRET not in repr(err)
    assert SECRET not in repr(verifier())


def test_rejections_survive_pickling_with_their_class_and_age() -> None:
    for err in all_rejections():
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err)
        assert str(copy) == str(err)
        if isinstance(err, AkoolWebhookStaleError):
            assert isinstance(copy, AkoolWebhookStaleError)
            assert copy.age_seconds == err.age_seconds


@contextmanager
def c_calls() -> Iterator[list[Any]]:
    """Record every C function called meanwhile (a profiler hook: nothing is patched)."""
    seen: list[Any] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call":
            seen.append(arg)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(previous)


def test_signatures_are_compared_with_compare_digest_whether_they_match_or_not() -> None:
    good, bad = callback(), replaced(signature="0" * 40)
    with c_calls() as seen:
        verifier().verify(good)
    assert hmac.compare_digest in seen
    with c_calls() as seen, pytest.raises(AkoolWebhookSignatureError):
        verifier().verify(bad)
    assert hmac.compare_digest in seen


@pytest.mark.parametrize(
    "signature", ["", "0", "0" * 40, "0" * 4000, "é" * 40, "\x00" * 40, " " * 40, "\ud800" * 40]
)
def test_any_wrong_signature_is_a_signature_error_never_a_crash(signature: str) -> None:
    body = replaced(signature=signature)
    expected = AkoolWebhookSignatureError if signature else AkoolWebhookMalformedError
    with pytest.raises(expected):
        verifier().verify(body)


@pytest.mark.parametrize("field", ["nonce", "dataEncrypt", "signature"])
def test_a_lone_surrogate_from_a_json_escape_is_a_mismatch_not_a_crash(field: str) -> None:
    body = callback()
    raw = json.dumps(body).replace(json.dumps(body[field]), '"\\ud800' + body[field][1:] + '"')
    assert "\\ud800" in raw
    with pytest.raises(AkoolWebhookSignatureError):
        verifier().verify(raw)


def test_the_module_does_not_import_airflow() -> None:
    # The emulator signs callbacks with it and must start without Airflow's slow, side-effecting import.
    code = (
        "import sys, airflow_provider_akool.webhook as w\n"
        "w.build_callback('akool-client-id-0001', 'k' * 24, {'_id': 'a', 'status': 3})\n"
        "assert not [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


#: Every public name ``airflow_provider_akool.webhook`` had as one module (before issue 21's package).
PUBLIC_NAMES = [
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


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_the_public_path_keeps_each_name_of_the_module_without_a_warning(name: str) -> None:
    # The documented path did not move: the package re-exports the scheme, the very objects, not copies.
    code = (
        "import warnings\n"
        "warnings.simplefilter('error')\n"
        f"from airflow_provider_akool.webhook import {name} as public\n"
        f"from airflow_provider_akool.webhook.signing import {name} as own\n"
        "assert public is own\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- Properties -------------------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    job_id=texts.filter(bool),
    status=st.sampled_from(list(JobStatus)),
    kind=texts,
    url=texts,
    nonce=texts.filter(bool),
    timestamp_ms=st.integers(0, 2**53 - 1),
)
def test_any_callback_built_verifies_to_its_data(
    job_id: str, status: JobStatus, kind: str, url: str, nonce: str, timestamp_ms: int
) -> None:
    data = {"_id": job_id, "status": int(status), "type": kind, "url": url}
    body = build_callback(CLIENT_ID, SECRET, data, timestamp_ms=timestamp_ms, nonce=nonce)
    event = AkoolWebhookVerifier(CLIENT_ID, SECRET, max_age=None).verify(json.dumps(body))
    assert (event.id, event.status, event.type, event.url) == (job_id, status, kind or None, url or None)
    assert (event.timestamp_ms, event.nonce) == (timestamp_ms, nonce)


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["signature", "dataEncrypt", "timestamp", "nonce"]),
    position=st.integers(0, 10_000),
    replacement=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.characters(categories=("Cs",)),
)
def test_any_one_character_change_is_refused_as_an_akool_error(
    field: str, position: int, replacement: str
) -> None:
    body = callback()
    text = str(body[field])
    index = position % len(text)
    if text[index] == replacement or (field == "signature" and text[index] == replacement.lower()):
        return
    body[field] = text[:index] + replacement + text[index + 1 :]
    with pytest.raises(AkoolWebhookError):
        verifier(max_age=None).verify(body)


# --- The body cap holds for a mapping handed in already parsed (issue 10) ------------------------------


@pytest.mark.parametrize(
    "body",
    [
        # A genuine, signed callback with a 20 MB field beside it: the bytes it came from were too large.
        pytest.param(lambda: {**callback(), "padding": "x" * 20_000_000}, id="genuine-with-a-huge-field"),
        # A 20 MB dataEncrypt: refused before any hashing, base64 or AES over it.
        pytest.param(lambda: signed("A" * 20_000_000), id="huge-dataEncrypt"),
        pytest.param(lambda: {**callback(), **{f"k{i}": i for i in range(200_000)}}, id="many-keys"),
        pytest.param(lambda: {**callback(), "nested": [[["x" * 1000] * 100] * 100]}, id="nested"),
    ],
)
def test_a_parsed_mapping_is_held_to_the_same_cap_as_bytes(
    body: Callable[[], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    mapping = body()
    encoded: list[int] = []

    class CountingEncoder(json.JSONEncoder):
        def iterencode(self, o: Any, _one_shot: bool = False) -> Iterator[str]:
            for piece in super().iterencode(o, _one_shot):
                encoded.append(len(piece.encode("utf-8", "surrogatepass")))
                yield piece

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an oversized body reached the signature or the decryption")

    monkeypatch.setattr(webhook_module.json, "JSONEncoder", CountingEncoder)
    monkeypatch.setattr(webhook_module, "compute_signature", never)
    monkeypatch.setattr(webhook_module, "_cipher", never)
    with pytest.raises(AkoolWebhookMalformedError, match=f"more than the {MAX_BODY_BYTES} bytes accepted"):
        verifier().verify(mapping)
    # Refused at the first piece that took it past the cap: what came before it fits under the cap. (Counted
    # in pieces, not seconds, so that a busy machine does not change the outcome.)
    assert encoded
    assert sum(encoded[:-1]) <= MAX_BODY_BYTES < sum(encoded)


def test_a_parsed_mapping_just_under_the_cap_still_verifies() -> None:
    genuine = callback()
    room = MAX_BODY_BYTES - len(json.dumps(genuine, ensure_ascii=False).encode()) - len(', "padding": ""')
    event = verifier().verify({**genuine, "padding": "x" * room})
    assert event.id == DATA["_id"]
