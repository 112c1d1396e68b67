"""
What a user sees in the Airflow UI, in headless Chromium (Debian's package) driven by Playwright: the
connection form, the connection's Test button (from the list, for the stack's connection and for one made in
the Add form and changed in the edit form), the "Akool result" link of a finished reage task, and a green run
in the grid. Screenshots of each go to docs/images/ for the README.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.e2e.conftest import IMAGE_REAGE_DAG, ExampleRuns, TaskFacts
from tests.stack.airflow_stack import CONNECTION_ID, AirflowStack

CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium keeps dialling Google's hosts, which this machine refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A test run must not rewrite committed files: screenshots go to a scratch folder unless
# AKOOL_SCREENSHOT_DIR names one (`make screenshots` sets it to docs/images/ for the README).
SCREENSHOTS = Path(
    os.environ.get("AKOOL_SCREENSHOT_DIR") or Path(tempfile.gettempdir()) / "akool-screenshots"
)
TAKE_SCREENSHOTS = True
NO_CHROMIUM = (
    f"!!! BROWSER TESTS SKIPPED: {CHROMIUM} is missing and could not be installed "
    "(run `make browser-deps` as root with apt available) !!!"
)

# expect() waits 5 s by default, less than a dialog takes to draw on a loaded two-core machine (seen on 3.1).
expect.set_options(timeout=30_000)

# A mark, not a skip in a fixture: the stack (a wider-scoped fixture) would start first for nothing.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=NO_CHROMIUM),
]

STANDARD_FIELDS = ("Host (or base URL)", "Scheme", "Port", "Client ID (optional)", "API key / Client secret")
EXTRA_FIELDS = ("Auth type", "Face detect URL", "Timeout (seconds)")
# The form relabels these (ui-field-behaviour): none may show under its generic name.
GENERIC_FIELDS = ("Host", "Schema", "Login", "Password")
#: A connection the tests make in the Add form (and delete again).
FORM_CONNECTION_ID = "akool_made_in_the_form"
TEST_ROUTE = "/api/v2/connections/test"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless (the module is skipped, loudly, only where it cannot be installed)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, stack: AirflowStack) -> Iterator[Page]:
    """A page logged in as the admin: the UI reads its JWT from the ``_token`` cookie."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_cookies([{"name": "_token", "value": stack.token(), "url": stack.url}])
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def _screenshot(target: Page | Locator, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(SCREENSHOTS / name))


def _rgb(locator: Locator, prop: str = "backgroundColor") -> tuple[int, int, int]:
    # The UI uses oklch() colours: paint one pixel with it to read it back as RGB.
    red, green, blue = locator.evaluate(
        """(element, prop) => {
            const ctx = document.createElement("canvas").getContext("2d");
            ctx.fillStyle = getComputedStyle(element)[prop];
            ctx.fillRect(0, 0, 1, 1);
            return Array.from(ctx.getImageData(0, 0, 1, 1).data.slice(0, 3));
        }""",
        prop,
    )
    return red, green, blue


def _is_green(rgb: tuple[int, int, int]) -> bool:
    red, green, blue = rgb
    return green >= 80 and green > 1.3 * red and green > 1.3 * blue


def _reage_task(example_runs: ExampleRuns) -> TaskFacts:
    (facts,) = [
        facts
        for facts in example_runs.facts[IMAGE_REAGE_DAG].values()
        if facts.operator == "AkoolImageReageOperator"
    ]
    return facts


def _emulator_port(stack: AirflowStack) -> int:
    port = urlsplit(stack.emulator_url).port
    assert port
    return port


def _connection_row(page: Page, connection_id: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_text(connection_id, exact=True))


def _click_test(page: Page, stack: AirflowStack, connection_id: str) -> dict[str, Any]:
    """Click the Test button of ``connection_id`` in the connection list; return what the API answered."""
    page.goto(f"{stack.url}/connections")
    row = _connection_row(page, connection_id)
    with page.expect_response(
        lambda response: response.url.endswith(TEST_ROUTE) and response.request.method == "POST"
    ) as caught:
        row.get_by_role("button", name="Test Connection").click()
    response = caught.value
    sent = response.request.post_data_json
    assert sent["connection_id"] == connection_id
    # Whatever the answer, it must come from the hook's test_connection(), not from Airflow refusing the
    # request (400 "The host or port to test differs from the stored connection", issue 12).
    assert response.status == 200, (response.status, response.text(), sent)
    reply: dict[str, Any] = response.json()
    return reply


def test_connection_form_offers_akool_with_its_fields(page: Page, stack: AirflowStack) -> None:
    page.goto(f"{stack.url}/connections")
    # The stack's connection is in the metadata database, so the UI lists it: host and port on their own.
    row = _connection_row(page, CONNECTION_ID)
    expect(row).to_contain_text("akool")
    expect(row).to_contain_text("127.0.0.1")
    expect(row).to_contain_text(str(_emulator_port(stack)))

    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill("akool_docs")
    dialog.get_by_role("combobox").fill("Akool")
    dialog.get_by_role("option", name="Akool", exact=True).click()
    labels = dialog.locator("label")
    # The same form on 3.1 (from the hook's methods) as on 3.2+ (from conn-fields): see connection_form.py.
    for field in STANDARD_FIELDS:
        expect(labels.filter(has_text=field)).to_have_count(1)
    for field in GENERIC_FIELDS:
        expect(labels.get_by_text(field, exact=True)).to_have_count(0)
    # The key is a secret: a password input, never shown in clear.
    expect(dialog.get_by_label("API key / Client secret")).to_have_attribute("type", "password")
    expect(dialog.get_by_label("Host (or base URL)")).to_have_attribute("placeholder", "openapi.akool.com")
    expect(dialog.get_by_label("Scheme", exact=True)).to_have_attribute("placeholder", "https")
    expect(dialog.get_by_label("Port", exact=True)).to_have_attribute("placeholder", "443")
    _screenshot(dialog, "connection-form.png")

    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for field in EXTRA_FIELDS:
        expect(labels.filter(has_text=field)).to_have_count(1)
    _screenshot(dialog, "connection-form-extra-fields.png")
    # Nothing is saved: the dialog is closed without a click on Save.
    dialog.get_by_role("button", name="Close").click()


def test_the_test_button_of_the_stacks_connection_succeeds(page: Page, stack: AirflowStack) -> None:
    reply = _click_test(page, stack, CONNECTION_ID)
    # The stored port goes back and forth unchanged, and the stored key is used (the UI sends "***").
    # Then the balance, which depends on what the suite ran before (every job is charged).
    message = f"Connected to Akool at http://127.0.0.1:{_emulator_port(stack)} (api_key); credit balance: "
    assert reply["status"] is True, reply
    assert re.fullmatch(re.escape(message) + r"\d+", reply["message"]), reply
    expect(page.get_by_text("Test Connection Successful")).to_be_visible()
    expect(page.get_by_text(reply["message"])).to_be_visible()
    _screenshot(page, "connection-test.png")


def test_a_connection_made_in_the_form_tests_green_and_red_after_a_wrong_key_in_the_edit_form(
    page: Page, stack: AirflowStack
) -> None:
    port = _emulator_port(stack)
    wrong_key = "wrong-key-from-the-edit-form-4711"
    try:
        # Made as the README says: host, scheme and port in their own fields, the key.
        page.goto(f"{stack.url}/connections")
        page.get_by_role("button", name="Add Connection").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Connection ID").fill(FORM_CONNECTION_ID)
        dialog.get_by_role("combobox").fill("Akool")
        dialog.get_by_role("option", name="Akool", exact=True).click()
        dialog.get_by_label("Host (or base URL)").fill("127.0.0.1")
        dialog.get_by_label("Scheme", exact=True).fill("http")
        dialog.get_by_label("Port", exact=True).fill(str(port))
        dialog.get_by_label("API key / Client secret").fill(stack.api_key)
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()
        stored = stack.api("GET", f"/connections/{FORM_CONNECTION_ID}")
        assert (stored["host"], stored["schema"], stored["port"]) == ("127.0.0.1", "http", port), stored

        reply = _click_test(page, stack, FORM_CONNECTION_ID)
        assert reply["status"] is True, reply
        assert re.fullmatch(
            re.escape(f"Connected to Akool at http://127.0.0.1:{port} (api_key); credit balance: ") + r"\d+",
            reply["message"],
        ), reply
        expect(page.get_by_text("Test Connection Successful")).to_be_visible()

        # The edit form shows every field of the form, the Timeout too, and saves a wrong key.
        _connection_row(page, FORM_CONNECTION_ID).get_by_role("button", name="Edit Connection").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_label("Port", exact=True)).to_have_value(str(port))
        dialog.get_by_label("API key / Client secret").fill(wrong_key)
        # Opening the extra fields folds the standard ones away.
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
        for field in EXTRA_FIELDS:
            expect(dialog.locator("label").filter(has_text=field)).to_have_count(1)
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()

        reply = _click_test(page, stack, FORM_CONNECTION_ID)
        assert reply["status"] is False, reply
        assert "1101" in reply["message"], reply
        expect(page.get_by_text("Test Connection Failed")).to_be_visible()
        assert wrong_key not in page.content()
    finally:
        stack.api("DELETE", f"/connections/{FORM_CONNECTION_ID}", ok=(204, 404))


def test_the_edit_form_of_the_stacks_connection_shows_every_field(page: Page, stack: AirflowStack) -> None:
    page.goto(f"{stack.url}/connections")
    _connection_row(page, CONNECTION_ID).get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Host (or base URL)")).to_have_value("127.0.0.1")
    expect(dialog.get_by_label("Scheme", exact=True)).to_have_value("http")
    expect(dialog.get_by_label("Port", exact=True)).to_have_value(str(_emulator_port(stack)))
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    labels = dialog.locator("label")
    for field in EXTRA_FIELDS:
        expect(labels.filter(has_text=field)).to_have_count(1)
    # Airflow 3.1 does not tie the extra fields' labels to their inputs: find the input by its field group.
    timeout = dialog.get_by_role("group").filter(has=page.get_by_text("Timeout (seconds)", exact=True))
    expect(timeout.locator("input").first).to_have_value("30")
    _screenshot(dialog, "connection-edit-form.png")
    dialog.get_by_role("button", name="Close").click()


def test_finished_reage_task_links_to_its_akool_result(
    page: Page, stack: AirflowStack, example_runs: ExampleRuns
) -> None:
    facts = _reage_task(example_runs)
    url = facts.xcom["akool_result_url"]
    assert url
    assert url == facts.return_value["url"]
    run_id = quote(facts.ti["dag_run_id"], safe="")
    page.goto(f"{stack.url}/dags/{IMAGE_REAGE_DAG}/runs/{run_id}/tasks/{facts.ti['task_id']}/details")
    link = page.get_by_role("link", name="Akool result", exact=True)
    expect(link).to_have_attribute("href", url)
    expect(page.get_by_text("AkoolImageReageOperator").first).to_be_visible()
    _screenshot(page, "task-akool-result-link.png")
    # The link leads to the reaged image.
    reply = requests.get(url, timeout=30)
    assert reply.status_code == 200
    assert reply.content.startswith((b"\xff\xd8", b"\x89PNG"))


def test_grid_shows_the_example_run_green(page: Page, stack: AirflowStack, example_runs: ExampleRuns) -> None:
    run = example_runs.runs[IMAGE_REAGE_DAG]
    assert run.state == "success"
    page.goto(f"{stack.url}/dags/{IMAGE_REAGE_DAG}")
    bar = page.locator(f'a[href="/dags/{IMAGE_REAGE_DAG}/runs/{run.run_id}/"] > div')
    expect(bar).to_be_visible()
    assert _is_green(_rgb(bar)), _rgb(bar)
    for ti in run.task_instances:
        # The cell's id (Airflow 3.3 adds a data-testid, 3.1 has only the id) and its state badge.
        cell = page.locator(f'a[id="grid-{run.run_id}-{ti["task_id"]}"] > span').first
        expect(cell).to_be_visible()
        assert _is_green(_rgb(cell)), (ti["task_id"], _rgb(cell))
    # The tooltip spells the state out, so the colour is not the only evidence.
    page.locator(f'a[id="grid-{run.run_id}-{_reage_task(example_runs).ti["task_id"]}"]').first.hover()
    expect(page.get_by_text("State: Success").first).to_be_visible()
    _screenshot(page, "grid.png")


# --- The Akool tab and the Akool page (plugins/views.py) ---------------------------------------------


def _loaded_images(frame: Any, selector: str) -> list[int]:
    """The natural widths of the images matching ``selector`` in ``frame`` once loaded (0: broken)."""
    images = frame.locator(selector)
    expect(images.first).to_be_visible()
    widths: list[int] = images.evaluate_all(
        """async (images) => Promise.all(images.map((img) => img.decode().then(
            () => img.naturalWidth, () => 0)))"""
    )
    return widths


def test_the_plugin_routes_refuse_callers_without_a_valid_token(stack: AirflowStack) -> None:
    # Plugin apps are not behind Airflow's auth: the views check the caller themselves.
    assert requests.get(f"{stack.url}/akool/jobs", timeout=30).status_code == 401
    forged = {"Authorization": "Bearer not-a-jwt"}
    assert requests.get(f"{stack.url}/akool/jobs", headers=forged, timeout=30).status_code == 403
    admin = {"Authorization": f"Bearer {stack.token()}"}
    assert requests.get(f"{stack.url}/akool/jobs", headers=admin, timeout=30).status_code == 200


def test_the_akool_tab_shows_input_and_result_side_by_side(
    page: Page, stack: AirflowStack, example_runs: ExampleRuns
) -> None:
    facts = _reage_task(example_runs)
    run_id = quote(facts.ti["dag_run_id"], safe="")
    task = f"{stack.url}/dags/{IMAGE_REAGE_DAG}/runs/{run_id}/tasks/{facts.ti['task_id']}"
    # The tab's own route (plugin/<url_route> under the task instance), as a click on the tab opens it.
    page.goto(f"{task}/plugin/akool_result")
    frame = page.frame_locator("iframe[title='Akool']")
    expect(frame.locator("figure")).to_have_count(2)
    expect(frame.get_by_text(facts.return_value["id"]).first).to_be_visible()
    expect(frame.locator(".status.success").first).to_be_visible()
    expect(frame.get_by_text("7 days: until about")).to_be_visible()
    result = frame.locator("img.full.result")
    expect(result).to_have_attribute("src", facts.return_value["url"])
    assert all(width > 0 for width in _loaded_images(frame, "img.full")), "an image of the tab did not load"
    _screenshot(page, "akool-task-tab.png")


def test_the_akool_page_lists_recent_jobs_with_thumbnails(
    page: Page, stack: AirflowStack, example_runs: ExampleRuns
) -> None:
    facts = _reage_task(example_runs)
    page.goto(f"{stack.url}/plugin/akool_jobs")
    frame = page.frame_locator("iframe[title='Akool']")
    expect(frame.get_by_role("heading", name="Akool jobs")).to_be_visible()
    row = frame.locator("tr.job").filter(has_text=facts.return_value["id"])
    expect(row).to_have_count(1)
    dag_link = row.get_by_role("link", name=IMAGE_REAGE_DAG, exact=True)
    expect(dag_link).to_have_attribute("href", f"/dags/{IMAGE_REAGE_DAG}")
    expect(row).to_contain_text("left")
    widths = _loaded_images(frame, "img.thumb.result")
    assert widths, "no result thumbnail"
    assert all(width > 0 for width in widths), "a thumbnail did not load"
    _screenshot(page, "akool-jobs-page.png")
