"""
The floor's selection stays honest: a test that reaches a part of Airflow that differs between versions runs
on the floor, whatever route it takes to it (tests/floor.py has the rule).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import floor

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A repository of our own layout in ``tmp_path``, which the rule reads instead of this one."""
    for package in ("airflow_provider_akool", "tests", "tests/e2e"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    monkeypatch.setattr(floor, "REPO_ROOT", tmp_path)
    floor._direct.cache_clear()
    yield tmp_path
    floor._direct.cache_clear()


def write(root: Path, relative: str, source: str) -> Path:
    path = root / relative
    path.write_text(textwrap.dedent(source))
    return path


@pytest.mark.parametrize(
    "source",
    [
        "from airflow.sdk import BaseOperator\n",
        "import airflow.models\n",
        # A lazy import counts: it runs when the test calls the function.
        "def run():\n    from airflow.sdk import dag\n",
        # Code run in another interpreter counts as the module's own.
        'CODE = """\n    import airflow_provider_akool.deep\n    """\n',
        # So does the airflow command.
        'import subprocess, sys\nsubprocess.run([sys.executable, "-m", "airflow", "db", "migrate"])\n',
        'import subprocess\nsubprocess.run(["airflow", "dags", "list"])\n',
        # A module of ours run in another interpreter, the argument list given second.
        'import sys\nstart("x", [sys.executable, "-m", "airflow_provider_akool.deep", "--flag"])\n',
        # Through our own modules, at any depth.
        "from airflow_provider_akool import deep\n",
        "from airflow_provider_akool.shallow import helper\n",
    ],
)
def test_a_test_that_reaches_a_versioned_surface_runs_on_the_floor(repo: Path, source: str) -> None:
    write(repo, "airflow_provider_akool/deep.py", "from airflow.sdk import BaseHook\n")
    write(
        repo, "airflow_provider_akool/shallow.py", "from airflow_provider_akool.deep import x\nhelper = 1\n"
    )
    test = write(repo, "tests/test_probe.py", source)
    assert floor.is_versioned(test)


@pytest.mark.parametrize(
    "source",
    [
        "import json\n",
        # The exception base classes are the same on every version.
        "from airflow.sdk.exceptions import AirflowException\n",
        "from airflow_provider_akool.errors import Boom\n",
        # Type-only imports never run.
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from airflow.sdk import BaseOperator\n",
        # A string that only mentions airflow is not code that imports it.
        "NAMES = [m for m in ('airflow', 'x') if m == 'airflow']\n",
    ],
)
def test_a_test_that_reaches_no_versioned_surface_is_left_to_the_newest_airflow(
    repo: Path, source: str
) -> None:
    write(
        repo,
        "airflow_provider_akool/errors.py",
        "from airflow.providers.common.compat.sdk import AirflowFailException\nclass Boom(Exception): ...\n",
    )
    test = write(repo, "tests/test_probe.py", source)
    assert not floor.is_versioned(test)


def test_a_fixture_that_runs_airflow_or_an_end_to_end_module_puts_a_test_on_the_floor(repo: Path) -> None:
    plain = write(repo, "tests/test_probe.py", "import json\n")
    assert floor.is_versioned(plain, ("tmp_path", "airflow_db"))
    assert floor.is_versioned(write(repo, "tests/e2e/test_probe.py", "import json\n"))


def _direct_airflow_importers() -> list[Path]:
    """Test modules of this repository whose own text imports a versioned part of Airflow at run time."""
    found = []
    for path in sorted((REPO_ROOT / "tests").rglob("test_*.py")):
        imports = floor._imports(ast.parse(path.read_text()), floor.module_name(path).rpartition(".")[0])
        if any(
            module.split(".")[0] == "airflow"
            and not {(module, n) for n in names} <= floor.STABLE_AIRFLOW_IMPORTS
            for module, names in imports
        ):
            found.append(path)
    return found


def test_every_module_of_this_suite_that_imports_airflow_is_on_the_floor() -> None:
    importers = _direct_airflow_importers()
    assert len(importers) > 10
    off_the_floor = [p for p in importers if not floor.is_versioned(p) and floor.exemption(p) is None]
    assert not off_the_floor


def test_the_only_exemption_s_reason_holds_every_example_dag_is_run_on_the_floor_elsewhere() -> None:
    assert set(floor.EXEMPT) == {"tests/test_demo.py"}
    dag_ids = {
        match
        for path in (REPO_ROOT / "dags").glob("*.py")
        for match in re.findall(r'dag_id="(\w+)"', path.read_text())
    }
    assert len(dag_ids) >= 4
    dag_tests = sorted((REPO_ROOT / "tests" / "dags").glob("test_*.py"))
    assert all(floor.is_versioned(p) for p in dag_tests)
    covered = "\n".join(p.read_text() for p in dag_tests)
    assert {d for d in dag_ids if f'"{d}"' not in covered} == set()


def test_pytest_marks_by_the_rule() -> None:
    # A few modules of each kind: collecting the whole suite again would cost most of a minute.
    modules = [
        "tests/test_protocol.py",
        "tests/emulator/test_reage.py",
        "tests/hooks/test_akool.py",
        "tests/emulator/test_webhooks.py",
        "tests/e2e/test_crash.py",
    ]
    command = ["pytest", "--collect-only", "-q", "-p", "no:xdist", "-m", "airflow_independent", *modules]
    listed = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    ).stdout
    independent = {line.split("::")[0] for line in listed.splitlines() if "::" in line}
    assert independent == {"tests/test_protocol.py", "tests/emulator/test_reage.py"}, listed[-2000:]
    assert all(not floor.is_versioned(REPO_ROOT / p) for p in independent)
