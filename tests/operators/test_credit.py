"""AkoolCheckCreditOperator run by ``dag.test()`` against the emulator, and the 1006 of a submission."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk import dag

from airflow_provider_akool.exceptions import (
    AkoolCreditTooLowError,
    AkoolQuotaExceededError,
    AkoolValidationError,
)
from airflow_provider_akool.operators.credit import AkoolCheckCreditOperator
from airflow_provider_akool.operators.reage import AkoolImageReageOperator
from tests.support.dag_runs import START, RecordedRun, run_recorded
from tests.support.samples import sample

BALANCE = 1
#: Every task may retry; those that must not use their retries prove it by their try number.
RETRIES = {"retries": 2, "retry_delay": timedelta(0)}


@pytest.fixture(scope="module")
def checks(module_emulator: Any) -> RecordedRun:
    return run_checks(module_emulator)


def run_checks(emulator: Any) -> RecordedRun:
    # One credit: checks at or under it pass, above it fail, and an image reage (2 credits) cannot be paid.
    emulator.client.set_account(credit=BALANCE)

    @dag(dag_id="credit_checks", schedule=None, start_date=START, params={"minimum": BALANCE})
    def credit_checks() -> None:
        AkoolCheckCreditOperator(task_id="enough", minimum_credit="{{ params.minimum }}", **RETRIES)
        AkoolCheckCreditOperator(task_id="below", minimum_credit=1.5, **RETRIES)
        AkoolCheckCreditOperator(task_id="bad_minimum", minimum_credit="lots", **RETRIES)
        AkoolCheckCreditOperator(task_id="negative_minimum", minimum_credit=-3, **RETRIES)
        AkoolImageReageOperator(
            task_id="runs_out",
            modify_image=sample(emulator, "portrait.jpg"),
            face_reage=5,
            poll_interval=0.2,
            **RETRIES,
        )

    return run_recorded(credit_checks(), emulator.client)


def test_a_balance_at_the_minimum_passes_and_is_returned(checks: RecordedRun) -> None:
    assert checks.states[("enough", -1)] == "success"
    assert checks.value("enough") == BALANCE


def test_a_balance_below_the_minimum_fails_once_naming_both(checks: RecordedRun) -> None:
    error = checks.failure("below")
    assert isinstance(error, AkoolCreditTooLowError)
    assert "the Akool credit balance is 1, below minimum_credit 1.5" in str(error)
    assert (error.credit, error.minimum_credit) == (1, 1.5)
    assert checks.tis[("below", -1)].try_number == 1


@pytest.mark.parametrize(("task_id", "shown"), [("bad_minimum", "'lots'"), ("negative_minimum", "-3")])
def test_a_bad_minimum_fails_once_naming_the_parameter_before_any_request(
    checks: RecordedRun, task_id: str, shown: str
) -> None:
    error = checks.failure(task_id)
    assert isinstance(error, AkoolValidationError)
    assert f"minimum_credit must be a number of at least 0 (such as 50 or 12.5); got {shown}" in str(error)
    assert checks.tis[(task_id, -1)].try_number == 1
    # Only the two valid checks asked for the balance.
    assert checks.ledger["counts"]["quota_info"] == 2


def test_a_submission_the_balance_cannot_pay_fails_once_with_quota_exceeded(checks: RecordedRun) -> None:
    error = checks.failure("runs_out")
    assert isinstance(error, AkoolQuotaExceededError)
    assert error.code == 1006
    assert checks.tis[("runs_out", -1)].try_number == 1
    assert checks.ledger["counts"]["imgreage"] == 1
    assert checks.ledger["jobs"] == {}


def test_the_operator_is_registered_with_its_template_fields() -> None:
    from airflow_provider_akool import get_provider_info

    modules = [m for entry in get_provider_info()["operators"] for m in entry["python-modules"]]
    assert "airflow_provider_akool.operators.credit" in modules
    assert set(AkoolCheckCreditOperator.template_fields) == {"minimum_credit", "akool_conn_id"}
