"""The import graph stays one-way (DESIGN.md section 3), and `policy/` stays pure.

- `policy` imports nothing of ours and does no I/O, clock reads or logging;
- `store` imports only `policy` of ours;
- `proxy_addons` and `admin_api` never import each other (they meet in `store`).

The imports are read from the source with `ast`, lazy imports inside functions included, so a
back-edge cannot hide in a function body.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"policy", "store", "proxy_addons", "admin_api", "schoolgate"}

# What each package may import of ours (itself always allowed).
ALLOWED: dict[str, set[str]] = {
    "policy": set(),
    "store": {"policy"},
    "proxy_addons": {"policy", "store"},
    "admin_api": {"policy", "store"},
}

# Modules whose use means I/O, a clock or logging: none of them belongs in policy/.
IMPURE_MODULES = {
    "logging", "os", "pathlib", "socket", "subprocess", "time", "shutil", "tempfile", "asyncio",
    "sqlite3", "urllib", "http", "httpx", "sqlalchemy", "random", "secrets",
}
IMPURE_CALLS = {"open", "print", "input"}
# Not .time(): on a datetime that is its time of day, not a clock.
CLOCK_ATTRIBUTES = {"now", "utcnow", "today", "monotonic", "perf_counter"}


def modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, top-level module name) for every import statement, relative ones excluded."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module.split(".")[0]


def parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in modules(package)
        for line, name in imported(parse(path))
        if name in OURS and name != package and name not in ALLOWED[package]
    ]
    assert wrong == [], f"{package} may import only {sorted(ALLOWED[package])} of ours"


def test_policy_is_pure() -> None:
    found: list[str] = []
    for path in modules("policy"):
        tree = parse(path)
        where = path.relative_to(ROOT)
        found += [f"{where}:{line} imports {name}" for line, name in imported(tree)
                  if name in IMPURE_MODULES]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in IMPURE_CALLS:
                found.append(f"{where}:{node.lineno} calls {func.id}()")
            if isinstance(func, ast.Attribute) and func.attr in CLOCK_ATTRIBUTES:
                found.append(f"{where}:{node.lineno} calls .{func.attr}() (a clock read?)")
    assert found == [], "policy/ takes text and instants as arguments; it reads no files or clocks"


def test_the_guard_sees_a_back_edge() -> None:
    # The checks above must be able to fail: a lazy import inside a function is found.
    tree = ast.parse("def f():\n    from admin_api import app\n    return app\n")
    assert list(imported(tree)) == [(2, "admin_api")]
