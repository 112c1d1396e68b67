"""
The package's import graph, as its modules' ``import`` statements draw it (ast, no import): no circles.

Every import counts, those under ``TYPE_CHECKING`` and those inside functions too: a lazy import still
says which module knows which, and the kinds must not know the triggers that use them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_provider_akool

PACKAGE = "airflow_provider_akool"
ROOT = Path(airflow_provider_akool.__file__).parent


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in ROOT.rglob("*.py")}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (``from x import y`` of a submodule counts ``x.y``)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from package import submodule`` imports the submodule; any other name comes from ``base``.
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(path, name, known) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_package_and_its_imports() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.plugins.views_app" in graph
    assert f"{PACKAGE}.kinds.base" in graph[f"{PACKAGE}.triggers.base"]
    assert f"{PACKAGE}.wait" in graph[f"{PACKAGE}.kinds.reage"]


def test_the_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_circle() -> None:
    assert cycles(import_graph()) == []


def test_the_kinds_import_no_trigger_sensor_operator_or_plugin() -> None:
    graph = import_graph()
    upward = (".triggers", ".sensors", ".operators", ".plugins")
    for name, targets in graph.items():
        if name.startswith(f"{PACKAGE}.kinds"):
            assert not [t for t in targets if t.startswith(tuple(PACKAGE + u for u in upward))], name


def test_the_webhook_package_s_imports_point_one_way() -> None:
    # The scheme knows no side; the task's side knows no receiver; nothing imports the plugin shell.
    graph = import_graph()
    webhook = f"{PACKAGE}.webhook"
    assert not [t for t in graph[f"{webhook}.signing"] if t.startswith(webhook)]
    assert f"{webhook}.receiver" not in graph[f"{webhook}.callback_url"]
    assert f"{webhook}.signing" in graph[f"{webhook}.receiver"]
    assert f"{webhook}.callback_url" in graph[f"{webhook}.receiver"]
    shell = f"{PACKAGE}.plugins.webhook_receiver"
    assert [name for name, targets in graph.items() if shell in targets] == []
    assert not [t for t in graph[f"{webhook}.receiver"] if t.startswith(f"{PACKAGE}.plugins")]
