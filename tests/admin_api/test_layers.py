"""Inside `admin_api`, the layers point one way (issue 9; architecture review section 3): routes
(the modules with a `router` or `api`) and their dependencies (`deps`, `monitoring_deps`) use
services and schemas; services never import dependencies or routes; schemas never import
services; and a route that needs the time takes the `Now` dependency instead of reading the
clock itself. Read from the source with `ast`, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "schoolgate" / "admin_api"
PACKAGE_NAME = "schoolgate.admin_api"
DEPENDENCIES = {"schoolgate.admin_api.deps", "schoolgate.admin_api.monitoring_deps"}
SCHEMAS = {"schoolgate.admin_api.schemas", "schoolgate.admin_api.monitoring_schemas"}
CLOCK_READS = {"now", "utcnow", "today"}  # time.time(): cookie stamps, not a route's time


def _name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(tree: ast.AST) -> set[str]:
    """Every admin_api module imported, `from schoolgate.admin_api.services import x` as its module."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, (
                f"line {node.lineno}: relative import (the house style is absolute)"
            )
            if node.module:
                found.add(node.module)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith(f"{PACKAGE_NAME}.")}


def _route_modules() -> set[str]:
    routes = set()
    for path in PACKAGE.glob("*.py"):
        tree = _tree(path)
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in {"router", "api"} for t in node.targets
            ):
                routes.add(_name(path))
    return routes


def test_there_are_routes_to_check() -> None:
    assert {
        "schoolgate.admin_api.requests",
        "schoolgate.admin_api.explain",
        "schoolgate.admin_api.policy_view",
    } <= _route_modules()


def test_the_import_reader_sees_admin_api_imports() -> None:
    """The guards below are only as good as `_imports`: after the move under `schoolgate/` it
    looked for names starting "admin_api" and so found none, and every guard passed vacuously."""
    found = _imports(_tree(PACKAGE / "requests.py"))
    assert any(name.startswith("schoolgate.admin_api.services") for name in found), found
    assert "schoolgate.admin_api.deps" in found or "schoolgate.admin_api.deps.Now" in found, found


def test_services_never_import_dependencies_or_routes() -> None:
    forbidden = DEPENDENCIES | _route_modules()
    wrong = [
        f"{_name(path)} imports {name}"
        for path in sorted((PACKAGE / "services").glob("*.py"))
        for name in sorted(_imports(_tree(path)) & forbidden)
    ]
    assert wrong == []


def test_schemas_never_import_services() -> None:
    wrong = [
        f"{module} imports {name}"
        for module in sorted(SCHEMAS)
        for name in sorted(_imports(_tree(ROOT / (module.replace(".", "/") + ".py"))))
        if name.startswith("schoolgate.admin_api.services")
    ]
    assert wrong == []


def test_routes_take_the_time_from_the_now_dependency() -> None:
    wrong = []
    for module in sorted(_route_modules()):
        path = ROOT / (module.replace(".", "/") + ".py")
        for node in ast.walk(_tree(path)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in CLOCK_READS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"datetime", "date"}
            ):
                wrong.append(
                    f"{module}:{node.lineno} calls {node.func.value.id}.{node.func.attr}()"
                )
    assert wrong == []
