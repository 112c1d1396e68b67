"""
``akool_face_swap_review`` answered in the Airflow UI, in headless Chromium: the person opens the review
task's Required Actions, sees the picture, the face put in and the result side by side, and approves one run
and rejects another. Only the approved result is published.
"""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser import CHROMIUM, NO_CHROMIUM, _screenshot, browser, page  # noqa: F401 (fixtures)
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
