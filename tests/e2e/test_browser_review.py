"""
``akool_face_swap_review`` answered in the Airflow UI, in headless Chromium: the person opens the review
task's Required Actions, sees the picture, the face put in and the result side by side, and approves one run
and rejects another. Only the approved result is published. The face swap task of the approved run then
shows in the Akool tab and on the Akool page as a reage task does.
"""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser import (  # noqa: F401 (fixtures)
    CHROMIUM,
    NO_CHROMIUM,
    _loaded_images,
    _screenshot,
    browser,
    page,
)
from tests.e2e.test_face_swap_review import DAG_ID, states, wait_for_question, xcom
from tests.stack.airflow_stack import AirflowStack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=NO_CHROMIUM),
]


def test_a_person_approves_one_run_and_rejects_another_in_the_ui(page: Page, stack: AirflowStack) -> None:  # noqa: F811
    stack.wait_for_dags([DAG_ID])
    folders = {option: stack.home / "published-ui" / option.lower() for option in ("Approve", "Reject")}
    runs = {
        option: stack.trigger_dag(DAG_ID, conf={"publish_to": f"{folder}/"})
        for option, folder in folders.items()
    }
    for option, run_id in runs.items():
        wait_for_question(stack, run_id)
        swap = xcom(stack, run_id, "swap")
        page.goto(f"{stack.url}/dags/{DAG_ID}/runs/{run_id}/tasks/review/required_actions")
        expect(page.get_by_text("Publish this face swap?").first).to_be_visible()
        # The body's markdown: the three pictures side by side, the result among them.
        expect(page.locator(f"img[src='{swap['url']}']").first).to_be_visible()
        expect(page.locator("img[alt='picture']").first).to_be_visible()
        expect(page.locator("img[alt='face put in']").first).to_be_visible()
        if option == "Approve":
            _screenshot(page, "face-swap-review.png")
        page.get_by_role("button", name=option, exact=True).first.click()
        assert stack.wait_for_run(DAG_ID, run_id) == "success"

    approved, rejected = states(stack, runs["Approve"]), states(stack, runs["Reject"])
    assert approved["publish"] == "success"
    assert rejected["publish"] == "skipped"
    assert any(folders["Approve"].iterdir())
    assert not folders["Reject"].exists() or list(folders["Reject"].iterdir()) == []
    answer = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{runs['Reject']}/taskInstances/review/-1/hitlDetails")
    assert answer["chosen_options"] == ["Reject"]

    # The face swap task in the Akool tab: the picture changed beside the result, its status and ids.
    swap = xcom(stack, runs["Approve"], "swap")
    run_id = quote(runs["Approve"], safe="")
    page.goto(f"{stack.url}/dags/{DAG_ID}/runs/{run_id}/tasks/swap/plugin/akool_result")
    frame = page.frame_locator("iframe[title='Akool']")
    expect(frame.locator("figure")).to_have_count(2)
    expect(frame.get_by_text(swap["id"]).first).to_be_visible()
    expect(frame.locator(".status.success").first).to_be_visible()
    expect(frame.locator("img.full.result")).to_have_attribute("src", swap["url"])
    assert all(width > 0 for width in _loaded_images(frame, "img.full")), "an image of the tab did not load"
    _screenshot(page, "akool-task-tab-face-swap.png")
    # ... and on the Akool page, newest first, beside the jobs of the other kinds.
    page.goto(f"{stack.url}/plugin/akool_jobs")
    frame = page.frame_locator("iframe[title='Akool']")
    row = frame.locator("tr.job").filter(has_text=swap["id"])
    expect(row).to_have_count(1)
    expect(row.get_by_role("link", name=DAG_ID, exact=True)).to_have_attribute("href", f"/dags/{DAG_ID}")
    assert all(width > 0 for width in _loaded_images(frame, "img.thumb.result")), "a thumbnail did not load"
    _screenshot(page, "akool-jobs-page-face-swap.png")
