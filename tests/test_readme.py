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
