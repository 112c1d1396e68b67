"""
Secrets: the API key, the client secret and every token exchanged for them stay out of logs, exception text,
XCom and rendered template fields, and every token obtained at run time is registered with Airflow's
secrets masker.

``dag.test()`` writes task logs to the console, not to files, and (unlike the real task runner, which
writes the files through the masker) does not redact that output; so the run's console and log records
must be clean because no code of the provider ever puts a secret into them, not thanks to the masker. The
log files of the real stack are read in ``tests/e2e``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import dag, task

from airflow_provider_akool import protocol
from airflow_provider_akool.exceptions import AkoolAuthError
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.operators.reage import (
    AkoolCancelReageOperator,
    AkoolDetectFacesOperator,
    AkoolImageReageOperator,
)
from airflow_provider_akool.sensors.reage import AkoolReageSensor
from tests.support.connections import API_KEY, CLIENT_ID
from tests.support.dag_runs import RecordedRun, all_xcom_values, run_recorded
from tests.support.samples import sample

REPO = Path(__file__).resolve().parents[2]
START = pendulum.datetime(2026, 1, 1, tz="UTC")
POLL = 0.2
WRONG_KEY = "wrong-key-5f1d0c2a9e8b7d6c4b3a"
WRONG_SECRET = "wrong-secret-0a9b8c7d6e5f4a3b"
CANARY = "akool-secrets-canary"


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token Akool hands out while the test runs, read where both transports parse replies."""
    seen: list[str] = []
    interpret = protocol.interpret

    def spy(request: protocol.AkoolRequest[Any], reply: protocol.HttpReply) -> Any:
        value = interpret(request, reply)
        if request.endpoint == "getToken":
            seen.append(value)
        return value

    monkeypatch.setattr(protocol, "interpret", spy)
    return seen


def connections(akool_connection: Any) -> None:
    akool_connection("akool_cc", login=CLIENT_ID, password=API_KEY)
    akool_connection("akool_bearer", extra={"auth_type": "bearer"})
    akool_connection("akool_wrong_key", password=WRONG_KEY)
    akool_connection("akool_wrong_secret", login=CLIENT_ID, password=WRONG_SECRET)


def secrets_dag(emulator: Any) -> Any:
    portrait = sample(emulator, "portrait.jpg")
    waits = {"poll_interval": POLL}

    @dag(dag_id="reliability_secrets", schedule=None, start_date=START)
    def reliability_secrets() -> None:
        image = AkoolImageReageOperator(
            task_id="image_cc", akool_conn_id="akool_cc", modify_image=portrait, face_reage=3, **waits
        )
        AkoolImageReageOperator(
            task_id="image_cc_deferred",
            akool_conn_id="akool_cc",
            modify_image=portrait,
            face_reage=3,
            deferrable=True,
            **waits,
        )
        AkoolDetectFacesOperator(task_id="detect_bearer", akool_conn_id="akool_bearer", image_url=portrait)
        AkoolImageReageOperator(
            task_id="image_wrong_key", akool_conn_id="akool_wrong_key", modify_image=portrait, face_reage=3
        )
        AkoolImageReageOperator(
            task_id="image_wrong_secret",
            akool_conn_id="akool_wrong_secret",
            modify_image=portrait,
            face_reage=3,
        )
        submitted = AkoolImageReageOperator(
            task_id="no_wait",
            akool_conn_id="akool_cc",
            modify_image=sample(emulator, "portrait-emulator-stuck.jpg"),
            face_reage=3,
            wait_for_completion=False,
        )
        AkoolCancelReageOperator(task_id="cancel", akool_conn_id="akool_cc", job_ids=submitted.output)
        AkoolReageSensor(
            task_id="sensor",
            akool_conn_id="akool_cc",
            result_ids=image.output,
            deferrable=True,
            poke_interval=POLL,
        )

        @task
        def token_expires_mid_run() -> None:
            # A renewed token is a second secret obtained at run time.
            hook = AkoolHook("akool_cc")
            hook.get_reage_results(["0" * 24])
            emulator.client.expire_tokens()
            hook.get_reage_results(["0" * 24])
            logging.getLogger("airflow_provider_akool.tests").info("%s", CANARY)

        token_expires_mid_run()

    return reliability_secrets()


@pytest.fixture
def secrets_run(
    airflow_db: Any,
    emulator: Any,
    emulator_client: Any,
    akool_connection: Any,
    tokens: list[str],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> tuple[RecordedRun, str, list[str]]:
    """One run of every auth mode, failures included; its console output and log records; its tokens."""
    connections(akool_connection)
    caplog.set_level(logging.DEBUG)
    run = run_recorded(secrets_dag(emulator), emulator_client)
    out, err = capfd.readouterr()
    records = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}" for record in caplog.records
    )
    return run, "\n".join((out, err, caplog.text, records)), list(tokens)


def leaked(text: str, secrets: list[str]) -> list[str]:
    return [secret[:6] + "..." for secret in secrets if secret in text]


def test_no_secret_reaches_logs_errors_xcom_or_rendered_fields(
    secrets_run: tuple[RecordedRun, str, list[str]],
) -> None:
    run, console, tokens = secrets_run
    secrets = [API_KEY, WRONG_KEY, WRONG_SECRET, *tokens]

    # The run did what it is meant to show: two tokens (one renewed), both refusals, the rest succeeded.
    assert len(set(tokens)) == 2
    for task_id in ("image_wrong_key", "image_wrong_secret"):
        assert isinstance(run.failure(task_id), AkoolAuthError)
    assert {state for key, state in run.states.items() if "wrong" not in key[0]} == {"success"}
    # The capture sees what tasks log.
    assert CANARY in console

    assert leaked(console, secrets) == [], "a secret is in the run's console or log records"
    for key, error in run.failures.items():
        text = "".join(traceback.format_exception(error)) + repr(error)
        assert leaked(text, secrets) == [], f"a secret is in the error of {key}"
    xcoms = all_xcom_values(run)
    assert xcoms, "the run pushed no XCom to look at"
    assert leaked(xcoms, secrets) == [], "a secret is in XCom"
    for key in run.tis:
        rendered = json.dumps(run.rendered(*key), default=str)
        assert leaked(rendered, secrets) == [], f"a secret is in the rendered fields of {key}"


# --- The masker ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_every_token_obtained_at_run_time_is_masked(
    akool_connection: Any, emulator_client: Any, tokens: list[str], transport: str
) -> None:
    # A private module, but the one mask_secret itself writes to, on 3.1 as on 3.3.
    from airflow.sdk._shared.secrets_masker import redact

    akool_connection("akool_cc", login=CLIENT_ID, password=API_KEY)
    hook = AkoolHook("akool_cc")

    def two_reads() -> None:
        hook.get_reage_results(["0" * 24])
        emulator_client.expire_tokens()
        hook.get_reage_results(["0" * 24])

    async def two_async_reads() -> None:
        async with hook:
            await hook.aget_reage_results(["0" * 24])
            emulator_client.expire_tokens()
            await hook.aget_reage_results(["0" * 24])

    if transport == "sync":
        two_reads()
    else:
        import asyncio

        asyncio.run(two_async_reads())

    assert len(set(tokens)) == 2, "the expiry did not make the hook obtain a second token"
    for token in tokens:
        assert redact(f"Bearer {token} in a log line") == "Bearer *** in a log line"
    # The secret the tokens were exchanged for too.
    assert redact(f"key {API_KEY}") == "key ***"


def test_a_refused_secret_is_not_in_the_error(akool_connection: Any, emulator_client: Any) -> None:
    akool_connection("akool_wrong_secret", login=CLIENT_ID, password=WRONG_SECRET)

    with pytest.raises(AkoolAuthError) as raised:
        AkoolHook("akool_wrong_secret", retry_limit=1).get_reage_results(["0" * 24])

    text = "".join(traceback.format_exception(raised.value))
    assert WRONG_SECRET not in text
    assert CLIENT_ID in text or "1101" in text  # says what was refused, without the secret


# --- Logging style ---------------------------------------------------------------------------------


def test_logging_passes_arguments_to_the_logger_not_formatted_strings() -> None:
    """``%s`` arguments reach the masker as values; a pre-formatted string would hide them in the text."""
    import re

    lint = (REPO / "pyproject.toml").read_text().split("[tool.ruff.lint]", 1)[1]
    selected = re.search(r"^select = \[(.*?)\]", lint, re.MULTILINE | re.DOTALL)
    assert selected is not None
    assert {"G", "LOG"} <= set(re.findall(r'"(\w+)"', selected.group(1)))

    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--select",
            "G,LOG",
            "airflow_provider_akool",
            "dags",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- A secret rendered into a templated field by mistake --------------------------------------------


def test_a_secret_rendered_into_a_field_is_masked_in_the_return_value_and_in_a_validation_error(
    airflow_db: Any,
    emulator: Any,
    emulator_client: Any,
    akool_connection: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    portrait = sample(emulator, "portrait.jpg")
    # Templated, as a user would write it: the key reaches the field only when it is rendered.
    key_param = {"key": API_KEY}

    @dag(dag_id="reliability_secret_in_a_field", schedule=None, start_date=START, params=key_param)
    def secret_in_a_field() -> None:
        AkoolImageReageOperator(
            task_id="key_in_output_path",
            modify_image=portrait,
            face_reage=3,
            poll_interval=POLL,
            output_path=f"{tmp_path}/{{{{ params.key }}}}/",
        )
        AkoolImageReageOperator(
            task_id="key_in_webhook_url",
            modify_image=portrait,
            face_reage=3,
            webhook_url="ftp://hooks.example.com/{{ params.key }}",
        )
        AkoolReageSensor(task_id="key_in_result_ids", result_ids=[{"no_id": "{{ params.key }}"}])
        # A mapped task renders through Airflow's MappedOperator, not the operator's render_template_fields.
        AkoolImageReageOperator.partial(
            task_id="key_in_a_mapped_output_path",
            modify_image=portrait,
            poll_interval=POLL,
            output_path=f"{tmp_path}/mapped/{{{{ params.key }}}}/",
        ).expand(face_reage=[4])

    caplog.set_level(logging.DEBUG)
    run = run_recorded(secret_in_a_field(), emulator_client)
    out, err = capfd.readouterr()
    console = "\n".join((out, err, caplog.text))

    # The result was kept where the rendered path said, key and all; the return value does not say it.
    value = run.value("key_in_output_path")
    assert value["status"] == "success"
    assert (tmp_path / API_KEY / f"{value['id']}.jpg").exists()
    assert API_KEY not in json.dumps(value)
    assert value["output_path"] == f"{tmp_path}/***/{value['id']}.jpg"
    # What the UI shows as rendered fields passes through the masker after rendering: the key must be
    # known to it by then, although the connection is read only later, when the task runs.
    for task_id in ("key_in_output_path", "key_in_webhook_url", "key_in_result_ids"):
        rendered = json.dumps(run.rendered(task_id), default=str)
        assert API_KEY not in rendered, f"the key is in the rendered fields of {task_id}: {rendered}"
    assert "***" in json.dumps(run.rendered("key_in_output_path"))
    mapped = json.dumps(run.rendered("key_in_a_mapped_output_path", 0), default=str)
    assert API_KEY not in mapped, f"the key is in the rendered fields of the mapped task: {mapped}"
    assert run.states[("key_in_a_mapped_output_path", 0)] == "success"
    # The validation errors name the parameter and quote the value, without the key; the log neither.
    for task_id, parameter in (("key_in_webhook_url", "webhook_url"), ("key_in_result_ids", "result_ids")):
        error = run.failure(task_id)
        text = "".join(traceback.format_exception(error)) + repr(error)
        assert parameter in str(error)
        assert API_KEY not in text, text
    assert "ftp://hooks.example.com/***" in str(run.failure("key_in_webhook_url"))
    assert run.ledger["counts"]["imgreage"] == 2  # the bad one was refused before any request
    # dag.test() prints the kept path unmasked (its console does not pass through the masker).
    kept_paths = (f"{tmp_path}/{API_KEY}", f"{tmp_path}/mapped/{API_KEY}")
    assert API_KEY not in console.replace(kept_paths[0], "").replace(kept_paths[1], "")
