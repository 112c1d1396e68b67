"""The README's example DAG runs as written, against the emulator: a user's first copy must not fail."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.support.dag_runs import run_recorded

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_dag_code() -> str:
    """The first Python block of the README that defines a DAG."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return next(block for block in blocks if "@dag" in block)


def test_the_readme_example_runs_as_written_against_the_emulator(
    airflow_db: Any, akool_connection: Any, emulator_client: Any
) -> None:
    akool_connection()  # akool_default, as the README's "The akool connection" section makes it
    code = readme_dag_code()
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)
    # The block calls its @dag function at the end; call it again to hold the DAG it builds.
    example = namespace["age_a_portrait"]()

    run = run_recorded(example, emulator_client)

    value = run.value("reage")
    kept = Path(value["output_path"]) if value and value.get("output_path") else None
    try:
        assert run.state == "success", (run.states, run.failures)
        assert value["status"] == "success"
        # Written where the README says, under the job's own id: nothing of another run is replaced.
        assert kept is not None
        assert kept.parent == Path("/tmp/akool-aged")
        assert kept.name.startswith(value["id"])
        assert kept.stat().st_size > 0
        assert run.ledger["counts"]["imgreage"] == 1
    finally:
        if kept is not None:
            kept.unlink(missing_ok=True)


def test_the_readme_says_where_things_are_as_the_code_places_them() -> None:
    """A new user's questions (which connection, where the page and the link are, how to add a DAG), answered
    by the README with the names the code really uses, so a rename cannot leave the README behind."""
    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.links import AkoolResultLink
    from airflow_provider_akool.plugins.views import AkoolViewsPlugin
    from tests.stack.airflow_stack import REPO_ROOT

    text = " ".join(README.read_text().split())
    assert f"The connection** is `{AkoolHook.default_conn_name}`" in text
    page = next(view for view in AkoolViewsPlugin.external_views if view["destination"] == "nav")
    assert f"**{page['category'].capitalize()} -> {page['name']}**" in text
    tab = next(view for view in AkoolViewsPlugin.external_views if view["destination"] == "task_instance")
    assert f"**The {tab['name']} tab**" in text
    assert f'"{AkoolResultLink.name}" link' in text
    assert "**Details** tab" in text
    # How to add a DAG: the folder the stack loads, and its option for another one.
    assert 'make airflow ARGS="--dags-folder /path/to/your/dags"' in text
    stack_source = (REPO_ROOT / "tests" / "stack" / "airflow_stack.py").read_text()
    assert 'parser.add_argument("--dags-folder", type=Path, default=REPO_ROOT / "dags")' in stack_source
