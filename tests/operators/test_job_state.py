"""The job record kept for crash safety, in the released version's stored form; the deprecated names."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_akool.kinds.reage import REAGE
from airflow_provider_akool.models import JobStatus
from airflow_provider_akool.operators.base import AkoolJobOperator
from airflow_provider_akool.operators.job_state import JobRecord, TryState
from airflow_provider_akool.operators.reage import AkoolImageReageOperator
from airflow_provider_akool.wait import JobSnapshot

DIGEST = "ab" * 32
#: A record as the released version (0.x, before JobRecord) wrote it to task_state_store, to the letter.
RELEASED_RECORD: dict[str, Any] = {
    "id": "660d15b83ec46e810ca642f5",
    "job_id": "20240410133018",
    "url": "https://d2qf6ukcym4kn9.cloudfront.net/final_reage.png",
    "submitted_at": 1712755818.25,
    "kind": "reage",
    "webhook_token_sha256": DIGEST,
}


def test_a_record_the_released_version_wrote_is_read() -> None:
    record = JobRecord.from_stored(dict(RELEASED_RECORD))

    assert record == JobRecord(
        job=JobSnapshot(
            id="660d15b83ec46e810ca642f5",
            status=None,
            url="https://d2qf6ukcym4kn9.cloudfront.net/final_reage.png",
            job_id="20240410133018",
        ),
        submitted_at=1712755818.25,
        kind="reage",
        webhook_token_sha256=DIGEST,
    )


def test_a_released_record_without_webhook_or_kind_is_read() -> None:
    stored = {"id": "660d15b83ec46e810ca642f5", "job_id": None, "url": None, "submitted_at": 1712755818}

    record = JobRecord.from_stored(stored)

    assert record is not None
    assert (record.job.id, record.job.job_id, record.job.url) == ("660d15b83ec46e810ca642f5", None, None)
    assert record.submitted_at == 1712755818.0
    assert isinstance(record.submitted_at, float)
    assert (record.kind, record.webhook_token_sha256) == (None, None)


def test_a_record_written_now_has_the_form_the_released_version_reads() -> None:
    record = JobRecord.from_stored(dict(RELEASED_RECORD))
    assert record is not None

    # Same keys, same values, same types: the released _read_record reads what this version stores.
    assert record.to_stored() == RELEASED_RECORD
    without_webhook = JobRecord(JobSnapshot(id="a" * 24, status=None), 5.0, kind="background change")
    assert without_webhook.to_stored() == {
        "id": "a" * 24,
        "job_id": None,
        "url": None,
        "submitted_at": 5.0,
        "kind": "background change",
    }


def test_the_stored_form_keeps_no_status_and_reads_back_the_same() -> None:
    polled = JobSnapshot(
        id="b" * 24, status=JobStatus.PROCESSING, url="https://cdn.example/r.png", job_id="7"
    )
    record = JobRecord(polled, 10.5, kind="reage", webhook_token_sha256=DIGEST)

    back = JobRecord.from_stored(record.to_stored())

    assert back == JobRecord(
        JobSnapshot(id="b" * 24, status=None, url="https://cdn.example/r.png", job_id="7"),
        10.5,
        kind="reage",
        webhook_token_sha256=DIGEST,
    )


@pytest.mark.parametrize(
    "stored",
    [
        "not a record",
        ["660d15b83ec46e810ca642f5", 1.0],
        {"id": "", "submitted_at": 1.0},
        {"id": 7, "submitted_at": 1.0},
        {"id": "abc", "submitted_at": "yesterday"},
        {"id": "abc", "submitted_at": True},
        {"id": "abc", "submitted_at": 1.0, "job_id": 42},
        {"id": "abc", "submitted_at": 1.0, "url": ["https://cdn.example/r.png"]},
    ],
    ids=["string", "list", "empty_id", "int_id", "text_time", "bool_time", "int_job_id", "list_url"],
)
def test_a_value_that_is_not_a_record_is_not_read(stored: Any) -> None:
    assert JobRecord.from_stored(stored) is None


def test_a_digest_that_is_not_one_is_dropped_not_trusted() -> None:
    record = JobRecord.from_stored({**RELEASED_RECORD, "webhook_token_sha256": "not-a-digest"})

    assert record is not None
    assert record.webhook_token_sha256 is None


def test_each_try_starts_with_a_state_of_its_own() -> None:
    first, second = TryState(), TryState()
    first.signed_inputs["modify_image"] = "https://bucket.example/signed"

    assert (second.signed_inputs, second.job, second.result) == ({}, None, None)
    assert (second.submitted_now, second.running_job, second.first_poll_at) == (False, None, 0.0)


def test_job_kind_is_a_deprecated_alias_of_kind_name() -> None:
    operator = AkoolImageReageOperator(
        task_id="reage", modify_image="https://example.com/a.jpg", face_reage=3, target_image=None
    )

    with pytest.deprecated_call(match=r"job_kind is deprecated; use kind\.name"):
        assert operator.job_kind == "reage"
    assert operator.kind.name == "reage"


class _OldStyleOperator(AkoolJobOperator):
    """A subclass written against the released base: submit(hook, context) reads self.webhook_url."""

    kind = REAGE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[str | None] = []

    def validate_inputs(self) -> None:
        pass

    def submit(self, hook: Any, context: Any) -> JobSnapshot:  # type: ignore[override]
        self.seen.append(self.webhook_url)
        return JobSnapshot(id="c" * 24, status=None, job_id="1")


class _NewStyleOperator(_OldStyleOperator):
    def submit(self, hook: Any, context: Any, webhook_url: str | None) -> JobSnapshot:  # type: ignore[override]
        self.seen.extend([webhook_url, self.webhook_url])
        return JobSnapshot(id="d" * 24, status=None, job_id="2")


def test_submit_gets_the_webhook_url_as_a_value_and_the_field_stays() -> None:
    operator = _NewStyleOperator(task_id="new", webhook_url="airflow")

    job = operator._submit({}, "https://api.example/akool/callback?token=secret")  # type: ignore[arg-type]

    assert job.id == "d" * 24
    # The URL as an argument; the field still says "airflow" while Akool is being called.
    assert operator.seen == ["https://api.example/akool/callback?token=secret", "airflow"]
    assert operator.webhook_url == "airflow"


def test_a_subclass_with_the_released_submit_signature_still_works_and_is_warned() -> None:
    operator = _OldStyleOperator(task_id="old", webhook_url="airflow")

    with pytest.deprecated_call(match=r"submit\(hook, context\) is deprecated"):
        job = operator._submit({}, "https://api.example/akool/callback?token=secret")  # type: ignore[arg-type]

    assert job.id == "c" * 24
    assert operator.seen == ["https://api.example/akool/callback?token=secret"]
    assert operator.webhook_url == "airflow"  # put back once the submission returned
