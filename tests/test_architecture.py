"""The import graph stays one-way (DESIGN.md section 3), and `policy/` stays pure.

- `policy` imports nothing of ours and does no I/O, clock reads or logging;
- `store` imports only `policy` of ours;
- `proxy_addons` and `admin_api` never import each other (they meet in `store`);
- nothing imports a module by a name in a string (which would hide an edge from this test);
- the packages are imported by the names they are installed under (docs/architecture-names.md):
  while they are top-level folders, `policy`, `store`, ...; once they live under `schoolgate/`,
  `schoolgate.policy`, `schoolgate.store`, ... and never the bare name.

The imports are read from the source with `ast`, lazy imports inside functions included, so a
back-edge cannot hide in a function body.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.layout import CLI, ROOT, import_prefix, package_dir

LAYERS = ("policy", "store", "proxy_addons", "admin_api")
OURS = {*LAYERS, CLI}

# What each package may import of ours (itself always allowed).
ALLOWED: dict[str, set[str]] = {
    "policy": set(),
    "store": {"policy"},
    "proxy_addons": {"policy", "store"},
    "admin_api": {"policy", "store"},
}

# Modules whose use means I/O, a clock or logging: none of them belongs in policy/.
IMPURE_MODULES = {
    "logging",
    "os",
    "pathlib",
    "socket",
    "subprocess",
    "time",
    "shutil",
    "tempfile",
    "asyncio",
    "sqlite3",
    "urllib",
    "http",
    "httpx",
    "sqlalchemy",
    "random",
    "secrets",
    "sys",
    "warnings",
    "io",
    "glob",
    "threading",
    "multiprocessing",
    "signal",
    "requests",
}
IMPURE_CALLS = {"open", "print", "input", "breakpoint", "exec", "eval", "__import__"}
# Not .time(): on a datetime that is its time of day, not a clock.
CLOCK_ATTRIBUTES = {"now", "utcnow", "today", "monotonic", "perf_counter", "time_ns"}
# File and environment access through an object the caller handed in (a Path, os.environ).
IO_ATTRIBUTES = {
    "read_text",
    "read_bytes",
    "write_text",
    "write_bytes",
    "open",
    "unlink",
    "mkdir",
    "getenv",
    "environ",
    "touch",
    "rename",
    "iterdir",
}
# The one read policy/ does: a library's own shipped data, read once like tzdata (ZoneInfo):
# Unicode's confusables from confusable-homoglyphs. (file in policy's folder, what) pairs.
ALLOWED_READS = {("hostclass.py", "read_text"), ("hostclass.py", "importlib")}


def ours(module: str) -> str | None:
    """Which of our packages the module `module` belongs to (None: not ours)."""
    for package in LAYERS:
        prefix = import_prefix(package)
        if module == prefix or module.startswith(prefix + "."):
            return package
    parts = module.split(".")
    if parts[0] == CLI:
        return CLI
    return parts[0] if parts[0] in LAYERS else None  # a bare name that is no longer right


def modules(package: str) -> Iterator[Path]:
    folder = package_dir(package)
    inner = {package_dir(p) for p in LAYERS} - {folder} if package == CLI else set()
    for path in sorted(folder.rglob("*.py")):
        if not any(path.is_relative_to(d) for d in inner):
            yield path


def imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, full module name) for every import statement, relative ones excluded."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from schoolgate import policy` imports the package policy, not the command line
            full = [f"{node.module}.{alias.name}" for alias in node.names]
            inner = [
                name for name in full if ours(node.module) not in LAYERS and ours(name) in LAYERS
            ]
            for name in inner:
                yield node.lineno, name
            if len(inner) < len(full):
                yield node.lineno, node.module


def top(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for line, module in imported(tree):
        yield line, module.split(".")[0]


@functools.cache
def parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def where(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package: str) -> None:
    wrong = sorted(
        {
            f"{where(path)}:{line} imports {name}"
            for path in modules(package)
            for line, name in imported(parse(path))
            if (found := ours(name)) is not None
            and found != package
            and found not in ALLOWED[package]
        }
    )
    assert wrong == [], f"{package} may import only {sorted(ALLOWED[package])} of ours"


def test_policy_is_pure() -> None:
    found: list[str] = []
    for path in modules("policy"):
        tree = parse(path)
        at, inside = where(path), path.relative_to(package_dir("policy")).as_posix()
        found += [
            f"{at}:{line} imports {name}" for line, name in top(tree) if name in IMPURE_MODULES
        ]
        found += [
            f"{at}:{line} imports {name}"
            for line, name in top(tree)
            if name == "importlib" and (inside, "importlib") not in ALLOWED_READS
        ]
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in IO_ATTRIBUTES
                and (inside, node.attr) not in ALLOWED_READS
            ):
                found.append(f"{at}:{node.lineno} uses .{node.attr} (file or environment)")
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in IMPURE_CALLS:
                found.append(f"{at}:{node.lineno} calls {func.id}()")
            if isinstance(func, ast.Attribute) and func.attr in CLOCK_ATTRIBUTES:
                found.append(f"{at}:{node.lineno} calls .{func.attr}() (a clock read?)")
    assert found == [], "policy/ takes text and instants as arguments; it reads no files or clocks"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_module_is_imported_by_a_name_in_a_string(package: str) -> None:
    found = []
    for path in modules(package):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Call) and (
                (
                    isinstance(node.func, ast.Attribute)
                    and node.func.attr in {"import_module", "find_spec"}
                )
                or (isinstance(node.func, ast.Name) and node.func.id == "__import__")
            ):
                found.append(f"{where(path)}:{node.lineno}")
    assert found == [], "import by name in code, so the import graph stays visible"


def test_our_packages_are_imported_by_their_installed_names() -> None:
    wrong = sorted(
        {
            f"{where(path)}:{line} imports {name} (use {import_prefix(found)})"
            for package in [*LAYERS, CLI]
            for path in modules(package)
            for line, name in imported(parse(path))
            if (found := ours(name)) in LAYERS
            and not (name == import_prefix(found) or name.startswith(import_prefix(found) + "."))
        }
    )
    assert wrong == []


# --- the guard can fail ---------------------------------------------------------------------


def test_the_guard_sees_a_back_edge() -> None:
    # The checks above must be able to fail: a lazy import inside a function is found.
    admin = import_prefix("admin_api")
    tree = ast.parse(f"def f():\n    from {admin} import app\n    return app\n")
    assert [ours(name) for _, name in imported(tree)] == ["admin_api"]


def test_the_guard_sees_a_package_imported_as_a_name() -> None:
    # `from schoolgate import proxy_addons` imports the package once it lives under schoolgate/
    tree = ast.parse(f"from {CLI} import {'proxy_addons'}\n")
    renamed = import_prefix("proxy_addons") != "proxy_addons"
    assert ("proxy_addons" in [ours(name) for _, name in imported(tree)]) is renamed
