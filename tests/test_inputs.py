"""
Media inputs from object storage (``inputs.py``), against a real S3 API on loopback (moto's server).

The signed URL must download the object itself, a missing object or refused credentials must fail before
anything is submitted, a store that cannot sign must fail before any request naming the parameter, and the
signed URL must never reach logs, XCom or rendered fields.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from airflow.sdk import ObjectStoragePath

from airflow_provider_akool import inputs
from airflow_provider_akool.exceptions import AkoolInputError, AkoolValidationError
from tests.support.connections import S3_CONN_ID
from tests.support.s3_objects import BUCKET, put


def signature_values(url: str) -> list[str]:
    """The access-granting values of a signed URL's query (SigV2 or SigV4)."""
    query = parse_qs(urlsplit(url).query)
    return [value for key, values in query.items() if "signature" in key.lower() for value in values]


# --- What is accepted, what fails before any request ------------------------------------------------


def test_http_urls_and_signable_object_uris_are_accepted_as_they_are(s3: Any) -> None:
    assert inputs.check_media("modify_image", " https://example.com/a.jpg ") == "https://example.com/a.jpg"
    uri = f"s3://{S3_CONN_ID}@bucket/a.jpg"
    assert inputs.check_media("modify_image", uri) == uri
    path = ObjectStoragePath(uri)
    assert inputs.check_media("origin_img", path) is path


@pytest.mark.parametrize(
    "value",
    [
        "/data/faces/a.jpg",
        "~/a.jpg",
        "file:///data/faces/a.jpg",
        "memory://bucket/a.jpg",
        "ftp://example.com/a.jpg",
        Path("/data/faces/a.jpg"),
        ObjectStoragePath("file:///data/faces/a.jpg"),
    ],
    ids=["local_path", "home_path", "file_uri", "memory", "ftp", "pathlib", "object_storage_path_file"],
)
def test_a_store_that_cannot_sign_fails_naming_the_parameter_and_the_allowed_form(
    value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not a request of any kind: the check looks at the form only.
    monkeypatch.setattr(requests.Session, "request", _no_request)
    with pytest.raises(AkoolValidationError) as caught:
        inputs.check_media("modify_image", value)
    message = str(caught.value)
    assert message.startswith("Akool: modify_image must be an http(s) URL, or an object-storage URI")
    assert "s3://aws_default@bucket/key" in message
    with pytest.raises(AkoolValidationError):
        inputs.signed_url("modify_image", value, expiry=60)


def _no_request(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("no request may be sent for a value of the wrong form")


def test_a_uri_naming_a_missing_connection_fails_before_any_request() -> None:
    with pytest.raises(AkoolValidationError, match=r"template_url .*'no_such_conn', which does not exist"):
        inputs.check_media("template_url", "s3://no_such_conn@bucket/a.jpg")


@pytest.mark.parametrize("value", [0, -5, "soon", 7 * 24 * 3600 + 1, timedelta(days=8)])
def test_input_url_expiry_must_be_positive_and_at_most_seven_days(value: Any) -> None:
    with pytest.raises(AkoolValidationError, match="input_url_expiry must be a positive number"):
        inputs.expiry_seconds(value)


def test_input_url_expiry_takes_seconds_or_a_timedelta() -> None:
    assert inputs.expiry_seconds(timedelta(hours=2)) == 7200
    assert inputs.expiry_seconds("600") == 600
    assert inputs.DEFAULT_INPUT_URL_EXPIRY == 24 * 3600


# --- Signing against the S3 server ------------------------------------------------------------------


def test_the_signed_url_downloads_the_object_and_expires_when_asked(bucket: Any) -> None:
    data = b"\xff\xd8portrait bytes " + uuid.uuid4().bytes
    uri = put(bucket, data)
    before = time.time()
    url = inputs.signed_url("modify_image", uri, expiry=3600)
    assert url.startswith("http://127.0.0.1:")
    assert signature_values(url), url
    assert requests.get(url, timeout=10).content == data
    query = parse_qs(urlsplit(url).query)
    if "X-Amz-Expires" in query:  # SigV4
        assert query["X-Amz-Expires"] == ["3600"]
    else:  # SigV2: an absolute time
        assert before + 3600 - 5 <= int(query["Expires"][0]) <= time.time() + 3600 + 5
    # An ObjectStoragePath is signed the same way.
    assert requests.get(inputs.signed_url("x", ObjectStoragePath(uri), expiry=60), timeout=10).content == data


def test_a_missing_object_fails_before_submission_naming_parameter_and_object(bucket: Any) -> None:
    uri = f"s3://{S3_CONN_ID}@{BUCKET}/in/missing-{uuid.uuid4().hex}.jpg"
    with pytest.raises(AkoolInputError) as caught:
        inputs.signed_url("target_image[1].path", uri, expiry=60)
    assert str(caught.value) == (
        f"Akool: target_image[1].path {uri} does not exist: nothing was submitted to Akool. Check the bucket "
        "and key, or that the task writing it ran first"
    )
    assert not isinstance(caught.value, AkoolValidationError), "a retry may find it: task retries apply"


def test_a_folder_is_not_an_object(bucket: Any) -> None:
    uri = put(bucket, b"x")
    folder = uri.rsplit("/", 1)[0]
    with pytest.raises(AkoolInputError, match="is a folder, not an object"):
        inputs.signed_url("origin_img", folder, expiry=60)


def test_a_wrong_key_fails_before_submission(bucket: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = put(bucket, b"private")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MOTO_WRONG_KEY", s3.connection(access_key="AKIAWRONGKEY0000", secret_key="x" * 40)
    )
    wrong = uri.replace(f"s3://{S3_CONN_ID}@", "s3://moto_wrong_key@")
    s3.enforce_credentials(True)
    with pytest.raises(AkoolInputError) as caught:
        inputs.signed_url("modify_image", wrong, expiry=60)
    assert str(caught.value).startswith(
        f"Akool: modify_image {wrong} cannot be read with the credentials of its connection (PermissionError"
    )
    assert "Check the connection's keys" in str(caught.value)
    assert "x" * 40 not in str(caught.value)


def test_the_signed_url_is_masked_and_the_log_names_the_object_only(
    bucket: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    uri = put(bucket, b"0123456789")
    caplog.set_level(logging.INFO)
    url = inputs.signed_url("modify_image", uri, expiry=600)
    (signature,) = signature_values(url)
    # Anything the masker filters (task logs, exception text, XCom of the provider) hides the URL and
    # the signature, encoded or not, also when the URL is quoted in part.
    assert redact(f"downloading {url} now") == "downloading *** now"
    assert signature not in redact(f"sig={signature}")
    encoded = urlsplit(url).query.split("Signature=", 1)[1].split("&", 1)[0]
    assert encoded not in redact(f"GET /key?Signature={encoded}")
    lines = [r.getMessage() for r in caplog.records if r.name == "airflow_provider_akool.inputs"]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"Signed modify_image {uri} (10 bytes) for Akool to download, valid for 600 s")
    assert signature not in caplog.text
    assert encoded not in caplog.text


def test_an_http_url_is_passed_on_unsigned_and_unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requests.Session, "request", _no_request)
    assert inputs.signed_url("image_url", "https://cdn.example.com/a.jpg", expiry=60) == (
        "https://cdn.example.com/a.jpg"
    )


# --- The operators, through dag.test(): what Akool (the emulator) downloads -------------------------


def test_object_storage_inputs_reach_akool_as_signed_urls_that_never_leak(
    bucket: Any,
    emulator: Any,
    emulator_client: Any,
    akool_connection: Any,
    airflow_db: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    import pendulum
    from airflow.sdk import dag

    from airflow_provider_akool.operators.background_change import AkoolBackgroundChangeOperator
    from airflow_provider_akool.operators.reage import (
        AkoolDetectFacesOperator,
        AkoolImageReageOperator,
        AkoolVideoReageOperator,
    )
    from tests.support.dag_runs import all_xcom_values, run_recorded
    from tests.support.samples import sample

    objects = {
        "portrait": requests.get(sample(emulator, "portrait.jpg"), timeout=10).content,
        "clip": requests.get(sample(emulator, "clip.mp4"), timeout=10).content,
        "product": requests.get(sample(emulator, "product-400x300.png"), timeout=10).content,
        "beach": requests.get(sample(emulator, "beach-800x600.jpg"), timeout=10).content,
    }
    uris = {name: put(bucket, data, ".mp4" if name == "clip" else ".png" if name == "product" else ".jpg")
            for name, data in objects.items()}  # fmt: skip
    digests = {hashlib.sha256(data).hexdigest(): name for name, data in objects.items()}
    missing = f"s3://{S3_CONN_ID}@{BUCKET}/in/missing-{uuid.uuid4().hex}.jpg"

    # Spy on the signing (the real function runs): every URL made, to look for it afterwards.
    signed: list[str] = []
    real = inputs.signed_url

    def spy(*args: Any, **kwargs: Any) -> str:
        url = real(*args, **kwargs)
        if signature_values(url):  # http(s) inputs pass through as they are
            signed.append(url)
        return url

    monkeypatch.setattr(inputs, "signed_url", spy)
    waits = {"poll_interval": 0.2}

    @dag(dag_id="inputs_from_s3", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params={"portrait": uris["portrait"]})  # fmt: skip
    def inputs_from_s3() -> None:
        faces = AkoolDetectFacesOperator(task_id="detect", image_url="{{ params.portrait }}")
        AkoolImageReageOperator(
            task_id="image", modify_image="{{ params.portrait }}", target_image=faces.output, face_reage=10,
            **waits,
        )  # fmt: skip
        AkoolImageReageOperator(
            task_id="image_detecting_deferred", modify_image=ObjectStoragePath(uris["portrait"]),
            face_reage=-5, deferrable=True, **waits,
        )  # fmt: skip
        AkoolVideoReageOperator(
            task_id="video", modify_video=uris["clip"], target_image=faces.output, face_reage=5, **waits
        )
        AkoolBackgroundChangeOperator(
            task_id="background", origin_img=ObjectStoragePath(uris["product"]), template_url=uris["beach"],
            canvas_size="800x600", modify_origin_img_size="400x300", overlay_origin_x=200,
            overlay_origin_y=300, modify_template_size="800x600", overlay_template_x=0, overlay_template_y=0,
            **waits,
        )  # fmt: skip
        AkoolImageReageOperator(
            task_id="missing_object", modify_image=missing,
            target_image=[{"path": sample(emulator, "portrait.jpg"), "opts": "1,2:3,4:5,6:7,8"}],
            face_reage=10, **waits,
        )  # fmt: skip

    caplog.set_level(logging.DEBUG)
    run = run_recorded(inputs_from_s3(), emulator_client)
    out, err = capfd.readouterr()
    console = "\n".join((out, err, caplog.text, *(f"{r.getMessage()} {r.args!r}" for r in caplog.records)))

    states = dict(run.states)
    assert states.pop(("missing_object", -1)) == "failed"
    assert set(states.values()) == {"success"}, run.states

    # Akool downloaded each object itself through the URL it was given: the bytes match, every input.
    jobs = run.ledger["jobs"]
    assert len(jobs) == 4, "the missing object must not have been submitted"
    fetched = {job["kind"]: job["fetched_inputs"] for job in jobs.values() if job["kind"] != "imgreage"}
    assert [(f["field"], digests[f["sha256"]], f["http_status"]) for f in fetched["vidreage"]] == [
        ("modifyVideo", "clip", 200),
        ("targetImage[0].path", "portrait", 200),
    ]
    assert [(f["field"], digests[f["sha256"]]) for f in fetched["bg_replace"]] == [
        ("origin_img", "product"),
        ("template_url", "beach"),
    ]
    for job in (job for job in jobs.values() if job["kind"] == "imgreage"):
        assert [(f["field"], digests[f["sha256"]]) for f in job["fetched_inputs"]] == [
            ("modifyImage", "portrait"),
            ("targetImage[0].path", "portrait"),
        ]
    # The detect operator hands on the URI, not the URL it signed; reage signed it again.
    (face,) = run.value("detect")
    assert face["path"] == uris["portrait"]

    # The missing object failed before anything was sent to Akool, naming the parameter and the object.
    error = run.failure("missing_object")
    assert isinstance(error, AkoolInputError)
    assert f"modify_image {missing} does not exist: nothing was submitted to Akool" in str(error)

    # What the UI shows and what XCom holds keep the URI; no signed URL or signature anywhere.
    assert run.rendered("image")["modify_image"] == uris["portrait"]
    assert uris["product"] in json.dumps(run.rendered("background")["origin_img"])
    assert len(signed) >= 7, signed
    secrets = [*signed, *(value for url in signed for value in signature_values(url))]
    assert secrets
    for key in run.tis:
        rendered = json.dumps(run.rendered(*key), default=str)
        assert not [s for s in secrets if s in rendered], f"a signed URL is in the rendered fields of {key}"
    xcoms = all_xcom_values(run)
    assert uris["portrait"] in xcoms
    assert not [s for s in secrets if s in xcoms], "a signed URL is in XCom"
    for key, failure in run.failures.items():
        assert not [s for s in secrets if s in repr(failure) + str(failure)], f"in the error of {key}"
    # The console of a dag.test() run is not masked: nothing of the provider printed a URL there.
    assert f"Signed modify_image {uris['portrait']} (" in console
    assert not [s for s in secrets if s in console], "a signed URL is in the logs"
