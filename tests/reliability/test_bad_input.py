"""
Bad input: every parameter of every operator and sensor, given a wrong type, an out-of-range value, a
malformed form, too many faces, a bad colour or size, template parameters without ``template_url``, a
non-http URL, an empty list or an unknown id, fails the task before any request, with a message that names
the parameter.

Each row renders the operator's template fields and then runs ``execute()``, the path a worker takes, so
a value that only becomes bad once rendered (``"{{ params.age }}"``) is caught too; a few rows run through
``dag.test()`` to prove that on real rendering, XComArgs included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pendulum
import pytest
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowException

from airflow_provider_akool.exceptions import AkoolNotFoundError, AkoolValidationError
from airflow_provider_akool.operators.reage import (
    AkoolCancelReageOperator,
    AkoolDetectFacesOperator,
    AkoolImageReageOperator,
    AkoolVideoReageOperator,
)
from airflow_provider_akool.sensors.image_result import AkoolImageResultSensor
from airflow_provider_akool.sensors.reage import AkoolReageSensor
from tests.support.dag_runs import run_recorded
from tests.support.task_context import StubTaskInstance

try:  # written beside this suite; its rows join the table once it exists
    from airflow_provider_akool.operators.background_change import AkoolBackgroundChangeOperator
except ImportError:  # pragma: no cover
    AkoolBackgroundChangeOperator = None  # type: ignore[assignment,misc]

START = pendulum.datetime(2026, 1, 1, tz="UTC")
URL = "http://127.0.0.1:9/media/samples/portrait.jpg"
PNG = "http://127.0.0.1:9/media/samples/product.png"
CLIP = "http://127.0.0.1:9/media/samples/clip.mp4"
FACE = {"path": URL, "opts": "1,2:3,4:5,6:7,8"}
AKOOL_ID = "6b01b4f8296c2e5c1174aa5d"
JOB_ID = "20240102082900592-5653"
#: What templates render from: values that are only bad once rendered.
PARAMS = {"age": 31, "bad_url": "ftp://example.com/a.jpg", "ids": "a,b", "colour": "red", "size": "big"}
# Bounds, so that a row whose check is missing fails on the ledger instead of waiting for hours.
WAIT = {"poll_interval": 0.1, "timeout": 2}

OPERATORS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "detect": (AkoolDetectFacesOperator, {"image_url": URL}),
    "image": (
        AkoolImageReageOperator,
        {"modify_image": URL, "face_reage": 10, "target_image": [FACE], **WAIT},
    ),
    "video": (
        AkoolVideoReageOperator,
        {"modify_video": CLIP, "face_reage": 10, "target_image": [FACE], **WAIT},
    ),
    "cancel": (AkoolCancelReageOperator, {"job_ids": [JOB_ID]}),
    "reage_sensor": (AkoolReageSensor, {"result_ids": [AKOOL_ID], "timeout": 2, "poke_interval": 0.1}),
    "image_sensor": (
        AkoolImageResultSensor,
        {"image_model_id": AKOOL_ID, "timeout": 2, "poke_interval": 0.1},
    ),
}
if AkoolBackgroundChangeOperator is not None:
    OPERATORS["background"] = (
        AkoolBackgroundChangeOperator,
        {
            "origin_img": PNG,
            "canvas_size": "800x600",
            "modify_origin_img_size": "400x300",
            "overlay_origin_x": 10,
            "overlay_origin_y": 10,
            **WAIT,
        },
    )
JOB_OPERATORS = [name for name in ("image", "video", "background") if name in OPERATORS]

NOT_URLS = {
    "ftp": "ftp://example.com/a.jpg",
    "file": "file:///tmp/a.jpg",
    # Object paths whose filesystem cannot sign a URL for Akool (inputs.py).
    "memory": "memory://bucket/a.jpg",
    "local_path": "/tmp/a.jpg",
    "relative": "media/a.jpg",
    "no_host": "http://",
    "space": "http://example.com/a b.jpg",
    "empty": "",
    "number": 5,
    "none": None,
    "template": "{{ params.bad_url }}",
}
# (operator, parameter, value, the parameter the message must name if not the same, other arguments)
Row = tuple[str, str, Any, str | None, dict[str, Any]]


def url_rows(operator: str, parameter: str) -> list[Row]:
    return [(operator, parameter, value, None, {}) for value in NOT_URLS.values()]


ROWS: dict[str, Row] = {}


def add(rows: list[Row], *labels: str) -> None:
    for index, row in enumerate(rows):
        operator, parameter = row[0], row[1]
        label = labels[index] if index < len(labels) else str(index)
        ROWS[f"{operator}-{parameter}-{label}"] = row


# Face detect.
add(url_rows("detect", "image_url"), *NOT_URLS)
add(
    [("detect", "single_face", v, None, {}) for v in ("maybe", 2, None, "{{ params.age }}")],
    "word",
    "int",
    "none",
    "template",
)
add(
    [("detect", "input_url_expiry", v, None, {}) for v in (0, -1, "soon", 8 * 24 * 3600)],
    "zero",
    "negative",
    "word",
    "over_a_week",
)

# Reage: the amount, the faces, the media.
FACE_REAGE = {"word": "ten", "above": 31, "below": -31, "float": 3.5, "bool": True, "none": None,
              "spaces": "1 0", "template": "{{ params.age }}"}  # fmt: skip
TARGET_IMAGE: dict[str, tuple[Any, str]] = {
    "empty_list": ([], "target_image"),
    "nine_faces": ([FACE] * 9, "target_image"),
    "not_a_list": (5, "target_image"),
    "a_string": ("1,2:3,4:5,6:7,8", "target_image"),
    "missing_opts": ([{"path": URL}], "target_image[0]"),
    "extra_key": ([{**FACE, "name": "x"}], "target_image[0]"),
    "three_points": ([{"path": URL, "opts": "1,2:3,4:5,6"}], "target_image[0].opts"),
    "not_numbers": ([{"path": URL, "opts": "a,b:c,d:e,f:g,h"}], "target_image[0].opts"),
    "unicode_digits": ([{"path": URL, "opts": "\u0661,2:3,4:5,6:7,8"}], "target_image[0].opts"),
    "opts_number": ([{"path": URL, "opts": 12345678}], "target_image[0].opts"),
    "ftp_path": ([{"path": "ftp://x/a.jpg", "opts": FACE["opts"]}], "target_image[0].path"),
    "second_face_bad": ([FACE, {"path": URL, "opts": ""}], "target_image[1].opts"),
}
for op in ("image", "video"):
    add([(op, "face_reage", v, None, {}) for v in FACE_REAGE.values()], *FACE_REAGE)
    add([(op, "target_image", v, name, {}) for v, name in TARGET_IMAGE.values()], *TARGET_IMAGE)
add(url_rows("image", "modify_image"), *NOT_URLS)
add(url_rows("video", "modify_video"), *NOT_URLS)
# Video takes no face detection: the faces are required.
add([("video", "target_image", None, None, {})], "none")

# What every waiting operator shares.
COMMON: dict[str, list[tuple[str, Any]]] = {
    "webhook_url": [("ftp", "ftp://example.com/hook"), ("word", "not-a-url"), ("number", 5)],
    "poll_interval": [("zero", 0), ("negative", -1), ("word", "soon"), ("bool", True), ("inf", float("inf"))],
    "timeout": [("zero", 0), ("word", "soon"), ("nan", float("nan")), ("list", [1])],
    "output_path": [("blank", " "), ("number", 5)],
    "akool_conn_id": [("empty", ""), ("none", None)],
    "wait_for_completion": [("word", "no")],
    "deferrable": [("number", 2)],
    "overwrite": [("word", "yes"), ("number", 1)],
    "adaptive_polling": [("word", "sometimes"), ("number", 2)],
    "input_url_expiry": [("zero", 0), ("word", "soon"), ("over_a_week", 8 * 24 * 3600)],
}
for op in JOB_OPERATORS:
    for parameter, values in COMMON.items():
        add([(op, parameter, v, None, {}) for _, v in values], *(label for label, _ in values))

# Cancel: ids, as one, a list, or the return dicts of the reage operators.
JOB_IDS = {"empty_list": [], "comma_string": "a,b", "blank": " ", "number": 5, "none_in_list": [None],
           "dict_without_job_id": {"id": AKOOL_ID}, "dicts_without_job_id": [{"job_id": None}],
           "template": "{{ params.ids }}"}  # fmt: skip
add([("cancel", "job_ids", v, None, {}) for v in JOB_IDS.values()], *JOB_IDS)

# Sensors.
RESULT_IDS = {"empty_list": [], "comma_string": "a,b", "number": 5, "dict_without_id": [{"job_id": JOB_ID}],
              "blank_in_list": [AKOOL_ID, ""], "template": "{{ params.ids }}"}  # fmt: skip
add([("reage_sensor", "result_ids", v, None, {}) for v in RESULT_IDS.values()], *RESULT_IDS)
IMAGE_MODEL_IDS = {"two_ids": [AKOOL_ID, "6b01b4f8296c2e5c1174aa5e"], "empty": "", "number": 5,
                   "comma_string": "a,b", "empty_list": []}  # fmt: skip
add([("image_sensor", "image_model_id", v, None, {}) for v in IMAGE_MODEL_IDS.values()], *IMAGE_MODEL_IDS)
for sensor in ("reage_sensor", "image_sensor"):
    add([(sensor, "deferrable", v, None, {}) for v in (2, "maybe")], "number", "word")
    add([(sensor, "adaptive_polling", v, None, {}) for v in (2, "maybe")], "number", "word")
    # Airflow accepts 0 when the sensor is built; polling Akool without pause is refused before a request.
    add([(sensor, "poke_interval", 0, None, {})], "zero")
    add(
        [(sensor, "not_found_grace", v, None, {}) for v in (0, -5, "soon", None)],
        "zero",
        "negative",
        "word",
        "none",
    )

# Background change: sizes, positions, colour, template parameters.
if "background" in OPERATORS:
    SIZES = {"word": "big", "zero": "0x10", "one_number": "10", "trailing_x": "10x", "negative": "-1x5",
             "short_tuple": (1,), "floats": (1.5, 2.0), "bools": (True, 1), "number": 800,
             "template": "{{ params.size }}"}  # fmt: skip
    for parameter in ("canvas_size", "modify_origin_img_size"):
        add([("background", parameter, v, None, {}) for v in SIZES.values()], *SIZES)
    POSITIONS = {"word": "left", "float": 1.5, "bool": True, "none": None, "list": [1]}
    for parameter in ("overlay_origin_x", "overlay_origin_y"):
        add([("background", parameter, v, None, {}) for v in POSITIONS.values()], *POSITIONS)
    COLOURS = {"name": "red", "short": "#12345", "not_hex": "#GGGGGG", "no_hash": "123456", "number": 123456,
               "template": "{{ params.colour }}"}  # fmt: skip
    add([("background", "color_code", v, None, {}) for v in COLOURS.values()], *COLOURS)
    add(url_rows("background", "origin_img"), *NOT_URLS)
    add(
        [
            ("background", "template_url", v, None, {})
            for k, v in NOT_URLS.items()
            if k not in ("empty", "none")
        ],
        *(k for k in NOT_URLS if k not in ("empty", "none")),
    )
    # Template parameters without a template_url, and bad ones with it.
    WITHOUT_TEMPLATE = {"modify_template_size": "100x100", "overlay_template_x": 0, "overlay_template_y": 5}
    add([("background", p, v, None, {}) for p, v in WITHOUT_TEMPLATE.items()], "without_template_url")
    with_template = {"template_url": PNG}
    add([("background", "modify_template_size", "huge", None, with_template)], "with_template_url")
    add([("background", "overlay_template_x", "left", None, with_template)], "with_template_url")
    add([("background", "overlay_template_y", 2.5, None, with_template)], "with_template_url")
    add([("background", "remove_bg", v, None, {}) for v in ("maybe", 2)], "word", "number")


#: Parameters not checked yet, each with what happens instead (listed in docs/reliability.md).
KNOWN_GAPS: dict[tuple[str, str], str] = {}


def build(operator: str, parameter: str, value: Any, other: dict[str, Any]) -> Any:
    cls, base = OPERATORS[operator]
    return cls(task_id="bad", **{**base, **other, parameter: value})


@pytest.mark.parametrize("row", list(ROWS))
def test_bad_input_fails_before_any_request_naming_the_parameter(
    akool_connection: Any, emulator_client: Any, row: str
) -> None:
    operator_name, parameter, value, named, other = ROWS[row]
    named = named or parameter

    operator = build(operator_name, parameter, value, other)
    operator.render_template_fields({"params": PARAMS})

    with pytest.raises(AkoolValidationError) as raised:
        operator.execute({"ti": StubTaskInstance(), "params": PARAMS})

    message = str(raised.value)
    assert f"{named} must be" in message or f"{named} may only be given with template_url" in message, message
    ledger = emulator_client.ledger()
    assert ledger["requests"] == [], f"{row} sent {[r['endpoint'] for r in ledger['requests']]}"


def test_every_parameter_of_every_operator_has_a_row() -> None:
    """A new parameter without a bad-input row fails here, not in production."""
    import inspect

    covered = {(op, parameter) for op, parameter, *_ in ROWS.values()}
    # Every operator's akool_conn_id meets an unknown connection below, and Airflow checks a sensor's
    # poke_interval when the sensor is built (see the test after this one).
    covered |= {(op, "akool_conn_id") for op in OPERATORS}
    covered |= {(op, "poke_interval") for op in ("reage_sensor", "image_sensor")}
    covered |= set(KNOWN_GAPS)
    # Airflow's own parameters (task_id, retries, poke_interval, mode...) are checked by Airflow.
    for name, (cls, _) in OPERATORS.items():
        own: set[str] = set()
        for klass in cls.__mro__:
            if klass.__module__.startswith("airflow_provider_akool"):
                own |= {
                    p.name
                    for p in inspect.signature(klass.__init__).parameters.values()
                    if p.kind is p.KEYWORD_ONLY
                }
        missing = {p for p in own if (name, p) not in covered} - {"durable"}
        assert not missing, f"{name} has no bad-input row for {sorted(missing)}"


@pytest.mark.parametrize("sensor", ["reage_sensor", "image_sensor"])
@pytest.mark.parametrize("value", ["soon", -1])
def test_airflow_refuses_a_bad_sensor_poke_interval_when_the_sensor_is_built(sensor: str, value: Any) -> None:
    cls, base = OPERATORS[sensor]

    # ValueError on 3.3, AirflowException on 3.1.
    with pytest.raises((ValueError, AirflowException), match="poke_interval"):
        cls(task_id="t", **{**base, "poke_interval": value})


# --- Through dag.test(): rendered templates and XComArgs ---------------------------------------------


def test_values_that_become_bad_when_rendered_fail_in_a_dag_run(
    airflow_db: Any, akool_connection: Any, emulator_client: Any
) -> None:
    @dag(dag_id="bad_input_rendered", schedule=None, start_date=START, params=PARAMS)
    def bad_input_rendered() -> None:
        @task
        def faces() -> list[dict[str, str]]:
            return [FACE] * 9

        nine = faces()
        AkoolDetectFacesOperator(task_id="detect", image_url="{{ params.bad_url }}")
        AkoolImageReageOperator(task_id="image", modify_image=URL, face_reage="{{ params.age }}", **WAIT)
        AkoolVideoReageOperator(task_id="video", modify_video=CLIP, face_reage=3, target_image=nine, **WAIT)
        AkoolCancelReageOperator(task_id="cancel", job_ids="{{ params.ids }}")
        AkoolReageSensor(task_id="reage_sensor", result_ids="{{ params.ids }}", timeout=2, poke_interval=0.1)
        AkoolImageResultSensor(
            task_id="image_sensor", image_model_id="{{ params.ids }}", timeout=2, poke_interval=0.1
        )
        if AkoolBackgroundChangeOperator is not None:
            AkoolBackgroundChangeOperator(
                task_id="background",
                origin_img=PNG,
                canvas_size="800x600",
                modify_origin_img_size="400x300",
                overlay_origin_x=0,
                overlay_origin_y=0,
                color_code="{{ params.colour }}",
                **WAIT,
            )

    run = run_recorded(bad_input_rendered(), emulator_client)

    expected = {
        "detect": "image_url",
        "image": "face_reage",
        "video": "target_image",
        "cancel": "job_ids",
        "reage_sensor": "result_ids",
        "image_sensor": "image_model_id",
    }
    if AkoolBackgroundChangeOperator is not None:
        expected["background"] = "color_code"
    for task_id, parameter in expected.items():
        error = run.failure(task_id)
        assert isinstance(error, AkoolValidationError), (task_id, error)
        assert f"{parameter} must be" in str(error), (task_id, error)
    assert "got '31'" in str(run.failure("image"))
    assert "got 9 faces" in str(run.failure("video"))
    assert run.ledger["requests"] == []


# --- Ids that are well formed but unknown: one read says so, nothing is submitted --------------------


@pytest.mark.parametrize("operator_name", list(OPERATORS))
def test_an_unknown_connection_fails_before_any_request_naming_it(
    akool_connection: Any, emulator_client: Any, operator_name: str
) -> None:
    operator = build(operator_name, "akool_conn_id", "no_such_akool", {})

    with pytest.raises(Exception, match="no_such_akool"):
        operator.execute({"ti": StubTaskInstance()})

    assert emulator_client.ledger()["requests"] == []


@pytest.mark.parametrize("sensor", ["reage_sensor", "image_sensor"])
def test_an_unknown_akool_id_fails_the_sensor_after_the_grace_naming_it(
    akool_connection: Any, emulator_client: Any, sensor: str
) -> None:
    cls, base = OPERATORS[sensor]
    operator = cls(task_id="t", **base, not_found_grace=0.3)

    with pytest.raises(AkoolNotFoundError) as raised:
        operator.execute({"ti": StubTaskInstance()})

    assert AKOOL_ID in str(raised.value)
    assert "unknown to Akool" in str(raised.value)
    counts = emulator_client.counts()
    assert counts["imgreage"] == counts["vidreage"] == counts["bg_replace"] == counts["job_del"] == 0


def test_cancelling_an_unknown_job_id_fails_as_not_found_after_one_request(
    akool_connection: Any, emulator_client: Any
) -> None:
    operator = AkoolCancelReageOperator(task_id="t", job_ids=[JOB_ID])

    with pytest.raises(AkoolNotFoundError) as raised:
        operator.execute({"ti": StubTaskInstance()})  # type: ignore[arg-type]

    assert raised.value.code == 1008
    assert raised.value.endpoint == "job_del"
    assert emulator_client.counts()["job_del"] == 1
