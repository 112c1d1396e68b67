"""The I/O-free core: requests built, replies interpreted, retries decided; no network involved."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_akool import protocol
from airflow_provider_akool.exceptions import (
    ERROR_CODES,
    AkoolAccountBannedError,
    AkoolAccountNotFoundError,
    AkoolApiError,
    AkoolBackgroundChangeError,
    AkoolConnectionError,
    AkoolContentAlreadyOperatedError,
    AkoolContentNotOperableError,
    AkoolError,
    AkoolFaceDetectError,
    AkoolFaceSwapError,
    AkoolImageProcessingError,
    AkoolInsufficientCreditError,
    AkoolInvalidParameterError,
    AkoolInvalidTokenError,
    AkoolJobFailedError,
    AkoolMissingAuthError,
    AkoolNotFoundError,
    AkoolNotSubscribedError,
    AkoolPartialReplyError,
    AkoolPaymentRequiredError,
    AkoolPermissionDeniedError,
    AkoolQuotaExceededError,
    AkoolRateLimitError,
    AkoolResourceNotFoundError,
    AkoolResponseError,
    AkoolResultUnavailableError,
    AkoolServerError,
    AkoolSubmitOutcomeUnknownError,
    AkoolSubscriptionRequiredError,
    AkoolTooManyFacesError,
    AkoolUnreadableResultError,
    AkoolUnsupportedVideoEncodingError,
    AkoolValidationError,
    AkoolVerificationRequiredError,
    AkoolVideoCreationError,
    AkoolVideoParseError,
    AkoolVideoProcessingError,
    AkoolVideoTooLargeError,
    error_for_code,
)
from airflow_provider_akool.models import JobStatus
from airflow_provider_akool.wait import JobSnapshot, WaitEvent, poll_error_delay
from tests.support.akool_replies import (
    SEED_BG_SUBMIT,
    SEED_INFOBYMODELID,
    SEED_JOB_DEL,
    SEED_LISTBYIDS,
    SEED_MODIFY_IMAGE,
    SEED_REAGE_SUBMIT,
    SEED_TARGET,
)


def reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> protocol.HttpReply:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return protocol.HttpReply(status=status, headers=headers or {}, content=body)


def image_reage_request() -> protocol.AkoolRequest[Any]:
    return protocol.build_image_reage(SEED_MODIFY_IMAGE, 10, SEED_TARGET)


class TestBuildRequests:
    def test_image_reage_body_is_the_seed_body(self) -> None:
        request = protocol.build_image_reage(
            SEED_MODIFY_IMAGE, "10", SEED_TARGET, webhook_url="http://localhost:3007/api/webhook"
        )
        assert request.method == "POST"
        assert request.url("https://openapi.akool.com") == (
            "https://openapi.akool.com/api/open/v3/faceswap/highquality/imgreage"
        )
        assert request.json == {
            "targetImage": SEED_TARGET,
            "face_reage": 10,
            "modifyImage": SEED_MODIFY_IMAGE,
            "webhookUrl": "http://localhost:3007/api/webhook",
        }
        assert request.creates_job

    def test_video_reage_uses_modify_video(self) -> None:
        request = protocol.build_video_reage("https://x.test/v.mp4", -5, SEED_TARGET)
        assert request.path.endswith("/faceswap/highquality/vidreage")
        assert request.json is not None
        assert request.json["modifyVideo"] == "https://x.test/v.mp4"
        assert "webhookUrl" not in request.json

    def test_listbyids_joins_ids_with_commas(self) -> None:
        request = protocol.build_list_reage_results(["a1", "b2", "a1"])
        assert request.method == "GET"
        assert request.params == {"_ids": "a1,b2"}
        assert not request.creates_job

    def test_cancel_sends_job_ids_as_a_comma_list(self) -> None:
        request = protocol.build_cancel_reage(["20240102082900592-5653", "20240102082900592-5654"])
        assert request.json == {"job_ids": "20240102082900592-5653,20240102082900592-5654"}
        assert not request.creates_job

    def test_background_change_with_template_and_colour(self) -> None:
        request = protocol.build_background_change(
            origin_img="https://x.test/p.png",
            canvas_size=(3840, 3840),
            modify_origin_img_size="3062x3828",
            overlay_origin_x=-72,
            overlay_origin_y="-84",
            color_code="#AAFBE3",
            template_url="https://x.test/t.png",
            modify_template_size="3828x3828",
            overlay_template_x=2049,
            overlay_template_y=-6,
            remove_bg=True,
        )
        assert request.json == {
            "origin_img": "https://x.test/p.png",
            "canvas_size": "3840x3840",
            "modify_origin_img_size": "3062x3828",
            "overlay_origin_x": -72,
            "overlay_origin_y": -84,
            "color_code": "#aafbe3",
            "template_url": "https://x.test/t.png",
            "modify_template_size": "3828x3828",
            "overlay_template_x": 2049,
            "overlay_template_y": -6,
            "removeBg": True,
        }

    def test_background_change_template_parameters_need_template_url(self) -> None:
        with pytest.raises(
            AkoolValidationError, match="overlay_template_x may only be given with template_url"
        ):
            protocol.build_background_change(
                origin_img="https://x.test/p.png",
                canvas_size="10x10",
                modify_origin_img_size="10x10",
                overlay_origin_x=0,
                overlay_origin_y=0,
                overlay_template_x=3,
            )

    def test_detect_goes_to_the_detect_url(self) -> None:
        request = protocol.build_detect_faces("https://sg3.akool.com/detect", SEED_MODIFY_IMAGE, False)
        assert request.url("https://openapi.akool.com") == "https://sg3.akool.com/detect"
        assert request.json == {"single_face": False, "image_url": SEED_MODIFY_IMAGE}
        assert request.envelope == "detect"

    def test_get_token_is_not_authenticated_and_carries_the_credentials_in_the_body(self) -> None:
        request = protocol.build_get_token("cid", "secret")
        assert not request.authenticated
        assert request.json == {"clientId": "cid", "clientSecret": "secret"}

    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [
            ({"face_reage": 31}, "face_reage"),
            ({"face_reage": "ten"}, "face_reage"),
            ({"face_reage": True}, "face_reage"),
            ({"modify_image": "ftp://x.test/a.jpg"}, "modify_image"),
            ({"target_image": []}, "target_image"),
            (
                {"target_image": [{"path": "https://x.test/a.jpg", "opts": "1,2:3,4"}]},
                r"target_image\[0\].opts",
            ),
            ({"target_image": SEED_TARGET * 9}, "target_image"),
        ],
    )
    def test_bad_input_names_the_parameter(self, kwargs: dict[str, Any], name: str) -> None:
        arguments: dict[str, Any] = {
            "modify_image": SEED_MODIFY_IMAGE,
            "face_reage": 10,
            "target_image": SEED_TARGET,
        }
        arguments.update(kwargs)
        with pytest.raises(AkoolValidationError, match=f"^Akool: {name} must be"):
            protocol.build_image_reage(**arguments)


class TestSeedRepliesParseExactly:
    def test_reage_submit(self) -> None:
        job = protocol.interpret(image_reage_request(), reply(SEED_REAGE_SUBMIT))
        assert job.id == "6593c94c0ef703e8c055e3c8"
        assert job.job_id == "20240102082900592-5653"
        assert job.url == SEED_REAGE_SUBMIT["data"]["url"]  # type: ignore[index]

    def test_listbyids(self) -> None:
        request = protocol.build_list_reage_results(["64dae65af6e250d4fb2bca63"])
        results = protocol.interpret(request, reply(SEED_LISTBYIDS))
        result = results["64dae65af6e250d4fb2bca63"]
        assert result.status is JobStatus.QUEUED
        assert result.created_at == "2023-08-15T02:43:38.536Z"
        assert result.url is not None
        assert result.url.endswith("-0356.jpg")

    def test_listbyids_matches_by_id_not_position_and_ignores_ids_not_asked(self) -> None:
        payload = {
            "code": 1000,
            "msg": "OK",
            "data": {
                "result": [
                    {"_id": "b", "faceswap_status": 3, "url": "https://x.test/b.jpg"},
                    {"_id": "zzz", "faceswap_status": 3},
                    {"_id": "a", "faceswap_status": 4},
                ]
            },
        }
        results = protocol.interpret(protocol.build_list_reage_results(["a", "b", "c"]), reply(payload))
        assert set(results) == {"a", "b"}
        assert results["a"].status is JobStatus.FAILED
        assert results["b"].status is JobStatus.SUCCESS

    def test_job_del(self) -> None:
        assert protocol.interpret(protocol.build_cancel_reage(["j1"]), reply(SEED_JOB_DEL)) is None

    def test_background_change_submit(self) -> None:
        request = protocol.build_background_change(
            origin_img="https://x.test/p.png",
            canvas_size="3840x3840",
            modify_origin_img_size="3060x3824",
            overlay_origin_x=388,
            overlay_origin_y=8,
        )
        job = protocol.interpret(request, reply(SEED_BG_SUBMIT))
        assert job.id == "660d15b83ec46e810ca642f5"
        assert job.status is JobStatus.QUEUED

    def test_infobymodelid(self) -> None:
        result = protocol.interpret(
            protocol.build_image_result("660d15b83ec46e810ca642f5"), reply(SEED_INFOBYMODELID)
        )
        assert result.status is JobStatus.SUCCESS
        assert result.image_url == SEED_INFOBYMODELID["data"]["image"]  # type: ignore[index]
        assert result.external_img == SEED_INFOBYMODELID["data"]["external_img"]  # type: ignore[index]
        assert result.error_reasons == []

    def test_detect(self) -> None:
        payload = {
            "error_code": 0,
            "error_msg": "SUCCESS",
            "landmarks": [[[1, 2]] * 6, [[3, 4]] * 6],
            "landmarks_str": ["1,2:3,4:5,6:7,8", "9,10:11,12:13,14:15,16"],
            "region": [[0, 0, 10, 10], [20, 20, 10, 10]],
            "seconds": 0.1,
            "trx_id": "t",
        }
        request = protocol.build_detect_faces("https://sg3.akool.com/detect", SEED_MODIFY_IMAGE)
        faces = protocol.interpret(request, reply(payload))
        assert faces.target_image() == [
            {"path": SEED_MODIFY_IMAGE, "opts": "1,2:3,4:5,6:7,8"},
            {"path": SEED_MODIFY_IMAGE, "opts": "9,10:11,12:13,14:15,16"},
        ]
        assert faces.faces[1].region == [20, 20, 10, 10]

    def test_get_token_reads_the_token_beside_the_code(self) -> None:
        token = protocol.interpret(protocol.build_get_token("c", "s"), reply({"code": 1000, "token": "tok"}))
        assert token == "tok"


class TestErrors:
    @pytest.mark.parametrize(
        ("code", "cls"),
        [
            (1003, AkoolInvalidParameterError),
            (1005, AkoolRateLimitError),
            (1006, AkoolQuotaExceededError),
            (1007, AkoolTooManyFacesError),
            (1008, AkoolNotFoundError),
            (1009, AkoolPermissionDeniedError),
            (1101, AkoolInvalidTokenError),
            (1102, AkoolMissingAuthError),
            (1200, AkoolAccountBannedError),
            (1206, AkoolBackgroundChangeError),
            (4242, AkoolApiError),
        ],
    )
    def test_each_code_raises_its_class_with_code_message_and_endpoint(self, code: int, cls: type) -> None:
        with pytest.raises(cls) as caught:
            protocol.interpret(image_reage_request(), reply({"code": code, "msg": "the message"}))
        assert type(caught.value) is cls
        assert caught.value.code == code
        assert caught.value.endpoint == "imgreage"
        assert str(caught.value) == f"Akool [imgreage] (code {code}): the message"

    def test_every_documented_code_has_a_class(self) -> None:
        # The current docs' codes and the whole table of Akool's older error-code page (AKOOL_API.md).
        current = {1003, 1005, 1006, 1007, 1008, 1009, 1101, 1102, 1200, 1206}
        full_table = {1004, 1010, 1011, 1014, 1015, 1016, 1103, 1104, 1108, 1109, 1205, 1207, 1208, 1209}
        assert set(ERROR_CODES) == current | full_table | {1213, 1221}

    def test_detect_error_code(self) -> None:
        request = protocol.build_detect_faces("https://sg3.akool.com/detect", SEED_MODIFY_IMAGE)
        with pytest.raises(AkoolFaceDetectError, match="no image"):
            protocol.interpret(request, reply({"error_code": 2, "error_msg": "no image"}))

    def test_html_error_page_is_a_response_error(self) -> None:
        with pytest.raises(AkoolResponseError, match="not JSON"):
            protocol.interpret(image_reage_request(), reply(b"<html><body>Bad gateway</body></html>", 200))

    def test_http_5xx_is_a_server_error(self) -> None:
        with pytest.raises(AkoolServerError) as caught:
            protocol.interpret(image_reage_request(), reply(b"<html>502</html>", 502))
        assert caught.value.http_status == 502

    def test_http_429_carries_retry_after(self) -> None:
        with pytest.raises(AkoolRateLimitError) as caught:
            protocol.interpret(image_reage_request(), reply({}, 429, {"retry-after": "7"}))
        assert caught.value.retry_after == 7.0

    @pytest.mark.parametrize(
        "payload",
        [
            {"code": 1000, "msg": "OK"},
            {"code": 1000, "data": {"url": "x"}},
            {"code": 1000, "data": []},
            {"code": "1000", "data": {}},
            {"msg": "no code"},
            [1, 2],
        ],
    )
    def test_missing_fields_are_a_response_error_never_a_key_error(self, payload: Any) -> None:
        with pytest.raises(AkoolResponseError):
            protocol.interpret(image_reage_request(), reply(payload))

    def test_unknown_status_is_a_response_error(self) -> None:
        payload = {"code": 1000, "data": {"result": [{"_id": "a", "faceswap_status": 9}]}}
        with pytest.raises(AkoolResponseError, match="the entry of a has faceswap_status 9"):
            protocol.interpret(protocol.build_list_reage_results(["a"]), reply(payload))

    def test_errors_survive_pickling(self) -> None:
        error = AkoolServerError("boom", http_status=503, endpoint="listbyids")
        copy = pickle.loads(pickle.dumps(error))
        assert (type(copy), str(copy), copy.http_status) == (AkoolServerError, str(error), 503)

    def test_download_status(self) -> None:
        assert protocol.download_error(200, {}) is None
        expired = protocol.download_error(403, {})
        assert isinstance(expired, AkoolResultUnavailableError)
        assert "7 days" in str(expired)
        assert isinstance(protocol.download_error(503, {}), AkoolServerError)


class TestRetryRule:
    read = protocol.build_list_reage_results(["a"])
    submit = image_reage_request()

    @pytest.mark.parametrize(
        ("error", "read_retries", "submit_retries"),
        [
            (AkoolConnectionError("refused", request_sent=False), True, True),
            (AkoolConnectionError("read timeout", request_sent=True), True, False),
            (AkoolServerError("502", http_status=502), True, False),
            (AkoolRateLimitError("1005", code=1005), True, True),
            (AkoolRateLimitError("429", retry_after=1.0), True, True),
            (AkoolInvalidParameterError("1003", code=1003), False, False),
            (AkoolResponseError("not json"), False, False),
        ],
    )
    def test_reads_retry_transient_errors_submits_only_when_nothing_was_created(
        self, error: Exception, read_retries: bool, submit_retries: bool
    ) -> None:
        assert protocol.is_retryable(self.read, error) is read_retries
        assert protocol.is_retryable(self.submit, error) is submit_retries

    def test_an_ambiguous_submit_failure_says_the_job_may_exist(self) -> None:
        error = protocol.explain_failure(self.submit, AkoolConnectionError("timeout", request_sent=True))
        assert isinstance(error, AkoolSubmitOutcomeUnknownError)
        assert "may have reached Akool" in str(error)
        assert "not sent again" in str(error)

    def test_a_read_failure_is_left_as_it_is(self) -> None:
        error = AkoolConnectionError("timeout", request_sent=True)
        assert protocol.explain_failure(self.read, error) is error

    @pytest.mark.parametrize(
        ("header", "seconds"), [("3", 3.0), ("0.5", 0.5), ("-1", 0.0), ("soon", None), (None, None)]
    )
    def test_retry_after(self, header: str | None, seconds: float | None) -> None:
        assert protocol.retry_after_seconds(header) == seconds

    def test_retry_after_as_an_http_date_in_the_past_is_zero(self) -> None:
        assert protocol.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# --- Each listbyids entry judged on its own (issue 10) ------------------------------------------------

GOOD_A = {"_id": "a", "faceswap_status": 3, "url": "https://x.test/a.jpg", "job_id": "j-a"}
GOOD_C = {"_id": "c", "faceswap_status": 2}


def listbyids(*entries: Any) -> dict[str, Any]:
    return {"code": 1000, "msg": "OK", "data": {"result": list(entries)}}


class TestEntriesJudgedOneByOne:
    @pytest.mark.parametrize(
        ("poisoned", "says"),
        [
            ({"_id": "b", "faceswap_status": 7}, "faceswap_status 7"),
            ({"_id": "b", "faceswap_status": "3"}, "faceswap_status '3'"),
            ({"_id": "b", "faceswap_status": True}, "faceswap_status True"),
            ({"_id": "b", "faceswap_status": None}, "faceswap_status None"),
            ({"_id": "b"}, "faceswap_status None"),
            ({"_id": "b", "faceswap_status": 3, "url": 12345}, "url that is not a string"),
            ({"_id": "b", "faceswap_status": 3, "job_id": ["j"]}, "job_id that is not a string"),
            ({"_id": "b", "faceswap_status": 3, "createdAt": 17}, "createdAt that is not a string"),
        ],
    )
    def test_an_unreadable_entry_is_an_error_of_its_own_id_only(self, poisoned: Any, says: str) -> None:
        entries = protocol.interpret(
            protocol.build_list_reage_entries(["a", "b", "c"]), reply(listbyids(GOOD_A, poisoned, GOOD_C))
        )

        assert set(entries.results) == {"a", "c"}
        assert entries.results["a"].status is JobStatus.SUCCESS
        assert entries.results["c"].status is JobStatus.PROCESSING
        assert set(entries.errors) == {"b"}
        error = entries.errors["b"]
        assert isinstance(error, AkoolUnreadableResultError)
        assert isinstance(error, AkoolResponseError)
        assert error.akool_id == "b"
        assert says in str(error)
        assert "the entry of b" in str(error)

    @pytest.mark.parametrize(
        "unattributable",
        [None, "error", 7, ["b"], {"faceswap_status": 3}, {"_id": 7, "faceswap_status": 3}, {"_id": ""}],
    )
    def test_an_entry_without_a_readable_id_is_ignored_and_counted(self, unattributable: Any) -> None:
        entries = protocol.interpret(
            protocol.build_list_reage_entries(["a", "b"]), reply(listbyids(unattributable, GOOD_A))
        )

        assert set(entries.results) == {"a"}
        assert entries.errors == {}
        assert entries.ignored == 1  # b is missing: its wait's not-found grace judges it

    def test_an_unreadable_entry_of_an_id_not_asked_for_is_not_read(self) -> None:
        entries = protocol.interpret(
            protocol.build_list_reage_entries(["a"]),
            reply(listbyids({"_id": "zzz", "faceswap_status": 99}, GOOD_A)),
        )
        assert (set(entries.results), entries.errors, entries.ignored) == ({"a"}, {}, 0)

    def test_the_same_id_twice_with_the_same_contents_is_read_once(self) -> None:
        entries = protocol.interpret(
            protocol.build_list_reage_entries(["a"]), reply(listbyids(GOOD_A, dict(GOOD_A)))
        )
        assert entries.results["a"].status is JobStatus.SUCCESS
        assert entries.errors == {}

    def test_the_same_id_twice_with_different_contents_is_an_error_of_that_id(self) -> None:
        older = {**GOOD_A, "faceswap_status": 2}
        entries = protocol.interpret(
            protocol.build_list_reage_entries(["a", "c"]), reply(listbyids(GOOD_A, GOOD_C, older))
        )
        assert set(entries.results) == {"c"}
        assert "a appears 2 times in the reply with different contents" in str(entries.errors["a"])

    def test_an_envelope_without_a_result_list_is_still_an_error_of_the_whole_reply(self) -> None:
        with pytest.raises(AkoolResponseError, match="'result'"):
            protocol.interpret(protocol.build_list_reage_entries(["a"]), reply({"code": 1000, "data": {}}))

    def test_results_raise_naming_the_id_and_carry_the_readable_ones(self) -> None:
        payload = listbyids(GOOD_A, {"_id": "b", "faceswap_status": 0})
        with pytest.raises(AkoolPartialReplyError) as caught:
            protocol.interpret(protocol.build_list_reage_results(["a", "b"]), reply(payload))

        error = caught.value
        assert "the entry of b has faceswap_status 0" in str(error)
        assert set(error.found) == {"a"}
        assert set(error.errors) == {"b"}
        # Still an AkoolResponseError: a wait backs off and polls again, within its error budget.
        assert isinstance(error, AkoolResponseError)

    def test_results_of_readable_entries_come_back_whatever_else_the_reply_holds(self) -> None:
        payload = listbyids("junk", {"faceswap_status": 3}, {"_id": "zzz", "faceswap_status": 9}, GOOD_A)
        results = protocol.interpret(protocol.build_list_reage_results(["a"]), reply(payload))
        assert set(results) == {"a"}


# --- Akool's whole error table, by code ---------------------------------------------------------------

#: code: (class, retryable, fails the task without using its retries)
ERROR_TABLE: dict[int, tuple[type[AkoolError], bool, bool]] = {
    1003: (AkoolInvalidParameterError, False, True),
    1004: (AkoolVerificationRequiredError, False, True),
    1005: (AkoolRateLimitError, True, False),
    1006: (AkoolQuotaExceededError, False, True),
    1007: (AkoolTooManyFacesError, False, True),
    1008: (AkoolNotFoundError, False, False),
    1009: (AkoolPermissionDeniedError, False, True),
    1010: (AkoolContentNotOperableError, False, True),
    1011: (AkoolContentAlreadyOperatedError, False, True),
    1014: (AkoolResourceNotFoundError, False, False),
    1015: (AkoolVideoProcessingError, True, False),
    1016: (AkoolFaceSwapError, False, False),
    1101: (AkoolInvalidTokenError, False, False),
    1102: (AkoolMissingAuthError, False, True),
    1103: (AkoolPaymentRequiredError, False, True),
    1104: (AkoolInsufficientCreditError, False, True),
    1108: (AkoolImageProcessingError, False, False),
    1109: (AkoolAccountNotFoundError, False, True),
    1200: (AkoolAccountBannedError, False, True),
    1205: (AkoolVideoCreationError, False, False),
    1206: (AkoolBackgroundChangeError, False, False),
    1207: (AkoolVideoTooLargeError, False, True),
    1208: (AkoolVideoParseError, False, True),
    1209: (AkoolUnsupportedVideoEncodingError, False, True),
    1213: (AkoolSubscriptionRequiredError, False, True),
    1221: (AkoolNotSubscribedError, False, True),
}


class TestErrorTable:
    def test_the_table_covers_every_code(self) -> None:
        assert set(ERROR_TABLE) == set(ERROR_CODES)

    @pytest.mark.parametrize("code", sorted(ERROR_TABLE))
    def test_each_code_maps_to_its_class_by_code_not_by_message(self, code: int) -> None:
        cls, retryable, fails_at_once = ERROR_TABLE[code]
        # The message of another code: the class must follow the code.
        payload = {"code": code, "msg": "Operation is too frequent"}
        with pytest.raises(cls) as caught:
            protocol.interpret(image_reage_request(), reply(payload))

        error = caught.value
        assert type(error) is cls
        assert error.code == code
        assert error.retryable is retryable
        assert error.task_retry_can_fix is not fails_at_once
        # What Airflow itself reads to skip the task's retries.
        assert isinstance(error, AirflowFailException) is fails_at_once

    @pytest.mark.parametrize("code", sorted(ERROR_TABLE))
    def test_each_code_follows_its_retry_fact_in_the_hook_rule_and_the_waits_backoff(self, code: int) -> None:
        _, retryable, _ = ERROR_TABLE[code]
        error = error_for_code(code, "m", "listbyids")
        assert protocol.is_retryable(protocol.build_list_reage_results(["a"]), error) is retryable
        # An answered refusal created nothing: a submission follows the same fact.
        assert protocol.is_retryable(image_reage_request(), error) is retryable
        assert (poll_error_delay(error, 1, 5.0, 10) is not None) is retryable

    def test_1015_is_retried_and_1104_is_not(self) -> None:
        submit = image_reage_request()
        assert protocol.is_retryable(submit, error_for_code(1015, "retry later"))
        assert not protocol.is_retryable(submit, error_for_code(1104, "no credit"))

    @pytest.mark.parametrize(
        ("error", "fails_at_once"),
        [
            (AkoolValidationError("bad"), True),
            (AkoolSubmitOutcomeUnknownError("maybe"), True),
            (AkoolJobFailedError("failed", akool_id="a"), False),
            (AkoolServerError("502", http_status=502), False),
            (AkoolConnectionError("timeout", request_sent=True), False),
            (AkoolRateLimitError("429", retry_after=1.0), False),
            (AkoolResponseError("not json"), False),
        ],
    )
    def test_errors_of_no_code_state_whether_a_task_retry_helps(
        self, error: AkoolError, fails_at_once: bool
    ) -> None:
        assert isinstance(error, AirflowFailException) is fails_at_once
        assert error.task_retry_can_fix is not fails_at_once

    @pytest.mark.parametrize("code", sorted(ERROR_TABLE))
    def test_a_rebuilt_error_event_keeps_the_class_and_so_its_facts(self, code: int) -> None:
        cls, _, fails_at_once = ERROR_TABLE[code]
        event = WaitEvent.of_error(error_for_code(code, "m", "listbyids"), [JobSnapshot("a", None)])
        payload = WaitEvent.from_payload(json.loads(json.dumps(event.to_payload())))
        with pytest.raises(cls) as caught:
            payload.raise_for_status()
        assert isinstance(caught.value, AirflowFailException) is fails_at_once


class TestReplyCap:
    def test_the_cap_is_a_few_mib(self) -> None:
        assert 1024 * 1024 <= protocol.MAX_REPLY_BYTES <= 8 * 1024 * 1024

    def test_an_oversized_reply_is_a_response_error_that_says_the_rest_was_not_read(self) -> None:
        error = protocol.reply_too_large("listbyids", 20_000_000)
        assert isinstance(error, AkoolResponseError)
        assert "20000000 bytes announced" in str(error)
        assert "the rest was not read" in str(error)

    @pytest.mark.parametrize(("header", "length"), [("12", 12), ("x", None), (None, None)])
    def test_announced_length(self, header: str | None, length: int | None) -> None:
        headers = {} if header is None else {"content-length": header}
        assert protocol.announced_length(headers) == length


class TestCredit:
    def test_the_request_is_an_authenticated_get_of_quota_info(self) -> None:
        request = protocol.build_get_credit()
        assert (request.method, request.url("https://openapi.akool.com")) == (
            "GET",
            "https://openapi.akool.com/api/open/v3/faceswap/quota/info",
        )
        assert request.authenticated
        assert not request.creates_job

    @pytest.mark.parametrize("credit", [0, 1234, 12.5])
    def test_the_balance_is_read_as_the_number_akool_sent(self, credit: float) -> None:
        request = protocol.build_get_credit()
        value = protocol.interpret(request, reply({"code": 1000, "msg": "OK", "data": {"credit": credit}}))
        assert value == credit
        assert type(value) is type(credit)

    @pytest.mark.parametrize(
        ("data", "shown"),
        [
            ({}, "absent"),
            ({"credit": "12"}, "a str"),
            ({"credit": True}, "a bool"),
            ({"credit": None}, "absent"),
            ({"credit": [1]}, "a list"),
        ],
    )
    def test_a_reply_without_a_number_is_a_clear_response_error(self, data: Any, shown: str) -> None:
        with pytest.raises(AkoolResponseError, match=rf"data\.credit is {shown}, not a number") as info:
            protocol.interpret(protocol.build_get_credit(), reply({"code": 1000, "msg": "OK", "data": data}))
        assert info.value.endpoint == "quota_info"

    def test_a_non_finite_balance_is_refused(self) -> None:
        # Python's json reads the non-standard NaN and Infinity literals; no balance is either.
        for literal in (b"NaN", b"Infinity"):
            body = b'{"code": 1000, "msg": "OK", "data": {"credit": ' + literal + b"}}"
            with pytest.raises(AkoolResponseError, match="not a number of credits"):
                protocol.interpret(
                    protocol.build_get_credit(), protocol.HttpReply(status=200, headers={}, content=body)
                )

    def test_a_reply_without_data_is_a_response_error(self) -> None:
        with pytest.raises(AkoolResponseError, match="'data'"):
            protocol.interpret(protocol.build_get_credit(), reply({"code": 1000, "msg": "OK"}))

    def test_an_error_code_maps_to_its_class(self) -> None:
        with pytest.raises(AkoolAccountBannedError):
            protocol.interpret(protocol.build_get_credit(), reply({"code": 1200, "msg": "banned"}))
