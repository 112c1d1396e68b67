"""
Check the package as users get it: ``make package-check``.

Builds the sdist and the wheel (``uv build``), checks them with ``twine check --strict`` and by their
contents, installs the wheel with the ``emulator`` extra into a fresh virtual environment holding only its
declared dependencies and the newest Airflow (pinned by uv.lock, so the install comes from uv's cache), then,
from that install and away from this source tree: ``airflow providers list`` shows the provider with its
version, every class ``get_provider_info()`` names imports, and an example DAG from dags/ runs with
``dag.test()`` against the emulator (see scripts/package_probe.py).

Usage: ``python scripts/package_check.py [--keep]`` (``--keep`` leaves the work folder for a look).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "airflow_provider_akool"
DIST_NAME = "airflow-provider-akool"
#: The example DAG run from the install: face detect, reage, keep the result through fsspec, fetch it.
EXAMPLE_DAG = "akool_image_reage"
#: The Airflow dependency group of pyproject.toml that names the newest Airflow we support.
AIRFLOW_GROUP = "airflow-latest"
#: Files of the sdist besides the package; hatchling always adds PKG-INFO, pyproject.toml and .gitignore.
SDIST_TOP_FILES = {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "PKG-INFO", ".gitignore"}
#: What only a developer's checkout holds; none of it may reach a user.
DEV_ONLY = {"dev packages": ("pytest", "deptry", "twine", "ruff", "mypy", "hypothesis", "playwright")}


class CheckFailed(Exception):
    """A check of the package failed; the message says which and why."""


def run(
    command: list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 300
) -> str:
    """Run ``command``; return its stdout, or fail with its output."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise CheckFailed(
            f"{' '.join(command)} exited with {result.returncode}:\n{result.stdout[-4000:]}\n"
            f"{result.stderr[-4000:]}"
        )
    return result.stdout


def uv() -> list[str]:
    """The uv command, as the Makefile runs it."""
    return [os.environ.get("PYTHON", "python3"), "-m", "uv"]


class Steps:
    """Print each step as it starts, with the seconds the previous one took."""

    def __init__(self) -> None:
        self.started: float | None = None

    def __call__(self, title: str) -> None:
        self.done()
        print(f"- {title}", end="", flush=True)
        self.started = time.monotonic()

    def done(self) -> None:
        if self.started is not None:
            print(f" ({time.monotonic() - self.started:.1f} s)", flush=True)
        self.started = None


def tracked_package_files() -> set[str]:
    """The package's files as git knows them (what a clean clone builds from)."""
    listed = run(["git", "ls-files", "-z", PACKAGE]).split("\0")
    return {path for path in listed if path}


def check_sdist(sdist: Path, version: str) -> None:
    """The sdist holds the package, its licence and docs, and nothing else (no tests, caches, venvs)."""
    root = f"airflow_provider_akool-{version}/"
    with tarfile.open(sdist) as archive:
        names = {member.name for member in archive.getmembers() if member.isfile()}
    outside = [name for name in names if not name.startswith(root)]
    if outside:
        raise CheckFailed(f"sdist members outside {root}: {sorted(outside)}")
    relative = {name[len(root) :] for name in names}
    top = {name for name in relative if "/" not in name}
    package = {name for name in relative if name.startswith(f"{PACKAGE}/")}
    stray = relative - top - package
    if stray or top != SDIST_TOP_FILES:
        raise CheckFailed(
            f"sdist: unexpected {sorted(stray | (top - SDIST_TOP_FILES))}, "
            f"missing {sorted(SDIST_TOP_FILES - top)}"
        )
    check_package_files("sdist", package)


def check_wheel(wheel: Path, version: str) -> None:
    """The wheel holds the package, its metadata, the licence and the provider entry point."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"airflow_provider_akool-{version}.dist-info/"
        entry_points = archive.read(f"{info}entry_points.txt").decode()
        metadata = archive.read(f"{info}METADATA").decode()
    package = {name for name in names if name.startswith(f"{PACKAGE}/")}
    stray = names - package - {name for name in names if name.startswith(info)}
    if stray:
        raise CheckFailed(f"wheel: unexpected {sorted(stray)}")
    check_package_files("wheel", package)
    if f"{info}licenses/LICENSE" not in names:
        raise CheckFailed("wheel: no dist-info/licenses/LICENSE")
    if "[apache_airflow_provider]" not in entry_points or "get_provider_info" not in entry_points:
        raise CheckFailed(f"wheel: no apache_airflow_provider entry point in\n{entry_points}")
    if "Provides-Extra: emulator" not in metadata:
        raise CheckFailed("wheel: no emulator extra in METADATA")


def check_package_files(kind: str, package: set[str]) -> None:
    """Exactly the package's tracked files: nothing left out, no caches or stray files in."""
    expected = tracked_package_files()
    if package != expected:
        raise CheckFailed(
            f"{kind}: package files differ from git ls-files {PACKAGE}: "
            f"extra {sorted(package - expected)}, missing {sorted(expected - package)}"
        )
    if f"{PACKAGE}/py.typed" not in package:
        raise CheckFailed(f"{kind}: no py.typed")


def export_pins(work: Path) -> Path:
    """uv.lock's pins for the runtime dependencies, the emulator extra and the newest Airflow."""
    pins = work / "pins.txt"
    run(
        [
            *uv(),
            "export",
            "--frozen",
            "--no-hashes",
            "--no-emit-project",
            "--no-default-groups",
            "--group",
            AIRFLOW_GROUP,
            "--extra",
            "emulator",
            "--format",
            "requirements.txt",
            "--output-file",
            str(pins),
        ]
    )
    return pins


def install(work: Path, wheel: Path, pins: Path) -> Path:
    """A fresh venv with the wheel, its declared dependencies and the emulator extra, pinned by uv.lock."""
    venv = work / "venv"
    run([*uv(), "venv", "--quiet", "--python", sys.executable, str(venv)])
    python = venv / "bin" / "python"
    airflow_pin = next(
        line.split(";")[0].strip()
        for line in pins.read_text().splitlines()
        if line.startswith("apache-airflow==")
    )
    # Constraints, not requirements: only what the wheel's metadata asks for is installed, at uv.lock's
    # versions. Offline first (everything is in uv's cache after make venv); the index only if it is not.
    command = [
        *uv(),
        "pip",
        "install",
        "--quiet",
        "--python",
        str(python),
        "--constraint",
        str(pins),
        f"{wheel}[emulator]",
        airflow_pin,
    ]
    try:
        run([*command, "--offline"])
    except CheckFailed:
        print(" [not all in uv's cache: installing from the index]", end="", flush=True)
        run(command)
    installed = {
        line.split("==")[0].lower()
        for line in run([*uv(), "pip", "freeze", "--python", str(python)]).splitlines()
    }
    leaked = sorted(installed & set(DEV_ONLY["dev packages"]))
    if leaked:
        raise CheckFailed(f"the fresh venv holds dev-only packages: {leaked}")
    return python


def clean_env(work: Path) -> dict[str, str]:
    """An environment that knows nothing of this checkout: its own AIRFLOW_HOME and DAGs folder."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "AKOOL_", "PYTHON", "VIRTUAL_ENV", "UV_PROJECT"))
    }
    dags = work / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / f"{EXAMPLE_DAG}.py", dags)
    env.update(
        {
            "AIRFLOW_HOME": str(work / "airflow-home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONNOUSERSITE": "1",
        }
    )
    return env


def check_providers_list(venv_bin: Path, env: dict[str, str], work: Path, version: str) -> None:
    listed = json.loads(
        run([str(venv_bin / "airflow"), "providers", "list", "--output", "json"], cwd=work, env=env)
    )
    ours = [entry for entry in listed if entry.get("package_name") == DIST_NAME]
    if not ours or ours[0].get("version") != version:
        raise CheckFailed(f"airflow providers list does not show {DIST_NAME} {version}: {listed}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    started = time.monotonic()
    # Outside the checkout, so nothing of the source tree is on sys.path of the installed Airflow.
    work = Path(tempfile.mkdtemp(prefix="akool-package-check-"))
    step = Steps()
    try:
        step("build the sdist and the wheel (uv build)")
        dist = work / "dist"
        run([*uv(), "build", "--quiet", "--out-dir", str(dist)])
        (sdist,) = dist.glob("*.tar.gz")
        (wheel,) = dist.glob("*.whl")
        version = re.sub(r"^airflow_provider_akool-(.+)-py3-none-any\.whl$", r"\1", wheel.name)

        step("twine check --strict")
        run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)])

        step("sdist and wheel contents")
        check_sdist(sdist, version)
        check_wheel(wheel, version)

        step(f"fresh venv: the wheel[emulator] and uv.lock's {AIRFLOW_GROUP} Airflow, nothing else")
        python = install(work, wheel, export_pins(work))
        env = clean_env(work)

        step("airflow providers list")
        check_providers_list(python.parent, env, work, version)

        step(f"airflow db migrate, then {EXAMPLE_DAG} with dag.test() against the emulator")
        run([str(python.parent / "airflow"), "db", "migrate"], cwd=work, env=env)
        probe = work / "package_probe.py"
        shutil.copy(REPO / "scripts" / "package_probe.py", probe)
        report = json.loads(
            run([str(python), str(probe), EXAMPLE_DAG, str(REPO)], cwd=work, env=env).splitlines()[-1]
        )
        step.done()
        print(f"  {report}", flush=True)
    except CheckFailed as failure:
        step.done()
        print(f"\npackage check FAILED: {failure}", file=sys.stderr)
        print(f"(work folder kept: {work})", file=sys.stderr)
        return 1
    if args.keep:
        print(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"package check passed in {time.monotonic() - started:.0f} s ({DIST_NAME} {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
