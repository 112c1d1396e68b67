"""
Which tests the floor run needs: those that touch a part of Airflow that differs between versions.

``make test-floor`` runs the suite again on the oldest Airflow we support, and only what can behave
differently there is worth its minutes. A test is *versioned* when its module, or anything of this repository
it imports (at any depth, lazy imports inside functions included, ``TYPE_CHECKING`` blocks not), imports from
Airflow anything but :data:`STABLE_AIRFLOW_IMPORTS`; when it runs Python code in another interpreter that
does (a string literal that parses as Python with imports counts as the module's own imports, and so does a
module run with ``python -m``) or runs the ``airflow`` command; when it uses a fixture that runs Airflow
(:data:`AIRFLOW_FIXTURES`); or when it is an end-to-end test (``tests/e2e/``: a stack is Airflow).
Everything else is marked ``airflow_independent`` by ``tests/conftest.py`` and runs on the newest Airflow
only.

The rule is computed from the source, not kept as a list, so a module cannot drop out of the floor by
accident: it drops out only when nothing it runs reaches a versioned surface. ``tests/test_floor.py`` holds
the rule to that and pins the few exemptions of :data:`EXEMPT` with their reasons.
"""

from __future__ import annotations

import ast
import functools
import textwrap
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The top-level packages of this repository whose imports are followed.
OWN_PACKAGES = ("airflow_provider_akool", "tests")

#: Airflow names that are the same on every Airflow we support: the exception base classes our exceptions
#: derive from (the compat provider exists to keep them so). Importing only these does not make a module
#: versioned. Anything else under ``airflow`` does.
STABLE_AIRFLOW_IMPORTS = frozenset(
    {
        ("airflow.sdk.exceptions", "AirflowException"),
        ("airflow.providers.common.compat.sdk", "AirflowFailException"),
        ("airflow.providers.common.compat.sdk", "AirflowTaskTimeout"),
    }
)

#: Fixtures that run Airflow itself (a metadata database, dag.test(), a stack): a test using one is
#: versioned whatever it imports.
AIRFLOW_FIXTURES = frozenset({"airflow_db", "module_emulator", "stack", "example_runs"})

#: Test modules that reach Airflow and still run on the newest Airflow only, each with the reason it may.
EXEMPT: dict[str, str] = {
    "tests/test_demo.py": (
        "make demo runs the example DAGs with dag.test(); tests/dags/test_example_dags.py runs every one of "
        "them on the floor too, and what the demo adds (its emulator, its S3 server, its summary) does not "
        "depend on the Airflow version"
    ),
}


def module_name(path: Path) -> str:
    """The dotted name of a repository file (``tests/hooks/test_akool.py`` -> ``tests.hooks.test_akool``)."""
    parts = list(path.resolve().relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_path(name: str) -> Path | None:
    base = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _embedded_code(node: ast.AST) -> ast.AST | None:
    """The parsed Python of a string literal that is code run elsewhere (it parses and imports something)."""
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str) and "import" in node.value):
        return None
    try:
        tree = ast.parse(textwrap.dedent(node.value))
    except SyntaxError:
        return None
    return tree if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree)) else None


def _modules_run(node: ast.AST) -> Iterator[str]:
    """
    The modules a call runs in another interpreter: ``[python, "-m", "X", ...]`` (or ``["airflow", ...]``,
    the airflow command) given to it as an argument list.
    """
    if not isinstance(node, ast.Call):
        return
    for argument in node.args:
        if not isinstance(argument, (ast.List, ast.Tuple)):
            continue
        words = [e.value if isinstance(e, ast.Constant) else None for e in argument.elts]
        if words[:1] == ["airflow"]:
            yield "airflow"
        for i, word in enumerate(words[:-1]):
            if word == "-m" and isinstance(words[i + 1], str):
                yield words[i + 1]


def _imports(tree: ast.AST, package: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(module, names)`` of every import that runs (any depth), relative ones resolved."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for module in _modules_run(node):
            yield module, ("<run with -m>",) if module == "airflow" else ()
        embedded = _embedded_code(node)
        if embedded is not None:
            stack.append(embedded)
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            yield module, tuple(alias.name for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))


@functools.cache
def _direct(name: str) -> tuple[frozenset[str], frozenset[str]]:
    """The repository modules ``name`` imports, and its versioned Airflow imports (``module:name``)."""
    path = _module_path(name)
    if path is None:
        return frozenset(), frozenset()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    own: set[str] = set()
    versioned: set[str] = set()
    for module, names in _imports(ast.parse(path.read_text(), str(path)), package):
        top = module.split(".")[0]
        if top == "airflow":
            unstable = [n for n in names if (module, n) not in STABLE_AIRFLOW_IMPORTS] if names else [""]
            versioned.update(f"{module}:{n}" if n else module for n in unstable)
        elif top in OWN_PACKAGES:
            targets = [f"{module}.{n}" for n in names if _module_path(f"{module}.{n}")] or [module]
            for target in targets:
                # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
                pieces = target.split(".")
                own.update(".".join(pieces[:i]) for i in range(1, len(pieces) + 1))
    own.discard(name)
    return frozenset(m for m in own if _module_path(m)), frozenset(versioned)


def versioned_imports(name: str) -> dict[str, set[str]]:
    """Every versioned Airflow import ``name`` reaches, by the repository module that makes it."""
    found: dict[str, set[str]] = {}
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        own, versioned = _direct(current)
        if versioned:
            found[current] = set(versioned)
        todo.extend(own)
    return found


def exemption(path: Path) -> str | None:
    """Why the test module at ``path`` runs on the newest Airflow only although it reaches Airflow."""
    return EXEMPT.get(path.resolve().relative_to(REPO_ROOT).as_posix())


def is_versioned(path: Path, fixtures: list[str] | tuple[str, ...] = ()) -> bool:
    """Whether a test of the module at ``path`` using ``fixtures`` belongs on the floor."""
    if exemption(path) is not None:
        return False
    if path.resolve().is_relative_to(REPO_ROOT / "tests" / "e2e"):
        return True
    return bool(AIRFLOW_FIXTURES.intersection(fixtures)) or bool(versioned_imports(module_name(path)))
