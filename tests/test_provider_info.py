"""The provider metadata Airflow reads: every class listed exists, and every public class is listed."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
import subprocess
import sys
from typing import Any

import pytest

import airflow_provider_akool
from airflow_provider_akool import get_provider_info


def modules_of(info: dict[str, Any], kind: str) -> list[str]:
    return [module for entry in info.get(kind, []) for module in entry["python-modules"]]


def package_classes(base: type) -> set[str]:
    """Every public subclass of ``base`` defined in the package (the emulator is a tool, not Airflow code)."""
    found = set()
    for module_info in pkgutil.walk_packages(airflow_provider_akool.__path__, "airflow_provider_akool."):
        if ".emulator" in module_info.name or module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, base)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
                and not inspect.isabstract(obj)
                and "Base" not in name
            ):
                found.add(module.__name__)
    return found


def test_the_entry_point_returns_the_provider_info() -> None:
    (entry_point,) = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_akool")
    ]
    assert entry_point.load() is get_provider_info
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-akool"
    assert info["versions"] == [airflow_provider_akool.__version__]


def test_every_listed_module_and_class_imports() -> None:
    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for module in modules_of(info, kind):
            importlib.import_module(module)
    for path in [*info.get("extra-links", []), *(c["hook-class-name"] for c in info["connection-types"])]:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path


def test_every_public_operator_sensor_trigger_and_link_is_listed() -> None:
    from airflow.sdk import BaseHook, BaseOperator, BaseOperatorLink, BaseSensorOperator
    from airflow.triggers.base import BaseTrigger

    info = get_provider_info()
    assert package_classes(BaseHook) <= set(modules_of(info, "hooks"))
    assert package_classes(BaseSensorOperator) <= set(modules_of(info, "sensors"))
    operators = package_classes(BaseOperator) - package_classes(BaseSensorOperator)
    assert operators <= set(modules_of(info, "operators"))
    assert package_classes(BaseTrigger) <= set(modules_of(info, "triggers"))
    listed_links = {path.rpartition(".")[0] for path in info.get("extra-links", [])}
    assert package_classes(BaseOperatorLink) <= listed_links


def test_the_connection_form() -> None:
    (conn,) = get_provider_info()["connection-types"]
    assert conn["connection-type"] == "akool"
    assert conn["hook-name"] == "Akool"
    assert set(conn["conn-fields"]) == {"auth_type", "detect_url", "timeout"}
    behaviour = conn["ui-field-behaviour"]
    assert behaviour["relabeling"]["password"] == "API key / Client secret"
    assert behaviour["placeholders"]["host"] == "openapi.akool.com"
    # Host, scheme and port can be filled in one by one: the Test button needs a stored port.
    assert not {"host", "schema", "port"} & set(behaviour["hidden-fields"])


def _airflow_version() -> tuple[int, int]:
    major, minor = importlib.metadata.version("apache-airflow-core").split(".")[:2]
    return int(major), int(minor)


# Airflow reads the declarative connection form (conn-fields) from 3.2 on; 3.1 asks the hook's methods.
DECLARATIVE_FORM = _airflow_version() >= (3, 2)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["providers", "list"], "airflow-provider-akool"),
        (["providers", "hooks"], "airflow_provider_akool.hooks.akool.AkoolHook"),
    ],
)
def test_airflow_cli_shows_the_provider(command: list[str], expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *command, "--output", "plain"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert expected in result.stdout


def test_airflow_cli_shows_the_form_fields_where_airflow_reads_them() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "widgets", "--output", "plain"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    # On 3.1 the CLI asks the hook's methods, which need WTForms (not installed here): no fields. The UI's
    # endpoint supplies stand-ins and does show them (tests/test_connection_form.py).
    assert ("extra__akool__auth_type" in result.stdout) is DECLARATIVE_FORM
