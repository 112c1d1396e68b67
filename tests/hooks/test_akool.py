"""AkoolHook against the emulator over real HTTP, every call through both the sync and the async path."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_akool.emulator import EmulatorClient, EmulatorServer
from airflow_provider_akool.exceptions import (
    ERROR_CODES,
    AkoolAccountBannedError,
    AkoolConnectionError,
    AkoolInsufficientCreditError,
    AkoolInvalidParameterError,
    AkoolInvalidTokenError,
    AkoolNotFoundError,
    AkoolPartialReplyError,
    AkoolQuotaExceededError,
    AkoolRateLimitError,
    AkoolResponseError,
    AkoolResultUnavailableError,
    AkoolServerError,
    AkoolSubmitOutcomeUnknownError,
    AkoolValidationError,
)
from airflow_provider_akool.hooks.akool import USER_AGENT, AkoolHook
from airflow_provider_akool.models import JobStatus
from tests.support.connections import API_KEY, CLIENT_ID, ConnectionFactory
from tests.support.samples import small_background_change

FAST = {"retry_delay": 0.01, "retry_max_delay": 0.05}


def target(emulator: EmulatorServer, name: str = "face.jpg") -> list[dict[str, str]]:
    return [{"path": f"{emulator.url}/media/samples/{name}", "opts": "10,10:30,10:20,20:20,30"}]


def run_async(hook: AkoolHook, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the async form of a hook method on a fresh loop, closing the client after."""

    async def go() -> Any:
        try:
            return await getattr(hook, f"a{name}")(*args, **kwargs)
        finally:
            await hook.aclose()

    return asyncio.run(go())


Call = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Call:
    """``call(hook, "get_credit")`` runs the sync method or its async ``a``-twin."""
    if request.param == "sync":
        return lambda hook, name, *args, **kwargs: getattr(hook, name)(*args, **kwargs)
    return run_async


def submit(call: Call, hook: AkoolHook, emulator: EmulatorServer, name: str = "face.jpg") -> Any:
    return call(hook, "submit_image_reage", f"{emulator.url}/media/samples/{name}", 10, target(emulator))


class TestAuthentication:
    def test_api_key_is_sent_as_x_api_key(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        call(AkoolHook(), "get_reage_results", ["000000000000000000000000"])
        assert [r["auth"] for r in emulator_client.ledger()["requests"]] == ["api_key"]

    def test_bearer_sends_the_key_as_authorization(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        akool_connection(extra={"auth_type": "bearer"})
        call(AkoolHook(), "get_reage_results", ["000000000000000000000000"])
        assert [r["auth"] for r in emulator_client.ledger()["requests"]] == ["bearer_key"]

    @pytest.mark.parametrize("extra", [{}, {"auth_type": "auto"}, {"auth_type": "client_credentials"}])
    def test_client_credentials_is_the_default_with_a_login_and_the_token_is_cached_per_process(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator_client: EmulatorClient,
        extra: dict[str, str],
    ) -> None:
        akool_connection(login=CLIENT_ID, extra=extra)
        call(AkoolHook(), "get_reage_results", ["000000000000000000000000"])
        call(AkoolHook(), "get_reage_results", ["000000000000000000000000"])
        ledger = emulator_client.ledger()
        assert ledger["counts"]["getToken"] == 1
        assert [r["auth"] for r in ledger["requests"]] == ["none", "token", "token"]

    def test_an_expired_token_is_renewed_once_and_the_call_goes_on(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        akool_connection(login=CLIENT_ID)
        hook = AkoolHook()
        call(hook, "get_reage_results", ["000000000000000000000000"])
        emulator_client.expire_tokens()
        assert call(hook, "get_reage_results", ["000000000000000000000000"]) == {}
        ledger = emulator_client.ledger()
        assert ledger["counts"]["getToken"] == 2
        assert [r["code"] for r in ledger["requests"] if r["endpoint"] == "listbyids"] == [1000, 1101, 1000]

    def test_a_submit_refused_with_1101_is_sent_once_more_with_a_new_token(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        akool_connection(login=CLIENT_ID)
        hook = AkoolHook()
        call(hook, "get_reage_results", ["000000000000000000000000"])
        emulator_client.expire_tokens()
        job = submit(call, hook, emulator)
        ledger = emulator_client.ledger()
        # 1101 surely created nothing, so the resend does not pay twice: exactly one job exists.
        assert list(ledger["jobs"]) == [job.id]
        assert ledger["counts"]["imgreage"] == 2

    def test_a_new_token_refused_too_fails_the_call_without_a_third_try(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        akool_connection(login=CLIENT_ID)
        # Every listbyids answers 1101, whatever the token: renewing once is right, renewing again a loop.
        emulator_client.add_fault("code", count=None, path="listbyids", code=1101)
        with pytest.raises(AkoolInvalidTokenError):
            call(AkoolHook(), "get_reage_results", ["000000000000000000000000"])
        ledger = emulator_client.ledger()
        assert ledger["counts"]["getToken"] == 2
        assert [r["code"] for r in ledger["requests"] if r["endpoint"] == "listbyids"] == [1101, 1101]

    def test_a_wrong_key_is_an_auth_error_that_does_not_show_the_key(
        self, call: Call, akool_connection: ConnectionFactory, caplog: pytest.LogCaptureFixture
    ) -> None:
        akool_connection(password="wrong-key-987654321")
        with pytest.raises(AkoolInvalidTokenError) as caught:
            call(AkoolHook(), "get_reage_results", ["000000000000000000000000"])
        assert "wrong-key-987654321" not in str(caught.value)
        assert "wrong-key-987654321" not in caplog.text

    def test_wrong_client_credentials_are_an_auth_error(
        self, call: Call, akool_connection: ConnectionFactory
    ) -> None:
        akool_connection(login="someone-else")
        with pytest.raises(AkoolInvalidTokenError):
            call(AkoolHook(), "get_reage_results", ["000000000000000000000000"])

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"password": ""}, "has no password"),
            ({"extra": {"auth_type": "oauth"}}, "auth_type .connection extra. must be auto or one of"),
            ({"extra": {"auth_type": "client_credentials"}}, "needs the connection's login"),
            ({"extra": {"timeout": "soon"}}, "timeout .connection extra. must be a positive number"),
            ({"host": "ftp://example.test"}, "host .connection. must be a base URL"),
            ({"host": "http://127.0.0.1:port"}, "host .connection. must be a base URL"),
            (
                {"host": "127.0.0.1", "schema": "htp", "port": 8765},
                "schema .connection. must be http or https",
            ),
            ({"host": "127.0.0.1", "port": 70000}, "port .connection. must be between 1 and 65535"),
            # Two answers to one question: neither is picked silently.
            ({"host": "http://127.0.0.1:8765", "port": 9000}, "port .connection. is 9000 but host"),
            ({"host": "http://127.0.0.1:8765", "schema": "https"}, "schema .connection. is 'https' but host"),
        ],
    )
    def test_a_bad_connection_is_a_clear_error_before_any_request(
        self,
        akool_connection: ConnectionFactory,
        emulator_client: EmulatorClient,
        fields: dict[str, Any],
        message: str,
    ) -> None:
        akool_connection(**fields)
        with pytest.raises(AkoolValidationError, match=message):
            AkoolHook().get_reage_results(["000000000000000000000000"])
        assert sum(emulator_client.counts().values()) == 0


class TestConnectionSettings:
    @pytest.mark.parametrize(
        ("fields", "base_url", "detect_url"),
        [
            ({"host": None}, "https://openapi.akool.com", "https://sg3.akool.com/detect"),
            ({"host": "openapi.akool.com"}, "https://openapi.akool.com", "https://sg3.akool.com/detect"),
            ({"host": "127.0.0.1", "schema": "http", "port": 8765}, "http://127.0.0.1:8765", None),
            ({"host": "http://127.0.0.1", "port": 9}, "http://127.0.0.1:9", None),
            # Host, scheme and port in their own fields (what the UI's Test button needs) name the same
            # Akool as the base URL in host: the scheme's default port is left out, so the default detect
            # URL still applies to Akool's own host.
            (
                {"host": "openapi.akool.com", "schema": "https", "port": 443},
                "https://openapi.akool.com",
                "https://sg3.akool.com/detect",
            ),
            (
                {"host": "https://openapi.akool.com:443"},
                "https://openapi.akool.com",
                "https://sg3.akool.com/detect",
            ),
            ({"host": "127.0.0.1", "schema": "HTTP", "port": 80}, "http://127.0.0.1", None),
            # The old form stays valid, also with the same port or scheme repeated in their own fields.
            (
                {"host": "http://127.0.0.1:8765", "schema": "http", "port": 8765},
                "http://127.0.0.1:8765",
                None,
            ),
            # Airflow 3.1's Test button sends port 0 and schema "" for a connection without them.
            ({"host": "http://127.0.0.1:8765", "schema": "", "port": 0}, "http://127.0.0.1:8765", None),
            ({"host": "http://[::1]:8765/"}, "http://[::1]:8765", None),
            ({"extra": {"extra__akool__detect_url": "http://d.test/detect"}}, None, "http://d.test/detect"),
        ],
    )
    def test_base_and_detect_urls(
        self,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        fields: dict[str, Any],
        base_url: str | None,
        detect_url: str | None,
    ) -> None:
        akool_connection(**fields)
        settings = AkoolHook().settings
        assert settings.base_url == (base_url or emulator.url)
        assert settings.detect_url == (detect_url or f"{settings.base_url}/detect")

    def test_the_secret_is_not_in_the_settings_repr(self, akool_connection: ConnectionFactory) -> None:
        assert API_KEY not in repr(AkoolHook().settings)

    def test_hook_timeout_overrides_the_connection(self, akool_connection: ConnectionFactory) -> None:
        akool_connection(extra={"timeout": 12})
        assert AkoolHook().settings.timeout == 12.0
        assert AkoolHook(timeout=3).settings.timeout == 3.0


class TestCalls:
    def test_detect_faces_returns_a_target_image(
        self, call: Call, akool_connection: ConnectionFactory, emulator: EmulatorServer
    ) -> None:
        image = f"{emulator.url}/media/samples/faces-3.jpg"
        faces = call(AkoolHook(), "detect_faces", image, single_face=False)
        assert len(faces.faces) == 3
        assert [face["path"] for face in faces.target_image()] == [image] * 3
        assert call(AkoolHook(), "detect_faces", image).target_image() == faces.target_image()[:1]

    def test_image_reage_goes_queued_processing_success(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        emulator_client.freeze_clock()
        hook = AkoolHook()
        job = submit(call, hook, emulator)
        assert len(job.id) == 24
        assert job.job_id
        assert job.url
        assert call(hook, "get_reage_results", job.id)[job.id].status is JobStatus.QUEUED
        emulator_client.advance_clock(0.2)
        assert call(hook, "get_reage_results", job.id)[job.id].status is JobStatus.PROCESSING
        emulator_client.advance_clock(1)
        result = call(hook, "get_reage_results", [job.id])[job.id]
        assert (result.status, result.url, result.job_id) == (JobStatus.SUCCESS, job.url, job.job_id)

    def test_video_reage(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        hook = AkoolHook()
        job = call(
            hook, "submit_video_reage", f"{emulator.url}/media/samples/clip.mp4", -10, target(emulator)
        )
        assert emulator_client.ledger()["jobs"][job.id]["kind"] == "vidreage"

    def test_results_are_batched_and_matched_by_id(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        hook = AkoolHook(batch_size=2)
        ids = [submit(call, hook, emulator).id for _ in range(4)]
        unknown = "ffffffffffffffffffffffff"
        results = call(hook, "get_reage_results", [*ids, unknown])
        assert set(results) == set(ids)
        assert all(results[i].id == i for i in ids)
        assert emulator_client.ledger()["listbyids_ids"] == [ids[0:2], ids[2:4], [unknown]]

    def test_a_batch_over_the_server_bound_is_an_invalid_parameter_error(
        self, call: Call, akool_connection: ConnectionFactory, emulator: EmulatorServer
    ) -> None:
        ids = [f"{n:024x}" for n in range(emulator.config.max_listbyids + 1)]
        with pytest.raises(AkoolInvalidParameterError, match="_ids"):
            call(AkoolHook(batch_size=len(ids)), "get_reage_results", ids)

    def test_cancel_marks_the_job_failed(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        hook = AkoolHook()
        job = submit(call, hook, emulator)
        call(hook, "cancel_reage_jobs", job.job_id)
        assert call(hook, "get_reage_results", job.id)[job.id].status is JobStatus.FAILED

    def test_cancelling_unknown_jobs_is_not_found(
        self, call: Call, akool_connection: ConnectionFactory
    ) -> None:
        with pytest.raises(AkoolNotFoundError):
            call(AkoolHook(), "cancel_reage_jobs", ["20240102082900592-0000"])

    def test_background_change_and_its_result(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        hook = AkoolHook()
        job = call(hook, "submit_background_change", **small_background_change(emulator))
        assert job.status is JobStatus.QUEUED
        emulator_client.advance_clock(2)
        result = call(hook, "get_background_change_result", job.id)
        assert result.status is JobStatus.SUCCESS
        assert result.image_url
        assert result.error_reasons == []

    def test_unknown_image_result_is_not_found(self, call: Call, akool_connection: ConnectionFactory) -> None:
        with pytest.raises(AkoolNotFoundError):
            call(AkoolHook(), "get_background_change_result", "ffffffffffffffffffffffff")

    @pytest.mark.parametrize(
        ("account", "error"),
        [({"quota": True}, AkoolQuotaExceededError), ({"banned": True}, AkoolAccountBannedError)],
    )
    def test_account_states_map_to_their_errors(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
        account: dict[str, bool],
        error: type[Exception],
    ) -> None:
        emulator_client.set_account(**account)
        with pytest.raises(error):
            submit(call, AkoolHook(), emulator)

    def test_test_connection(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        emulator_client.set_account(credit=321)
        assert AkoolHook().test_connection() == (
            True,
            f"Connected to Akool at {emulator.url} (api_key); credit balance: 321",
        )
        akool_connection(password="not-the-key-123456")
        ok, message = AkoolHook().test_connection()
        assert not ok
        assert "1101" in message
        assert "not-the-key-123456" not in message


class TestCredit:
    def test_get_credit_reads_the_balance_and_follows_each_charge(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        hook = AkoolHook()
        emulator_client.set_account(credit=100)
        assert call(hook, "get_credit") == 100
        submit(call, hook, emulator)
        assert call(hook, "get_credit") == 100 - emulator.config.image_reage_credit
        emulator_client.set_account(credit=7.5)
        assert call(hook, "get_credit") == 7.5
        assert emulator_client.counts()["quota_info"] == 3

    def test_a_submission_the_balance_cannot_pay_raises_quota_exceeded_and_creates_no_job(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        price = emulator.config.image_reage_credit
        emulator_client.set_account(credit=price)
        hook = AkoolHook()
        submit(call, hook, emulator)  # the last credits pay for this one
        with pytest.raises(AkoolQuotaExceededError) as info:
            submit(call, hook, emulator)
        assert info.value.code == 1006
        assert not info.value.task_retry_can_fix
        assert len(emulator_client.ledger()["jobs"]) == 1
        assert call(hook, "get_credit") == 0

    def test_a_bad_balance_reply_is_a_clear_error(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        emulator_client.add_fault("missing_fields", path="quota/info")
        with pytest.raises(AkoolResponseError, match="quota_info"):
            call(AkoolHook(), "get_credit")

    def test_test_connection_connects_even_when_the_balance_cannot_be_read(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        emulator_client.add_fault("code", path="quota/info", code=1009)
        ok, message = AkoolHook().test_connection()
        assert ok
        assert message.startswith(f"Connected to Akool at {emulator.url} (api_key); credit balance unknown (")
        assert "1009" in message
        assert API_KEY not in message


class TestDownloads:
    def test_stream_result_yields_the_file_in_chunks_without_credentials(
        self,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        with AkoolHook().stream_result(f"{emulator.url}/media/blob/300000", chunk_size=65536) as chunks:
            sizes = [len(chunk) for chunk in chunks]
        assert sum(sizes) == 300000
        assert max(sizes) <= 65536
        assert [r["auth"] for r in emulator_client.ledger()["requests"]] == ["none"]

    def test_astream_result(self, akool_connection: ConnectionFactory, emulator: EmulatorServer) -> None:
        async def go() -> int:
            async with (
                AkoolHook() as hook,
                hook.astream_result(f"{emulator.url}/media/blob/100000") as chunks,
            ):
                return sum([len(chunk) async for chunk in chunks])

        assert asyncio.run(go()) == 100000

    def test_an_expired_result_is_a_clear_error(
        self,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        hook = AkoolHook()
        job = submit(lambda h, n, *a, **k: getattr(h, n)(*a, **k), hook, emulator)
        emulator_client.advance_clock(2)
        with hook.stream_result(job.url) as chunks:
            assert b"".join(chunks)
        emulator_client.advance_clock(emulator.config.result_ttl_seconds + 1)
        with pytest.raises(AkoolResultUnavailableError, match="7 days"), hook.stream_result(job.url):
            pass

        async def go() -> None:
            async with hook.astream_result(job.url):
                pass

        with pytest.raises(AkoolResultUnavailableError, match="7 days"):
            asyncio.run(go())


class TestRetries:
    def test_reads_retry_5xx_until_they_pass(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        emulator_client.add_fault("http_500", count=2, path="listbyids", status=502)
        assert call(AkoolHook(**FAST), "get_reage_results", ["000000000000000000000000"]) == {}
        assert emulator_client.counts()["listbyids"] == 3

    def test_reads_give_up_after_the_retry_limit(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        emulator_client.add_fault("http_500", count=None, path="listbyids")
        with pytest.raises(AkoolServerError):
            call(AkoolHook(retry_limit=3, **FAST), "get_reage_results", ["000000000000000000000000"])
        assert emulator_client.counts()["listbyids"] == 3

    def test_reads_retry_dropped_connections(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        emulator_client.add_fault("drop", count=1, path="listbyids", mode="reset")
        emulator_client.add_fault("drop", count=1, path="listbyids", mode="mid_body")
        assert call(AkoolHook(**FAST), "get_reage_results", ["000000000000000000000000"]) == {}
        assert emulator_client.counts()["listbyids"] == 3

    def test_reads_retry_a_slow_reply_past_the_timeout(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        # A timeout a busy machine's normal reply keeps well within, and a slow reply far past it.
        emulator_client.add_fault("slow", count=1, path="listbyids", seconds=6.0)
        assert call(AkoolHook(timeout=2.0, **FAST), "get_reage_results", ["000000000000000000000000"]) == {}
        assert emulator_client.counts()["listbyids"] == 2

    def test_a_submit_retries_1005_and_is_created_once(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        emulator_client.add_fault("code_1005", count=2, path="imgreage")
        job = submit(call, AkoolHook(**FAST), emulator)
        ledger = emulator_client.ledger()
        assert ledger["counts"]["imgreage"] == 3
        assert list(ledger["jobs"]) == [job.id]

    def test_429_honours_retry_after(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        emulator_client.add_fault("http_429", count=1, path="imgreage", retry_after=1)
        started = time.monotonic()
        submit(call, AkoolHook(**FAST), emulator)
        # The exponential backoff alone would wait 0.05 s at most; the server asked for 1 s.
        assert time.monotonic() - started >= 1.0
        assert emulator_client.counts()["imgreage"] == 2

    def test_1005_on_reads_is_retried_and_raised_when_it_persists(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        emulator_client.add_fault("code_1005", count=None, path="listbyids")
        with pytest.raises(AkoolRateLimitError):
            call(AkoolHook(retry_limit=2, **FAST), "get_reage_results", ["000000000000000000000000"])
        assert emulator_client.counts()["listbyids"] == 2

    def test_a_submit_is_never_resent_after_a_read_timeout(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        emulator_client.add_fault("slow", count=1, path="imgreage", seconds=6.0)
        with pytest.raises(AkoolSubmitOutcomeUnknownError, match="may have reached Akool") as caught:
            submit(call, AkoolHook(timeout=2.0, **FAST), emulator)
        assert "not sent again" in str(caught.value)
        ledger = emulator_client.ledger()
        assert ledger["counts"]["imgreage"] == 1
        # The job does exist: that is why a blind resubmit would pay twice.
        assert len(ledger["jobs"]) == 1

    @pytest.mark.parametrize(
        "fault",
        [
            {"kind": "drop", "mode": "close", "after": True},
            {"kind": "http_500", "status": 502, "after": True},
            {"kind": "not_json", "after": True},
            {"kind": "missing_fields", "after": True},
        ],
    )
    def test_a_submit_with_an_unusable_reply_is_not_resent(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
        fault: dict[str, Any],
    ) -> None:
        emulator_client.add_fault(count=1, path="imgreage", **fault)
        with pytest.raises(AkoolSubmitOutcomeUnknownError):
            submit(call, AkoolHook(**FAST), emulator)
        assert emulator_client.counts()["imgreage"] == 1

    def test_a_submit_is_retried_when_the_connection_was_refused(
        self, call: Call, akool_connection: ConnectionFactory, caplog: pytest.LogCaptureFixture
    ) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        akool_connection(host=f"http://127.0.0.1:{closed_port}")
        caplog.set_level(logging.WARNING, logger="airflow_provider_akool")
        with pytest.raises(AkoolConnectionError, match="could not connect") as caught:
            call(
                AkoolHook(retry_limit=3, **FAST),
                "submit_image_reage",
                "https://x.test/a.jpg",
                10,
                [{"path": "https://x.test/a.jpg", "opts": "1,1:2,2:3,3:4,4"}],
            )
        assert caught.value.request_sent is False
        assert caplog.text.count("Akool imgreage failed") == 2

    def test_a_reply_that_is_not_json_is_a_response_error_and_not_retried(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        emulator_client.add_fault("not_json", count=1, path="listbyids")
        with pytest.raises(AkoolResponseError, match="not JSON"):
            call(AkoolHook(**FAST), "get_reage_results", ["000000000000000000000000"])
        assert emulator_client.counts()["listbyids"] == 1


def test_user_agent_names_the_provider_and_its_version(
    call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
) -> None:
    from airflow_provider_akool.version import __version__

    call(AkoolHook(), "get_reage_results", ["000000000000000000000000"])
    (request,) = emulator_client.ledger()["requests"]
    assert request["user_agent"] == USER_AGENT == f"airflow-provider-akool/{__version__}"


# --- Issue 10: entries judged one by one, the whole error table, bounded replies ---------------------


def two_jobs(call: Call, hook: AkoolHook, emulator: EmulatorServer) -> tuple[str, str]:
    return submit(call, hook, emulator).id, submit(call, hook, emulator).id


class TestEntriesOneByOne:
    @pytest.mark.parametrize("form", ["status", "types"])
    def test_an_unreadable_entry_fails_only_its_own_id(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
        form: str,
    ) -> None:
        hook = AkoolHook(**FAST)
        good, poisoned = two_jobs(call, hook, emulator)
        emulator_client.poison_entry(poisoned, form)

        entries = call(hook, "get_reage_entries", [good, poisoned])
        assert set(entries.results) == {good}
        assert set(entries.errors) == {poisoned}
        assert entries.errors[poisoned].akool_id == poisoned

        # The dict-returning call keeps its type and raises naming the id, with the others' results.
        with pytest.raises(AkoolPartialReplyError, match=f"the entry of {poisoned}") as caught:
            call(hook, "get_reage_results", [good, poisoned])
        assert set(caught.value.found) == {good}
        assert good not in str(caught.value)
        # An id whose entry is fine is not held up by a poisoned job it did not ask for.
        assert set(call(hook, "get_reage_results", [good])) == {good}
        # One request per call: nothing is retried for an unreadable entry.
        assert emulator_client.counts()["listbyids"] == 3

    @pytest.mark.parametrize("form", ["id", "object"])
    def test_an_entry_without_a_readable_id_is_ignored_with_a_warning(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
        caplog: pytest.LogCaptureFixture,
        form: str,
    ) -> None:
        hook = AkoolHook(**FAST)
        good, poisoned = two_jobs(call, hook, emulator)
        emulator_client.poison_entry(poisoned, form)

        with caplog.at_level(logging.WARNING, logger="airflow_provider_akool.hooks.akool"):
            results = call(hook, "get_reage_results", [good, poisoned])
        # The poisoned id is simply missing: the wait's not-found grace judges it.
        assert set(results) == {good}
        assert "1 entr(ies) without a readable _id; ignored" in caplog.text

    def test_a_stray_poisoned_entry_does_not_touch_the_ids_asked_for(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        hook = AkoolHook(**FAST)
        good, poisoned = two_jobs(call, hook, emulator)
        emulator_client.poison_entry(poisoned, "status", stray=True)

        assert set(call(hook, "get_reage_results", [good])) == {good}


class TestErrorCodes:
    @pytest.mark.parametrize(
        "code",
        [1004, 1010, 1011, 1014, 1015, 1016, 1103, 1104, 1108, 1109, 1205, 1207, 1208, 1209, 1213, 1221],
    )
    def test_each_code_of_the_full_table_raises_its_class_on_both_transports(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
        code: int,
    ) -> None:
        emulator_client.add_fault("code", count=None, path="imgreage", code=code)
        cls = ERROR_CODES[code]
        with pytest.raises(cls) as caught:
            submit(call, AkoolHook(retry_limit=3, **FAST), emulator)
        assert type(caught.value) is cls
        assert caught.value.code == code
        # A retryable code (1015 "retry later") is sent again; every other refusal once.
        assert emulator_client.counts()["imgreage"] == (3 if cls.retryable else 1)

    def test_a_submit_answered_1015_is_resent_and_created_once(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        emulator_client.add_fault("code", count=1, path="imgreage", code=1015)
        job = submit(call, AkoolHook(**FAST), emulator)
        ledger = emulator_client.ledger()
        assert ledger["counts"]["imgreage"] == 2
        assert list(ledger["jobs"]) == [job.id]

    def test_a_submit_answered_1104_is_not_resent(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        emulator_client.add_fault("code", count=1, path="imgreage", code=1104)
        with pytest.raises(AkoolInsufficientCreditError):
            submit(call, AkoolHook(**FAST), emulator)
        assert emulator_client.counts()["imgreage"] == 1


class TestReplyCap:
    @pytest.mark.parametrize("announced", [False, True])
    def test_a_20_mb_reply_is_refused_without_reading_it_whole(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator_client: EmulatorClient,
        announced: bool,
    ) -> None:
        # A valid success envelope: read whole, it would parse (an empty result) and pass unnoticed.
        emulator_client.add_fault("oversized", count=1, path="listbyids", size=20_000_000, length=announced)
        with pytest.raises(AkoolResponseError, match="larger than the 4194304 bytes") as caught:
            call(AkoolHook(**FAST), "get_reage_results", ["000000000000000000000000"])
        assert ("20000000 bytes announced" in str(caught.value)) is announced
        # Not retried: the hook made one request.
        assert emulator_client.counts()["listbyids"] == 1

    def test_a_reply_streaming_without_end_is_cut_at_the_cap(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        emulator_client.add_fault("oversized", count=1, path="listbyids", size=None)
        started = time.monotonic()
        with pytest.raises(AkoolResponseError, match="the rest was not read"):
            call(AkoolHook(timeout=5, **FAST), "get_reage_results", ["000000000000000000000000"])
        assert time.monotonic() - started < 10
        # The connection was given up, not returned to the pool: the next call works.
        assert call(AkoolHook(**FAST), "get_reage_results", ["000000000000000000000000"]) == {}

    def test_a_reply_just_under_the_cap_is_read(
        self, call: Call, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        emulator_client.add_fault("oversized", count=1, path="listbyids", size=4 * 1024 * 1024)
        assert call(AkoolHook(**FAST), "get_reage_results", ["000000000000000000000000"]) == {}

    def test_an_oversized_submit_reply_is_an_ambiguous_submit_never_resent(
        self,
        call: Call,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
    ) -> None:
        emulator_client.add_fault("oversized", count=1, path="imgreage", size=20_000_000)
        with pytest.raises(AkoolSubmitOutcomeUnknownError, match="larger than"):
            submit(call, AkoolHook(**FAST), emulator)
        assert emulator_client.counts()["imgreage"] == 1

    def test_result_downloads_are_not_capped(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer
    ) -> None:
        size = 6 * 1024 * 1024
        with AkoolHook().stream_result(f"{emulator.url}/media/blob/{size}") as chunks:
            assert sum(len(chunk) for chunk in chunks) == size
