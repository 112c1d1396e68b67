"""
Property-based tests: the validators accept exactly the allowed forms, and the reply parser never raises
anything but this provider's exceptions, whatever the body.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_akool import protocol, validation
from airflow_provider_akool.exceptions import AkoolError, AkoolResponseError, AkoolValidationError
from airflow_provider_akool.models import (
    BackgroundChangeJob,
    BackgroundChangeResult,
    DetectedFaces,
    JobStatus,
    ReageJob,
    ReageResult,
)
from tests.support.akool_replies import (
    SEED_BG_SUBMIT,
    SEED_INFOBYMODELID,
    SEED_JOB_DEL,
    SEED_LISTBYIDS,
    SEED_MODIFY_IMAGE,
    SEED_REAGE_SUBMIT,
    SEED_TARGET,
)

# Enough examples to find the edge cases, few enough that the file runs in seconds. The parser's
# properties run once per request builder, so each run takes fewer.
moderate = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
per_call = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.from_regex(r"[a-z][a-z_]{0,19}", fullmatch=True)
ints = st.integers(-(10**12), 10**12)
# Values of any type, as templates and XComs can hand over.
anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
spaces = st.sampled_from(["", " ", "  ", "\t", "\n"])


def attempt(call: Callable[[], Any]) -> tuple[Any, AkoolValidationError | None]:
    """Return ``(value, None)`` if ``call`` accepts, ``(None, error)`` if it refuses; other errors escape."""
    try:
        return call(), None
    except AkoolValidationError as err:
        return None, err


def refused(call: Callable[[], Any], name: str) -> AkoolValidationError:
    """Assert that ``call`` raises AkoolValidationError naming ``name``, and return it."""
    with pytest.raises(AkoolValidationError) as caught:
        call()
    assert f"{name} must be" in str(caught.value)
    return caught.value


# --- Integers and face_reage --------------------------------------------------------------------------


@moderate
@given(age=st.integers(-30, 30), pad=spaces)
def test_any_face_reage_in_range_is_accepted_as_int_or_text(age: int, pad: str) -> None:
    assert validation.face_reage(age) == age
    assert validation.face_reage(str(age)) == age
    assert validation.face_reage(f"{pad}{age:+d}{pad}") == age


@moderate
@given(age=st.integers().filter(lambda n: not -30 <= n <= 30), name=names)
def test_any_face_reage_out_of_range_is_refused_naming_the_parameter(age: int, name: str) -> None:
    error = refused(lambda: validation.face_reage(age, name), name)
    assert "from -30 to 30" in str(error)
    refused(lambda: validation.face_reage(str(age), name), name)


@moderate
@given(value=anything.filter(lambda v: not isinstance(v, (int, str)) or isinstance(v, bool)))
def test_a_face_reage_that_is_no_int_or_text_is_refused(value: Any) -> None:
    refused(lambda: validation.face_reage(value), "face_reage")


# U+001C to U+001F are whitespace to a Unicode \s but not to int(): pinned by their own test below.
INT_SEPARATORS = "\x1c\x1d\x1e\x1f"


@moderate
@given(text=st.text(st.characters(exclude_characters=INT_SEPARATORS), max_size=12))
def test_face_reage_text_is_accepted_only_as_a_whole_number_in_range(text: str) -> None:
    age, error = attempt(lambda: validation.face_reage(text))
    if error:
        assert "face_reage must be" in str(error)
        plain = text.strip().lstrip("+-")
        assert not (plain.isascii() and plain.isdigit() and -30 <= int(text) <= 30)
    else:
        assert age == int(text)
        assert -30 <= age <= 30


@pytest.mark.parametrize("separator", INT_SEPARATORS)
def test_integer_text_with_an_ascii_separator_is_refused_naming_the_parameter(separator: str) -> None:
    refused(lambda: validation.face_reage(f"5{separator}"), "face_reage")


@moderate
@given(low=ints, span=st.integers(0, 10**6), offset=st.integers(-(10**6), 10**6), name=names)
def test_integer_accepts_exactly_the_bounded_range(low: int, span: int, offset: int, name: str) -> None:
    high = low + span
    value = low + offset
    if low <= value <= high:
        assert validation.integer(name, value, minimum=low, maximum=high) == value
        assert validation.integer(name, str(value), minimum=low, maximum=high) == value
    else:
        refused(lambda: validation.integer(name, value, minimum=low, maximum=high), name)


@moderate
@given(value=st.floats(min_value=1e-9, max_value=1e12) | st.integers(1, 10**12), name=names)
def test_any_positive_duration_is_accepted(value: float, name: str) -> None:
    assert validation.seconds(name, value) == float(value)
    assert validation.seconds(name, repr(value)) == float(value)


@moderate
@given(
    value=st.floats(max_value=0)
    | st.integers(max_value=0)
    | st.just(math.inf)
    | st.just(math.nan)
    | st.booleans(),
    name=names,
)
def test_a_duration_that_is_not_positive_and_finite_is_refused(value: float, name: str) -> None:
    refused(lambda: validation.seconds(name, value), name)


# --- Sizes, colours, booleans ---------------------------------------------------------------------


@moderate
@given(width=st.integers(1, 10**9), height=st.integers(1, 10**9), pad=spaces, x=st.sampled_from("xX"))
def test_any_positive_size_is_accepted_as_text_or_pair(width: int, height: int, pad: str, x: str) -> None:
    expected = f"{width}x{height}"
    assert validation.size("canvas_size", (width, height)) == expected
    assert validation.size("canvas_size", [width, height]) == expected
    assert validation.size("canvas_size", f"{pad}{width}{pad}{x}{pad}{height}{pad}") == expected


@moderate
@given(width=st.integers(-(10**6), 10**6), height=st.integers(-(10**6), 0), name=names, swap=st.booleans())
def test_a_size_with_a_side_not_positive_is_refused(width: int, height: int, name: str, swap: bool) -> None:
    pair = (height, width) if swap else (width, height)
    refused(lambda: validation.size(name, pair), name)
    if width >= 0:
        refused(lambda: validation.size(name, f"{pair[0]}x{pair[1]}"), name)


@moderate
@given(
    pair=st.tuples(anything, anything).filter(
        lambda p: not all(isinstance(v, int) and not isinstance(v, bool) for v in p)
    )
    | st.lists(st.integers(1, 100), min_size=0, max_size=5).filter(lambda v: len(v) != 2),
    name=names,
)
def test_a_size_pair_of_anything_but_two_ints_is_refused(pair: Any, name: str) -> None:
    refused(lambda: validation.size(name, pair), name)


@moderate
@given(text=st.text(max_size=16), name=names)
def test_size_text_is_normalised_to_plain_wxh_or_refused(text: str, name: str) -> None:
    result, error = attempt(lambda: validation.size(name, text))
    if error:
        assert f"{name} must be" in str(error)
    else:
        match = re.fullmatch(r"([0-9]+)x([0-9]+)", result)
        assert match
        assert int(match.group(1)) > 0
        assert int(match.group(2)) > 0


@moderate
@given(digits=st.text(string.hexdigits, min_size=6, max_size=6), pad=spaces)
def test_any_six_digit_hex_colour_is_accepted_in_lower_case(digits: str, pad: str) -> None:
    assert validation.colour("color_code", f"{pad}#{digits}{pad}") == f"#{digits.lower()}"


@moderate
@given(text=st.text(max_size=10) | anything, name=names)
def test_a_colour_is_returned_as_hash_and_six_lower_hex_digits_or_refused(text: Any, name: str) -> None:
    result, error = attempt(lambda: validation.colour(name, text))
    if error:
        assert f"{name} must be" in str(error)
    else:
        assert re.fullmatch(r"#[0-9a-f]{6}", result)


@moderate
@given(flag=st.booleans(), pad=spaces, upper=st.booleans())
def test_booleans_and_their_text_are_accepted(flag: bool, pad: str, upper: bool) -> None:
    text = str(flag).upper() if upper else str(flag).lower()
    assert validation.boolean("remove_bg", flag) is flag
    assert validation.boolean("remove_bg", f"{pad}{text}{pad}") is flag


@moderate
@given(
    value=anything.filter(lambda v: not isinstance(v, bool) and not isinstance(v, str)) | st.text(max_size=6)
)
def test_anything_else_is_not_a_boolean(value: Any) -> None:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return
    refused(lambda: validation.boolean("remove_bg", value), "remove_bg")


# --- opts and target_image ------------------------------------------------------------------------

coordinates = st.lists(st.integers(-(10**6), 10**6), min_size=8, max_size=8)


def opts_text(values: list[int]) -> str:
    return ":".join(f"{values[i]},{values[i + 1]}" for i in range(0, 8, 2))


hosts = st.builds(
    lambda name, domain: name + domain,
    st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12),
    st.sampled_from(["", ".test", ".example.com", ".co.uk"]),
)
paths = st.text(string.ascii_letters + string.digits + "-._~/%", max_size=30)
http_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
    st.sampled_from(["http", "https", "HTTP", "Https"]),
    hosts,
    st.sampled_from(["", ":80", ":8443"]),
    paths,
)
faces = st.builds(
    lambda url, values, pad: {"path": f"{pad}{url}{pad}", "opts": f"{pad}{opts_text(values)}{pad}"},
    http_urls,
    coordinates,
    spaces,
)


@moderate
@given(values=coordinates, pad=spaces)
def test_any_four_integer_points_are_valid_opts(values: list[int], pad: str) -> None:
    text = opts_text(values)
    assert validation.face_opts("opts", f"{pad}{text}{pad}") == text


@moderate
@given(text=st.text(max_size=40), name=names)
def test_opts_text_is_four_integer_pairs_or_refused(text: str, name: str) -> None:
    result, error = attempt(lambda: validation.face_opts(name, text))
    if error:
        assert f"{name} must be" in str(error)
    else:
        points = result.split(":")
        assert len(points) == 4
        assert all(len(point.split(",")) == 2 for point in points)
        assert all(int(value) is not None for point in points for value in point.split(","))


def test_opts_with_non_ascii_digits_are_refused() -> None:
    refused(lambda: validation.face_opts("opts", "\u0661,2:3,4:5,6:7,8"), "opts")


@moderate
@given(targets=st.lists(faces, min_size=1, max_size=validation.MAX_FACES), as_tuple=st.booleans())
def test_any_one_to_eight_valid_faces_are_accepted(targets: list[dict[str, str]], as_tuple: bool) -> None:
    expected = [{"path": face["path"].strip(), "opts": face["opts"].strip()} for face in targets]
    assert validation.target_image(tuple(targets) if as_tuple else targets) == expected
    assert validation.target_image(targets[0]) == expected[:1]


@settings(max_examples=50, deadline=None)
@given(targets=st.lists(faces, min_size=validation.MAX_FACES + 1, max_size=12))
def test_nine_faces_or_more_are_refused_with_the_count(targets: list[dict[str, str]]) -> None:
    error = refused(lambda: validation.target_image(targets), "target_image")
    assert f"got {len(targets)} faces" in str(error)


def test_no_face_at_all_is_refused() -> None:
    for empty in ([], (), None, ""):
        refused(lambda empty=empty: validation.target_image(empty), "target_image")


@moderate
@given(
    targets=st.lists(faces, min_size=1, max_size=validation.MAX_FACES),
    index=st.integers(0, 7),
    bad=st.sampled_from(["path", "opts", "extra key", "not a mapping", "missing opts"]),
    junk=st.text(max_size=8).filter(lambda t: not t.strip().lower().startswith("http")),
)
def test_one_bad_face_is_refused_naming_its_index(
    targets: list[dict[str, str]], index: int, bad: str, junk: str
) -> None:
    index %= len(targets)
    face: Any = dict(targets[index])
    if bad == "path":
        face["path"] = f"ftp://example.test/{junk}"
        where = f"target_image[{index}].path"
    elif bad == "opts":
        face["opts"] = f"{junk}x"
        where = f"target_image[{index}].opts"
    elif bad == "extra key":
        face["extra"] = junk
        where = f"target_image[{index}]"
    elif bad == "missing opts":
        del face["opts"]
        where = f"target_image[{index}]"
    else:
        face = [face["path"], face["opts"]]
        where = f"target_image[{index}]"
    targets = [*targets[:index], face, *targets[index + 1 :]]
    refused(lambda: validation.target_image(targets), where)


# --- URLs and ids -----------------------------------------------------------------------------------


@moderate
@given(url=http_urls, pad=spaces, name=names)
def test_any_http_url_is_accepted_and_stripped(url: str, pad: str, name: str) -> None:
    assert validation.http_url(name, f"{pad}{url}{pad}") == url
    assert validation.optional_http_url(name, url) == url


@moderate
@given(
    scheme=st.sampled_from(["ftp", "file", "s3", "javascript", "data", "gs", ""]),
    host=hosts,
    path=paths,
    name=names,
)
def test_a_url_of_another_scheme_is_refused(scheme: str, host: str, path: str, name: str) -> None:
    refused(lambda: validation.http_url(name, f"{scheme}://{host}/{path}"), name)


@moderate
@given(url=http_urls, cut=st.integers(0, 200), blank=st.sampled_from([" ", "\t", "\n", "\u00a0"]), name=names)
def test_a_url_with_whitespace_inside_or_no_host_is_refused(
    url: str, cut: int, blank: str, name: str
) -> None:
    head, tail = url.split("://", 1)
    cut = 1 + cut % len(tail) if len(tail) > 1 else 1
    refused(lambda: validation.http_url(name, f"{head}://{tail[:cut]}{blank}{tail[cut:]}x"), name)
    refused(lambda: validation.http_url(name, f"{head}:///{tail}"), name)


@moderate
@given(value=anything.filter(lambda v: not isinstance(v, str)), name=names)
def test_a_url_that_is_no_text_is_refused(value: Any, name: str) -> None:
    if value is None:
        assert validation.optional_http_url(name, value) is None
    refused(lambda: validation.http_url(name, value), name)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=30))
@example(text="http://[::1")
def test_any_text_as_a_url_is_accepted_or_refused_naming_the_parameter(text: str) -> None:
    _, error = attempt(lambda: validation.http_url("webhook_url", text))
    if error:
        assert "webhook_url must be" in str(error)


ids = st.text(
    st.characters(exclude_characters=",", exclude_categories=("Cs",)), min_size=1, max_size=12
).filter(lambda s: bool(s.strip()))


@moderate
@given(items=st.lists(ids, min_size=1, max_size=10), name=names)
def test_ids_are_stripped_and_deduplicated_in_order(items: list[str], name: str) -> None:
    expected = list(dict.fromkeys(item.strip() for item in items))
    assert validation.id_list(name, items) == expected
    assert validation.id_list(name, tuple(items)) == expected
    assert validation.id_list(name, items[0]) == [items[0].strip()]


@moderate
@given(
    items=st.lists(ids, max_size=5),
    bad=st.sampled_from(["", "   ", "a,b", 5, None, ["nested"]]),
    index=st.integers(0, 5),
    name=names,
)
def test_a_blank_id_an_id_with_a_comma_or_no_text_is_refused(
    items: list[Any], bad: Any, index: int, name: str
) -> None:
    items = [*items[:index], bad, *items[index:]]
    refused(lambda: validation.id_list(name, items), name)
    refused(lambda: validation.id_list(name, []), name)


# --- The reply parser -------------------------------------------------------------------------------

DETECT_REPLY = {
    "error_code": 0,
    "error_msg": "SUCCESS",
    "landmarks": [[[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12]]],
    "landmarks_str": ["1,2:3,4:5,6:7,8"],
    "region": [[0, 0, 10, 10]],
    "seconds": 0.1,
    "trx_id": "t",
}
SEED_ID = SEED_LISTBYIDS["data"]["result"][0]["_id"]  # type: ignore[index]
# Each request builder, with the vendor's sample reply to it and the type a good reply parses into.
CALLS: dict[str, tuple[Callable[[], protocol.AkoolRequest[Any]], dict[str, Any], type | None]] = {
    "getToken": (lambda: protocol.build_get_token("cid", "secret"), {"code": 1000, "token": "t0k3n"}, str),
    "detect": (
        lambda: protocol.build_detect_faces(protocol.DEFAULT_DETECT_URL, SEED_MODIFY_IMAGE),
        DETECT_REPLY,
        DetectedFaces,
    ),
    "imgreage": (
        lambda: protocol.build_image_reage(SEED_MODIFY_IMAGE, 10, SEED_TARGET),
        SEED_REAGE_SUBMIT,
        ReageJob,
    ),
    "vidreage": (
        lambda: protocol.build_video_reage("https://example.test/v.mp4", -5, SEED_TARGET),
        SEED_REAGE_SUBMIT,
        ReageJob,
    ),
    "listbyids": (lambda: protocol.build_list_reage_results([SEED_ID, "0" * 24]), SEED_LISTBYIDS, dict),
    "listbyids_entries": (
        lambda: protocol.build_list_reage_entries([SEED_ID, "0" * 24]),
        SEED_LISTBYIDS,
        protocol.ReageEntries,
    ),
    "job_del": (lambda: protocol.build_cancel_reage(["20240102082900592-5653"]), SEED_JOB_DEL, type(None)),
    "bg_replace": (
        lambda: protocol.build_background_change(
            origin_img=SEED_MODIFY_IMAGE,
            canvas_size="3840x3840",
            modify_origin_img_size=(3031, 2894),
            overlay_origin_x=205,
            overlay_origin_y=497,
            color_code="#aafbe3",
        ),
        SEED_BG_SUBMIT,
        BackgroundChangeJob,
    ),
    "infobymodelid": (
        lambda: protocol.build_background_change_result("660d15b83ec46e810ca642f5"),
        SEED_INFOBYMODELID,
        BackgroundChangeResult,
    ),
}
call_names = pytest.mark.parametrize("call", CALLS)


def interpret(call: str, content: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    """Interpret a reply to ``call``; anything but an AkoolError escaping fails the test."""
    request = CALLS[call][0]()
    try:
        return protocol.interpret(request, protocol.HttpReply(status, headers or {}, content))
    except AkoolError:
        return None


@call_names
def test_the_seed_reply_parses(call: str) -> None:
    _, seed, kind = CALLS[call]
    value = protocol.interpret(CALLS[call][0](), protocol.HttpReply(200, {}, json.dumps(seed).encode()))
    assert isinstance(value, kind) if kind else value is None
    if call == "listbyids":
        assert isinstance(value[SEED_ID], ReageResult)
    if call == "listbyids_entries":
        assert isinstance(value.results[SEED_ID], ReageResult)


@call_names
@pytest.mark.parametrize("indent", [None, 2])
def test_every_truncation_of_the_seed_reply_is_a_response_error(call: str, indent: int | None) -> None:
    request = CALLS[call][0]()
    full = json.dumps(CALLS[call][1], indent=indent).encode()
    for end in range(len(full)):
        with pytest.raises(AkoolResponseError):
            protocol.interpret(request, protocol.HttpReply(200, {}, full[:end]))


statuses = st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503]) | st.integers(
    100, 599
)
retry_after = (
    st.none()
    | st.text(max_size=40)
    | st.floats().map(str)
    | st.datetimes().map(lambda moment: format_datetime(moment))
)


@call_names
@per_call
@given(content=st.binary(max_size=300), status=statuses, retry=retry_after)
def test_random_bytes_never_raise_anything_but_akool_errors(
    call: str, content: bytes, status: int, retry: str | None
) -> None:
    interpret(call, content, status, {"retry-after": retry} if retry is not None else {})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@call_names
@per_call
@given(payload=json_values, status=statuses)
def test_random_json_never_raises_anything_but_akool_errors(call: str, payload: Any, status: int) -> None:
    interpret(call, json.dumps(payload).encode(), status)


def mutate(value: Any, draw: st.DrawFn) -> Any:
    """Return ``value`` with one random change deep inside: a key removed, or a value replaced."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        action = draw(st.sampled_from(["remove", "replace", "descend"]))
        copy = dict(value)
        if action == "remove":
            del copy[key]
        elif action == "replace":
            copy[key] = draw(json_values)
        else:
            copy[key] = mutate(value[key], draw)
        return copy
    if isinstance(value, list) and value and draw(st.booleans()):
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], mutate(value[index], draw), *value[index + 1 :]]
    return draw(json_values)


@call_names
@per_call
@given(data=st.data())
def test_a_seed_reply_changed_anywhere_never_raises_anything_but_akool_errors(
    call: str, data: st.DataObject
) -> None:
    _, seed, kind = CALLS[call]
    payload = mutate(seed, data.draw)
    value = interpret(call, json.dumps(payload).encode())
    if value is not None and kind is not None:
        assert isinstance(value, kind)


def test_deeply_nested_json_is_a_response_error() -> None:
    request = CALLS["listbyids"][0]()
    with pytest.raises(AkoolResponseError):
        protocol.interpret(request, protocol.HttpReply(200, {}, b"[" * 100_000))


OTHER_ID = "f" * 24


@per_call
@given(data=st.data())
def test_no_change_to_one_listbyids_entry_touches_the_result_of_another(data: st.DataObject) -> None:
    """Issue 10: one entry changed anywhere (or replaced by anything) never changes what another id gets."""
    seed_entry = SEED_LISTBYIDS["data"]["result"][0]  # type: ignore[index]
    other = {**seed_entry, "_id": OTHER_ID, "faceswap_status": 3}
    changed = mutate(seed_entry, data.draw)
    entries = [changed, other] if data.draw(st.booleans()) else [other, changed]
    payload = {"code": 1000, "msg": "OK", "data": {"result": entries}}
    request = protocol.build_list_reage_entries([SEED_ID, OTHER_ID])

    value = protocol.interpret(request, protocol.HttpReply(200, {}, json.dumps(payload).encode()))

    assert value.results[OTHER_ID].status is JobStatus.SUCCESS
    assert OTHER_ID not in value.errors
    assert set(value.results) | set(value.errors) <= {SEED_ID, OTHER_ID}
    # The changed entry is a result, an error of its own id, or ignored: never two of these at once.
    assert not (SEED_ID in value.results and SEED_ID in value.errors)
