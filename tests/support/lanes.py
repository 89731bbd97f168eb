"""The fast lane (`./scripts/test.sh --fast`, i.e. `pytest --fast`): the unit and pure tests,
which start no process, need no service and do not run the admin app on its database. Which
tests those are is worked out, never listed by hand:

- a test is *slow* when it carries one of the real-parts markers (e2e, ldap, postgres,
  browser, slow), when it uses a fixture that starts a service or builds the admin app (the
  slapd, PostgreSQL and admin fixtures), when it is parametrized onto PostgreSQL, or when its
  code, its fixtures' code or the helpers they call (followed through the test modules and
  `tests/support`) name a way to start a process, a service or the admin app (`subprocess`,
  `running_gateway`, `start_slapd`, `TestClient`, ...);
  `mark_slow_items` adds the `slow` marker to each of them at collection;
- in the fast lane a tripwire then fails, with a message saying what to do, any test that
  still starts a process or asks for the shared PostgreSQL: a new slow test that the analysis
  missed fails loudly instead of slowing the lane down or being skipped in silence.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Iterable
from typing import Any

import pytest

# Markers that mean "needs a real part": each of them implies `slow`.
SLOW_MARKERS = ("slow", "e2e", "ldap", "postgres", "browser")
# Fixtures that start a service (or hand out a database on one), or build the admin app on its
# database (tests/admin_api/conftest.py).
SLOW_FIXTURES = frozenset(
    {
        "slapd_server",
        "shared_slapd",
        "postgres_session_url",
        "postgres_url",
        "private_postgres",
        "resources",
        "shared_app",
    }
)
# Parameter values that put a test on a real service.
SLOW_PARAMS = frozenset({"postgresql"})
# Names whose use in a test's code (or in what it calls) means a process or a service.
SLOW_NAMES = frozenset(
    {
        "subprocess",
        "Popen",
        "create_subprocess_exec",
        "create_subprocess_shell",
        "spawn",
        "running_gateway",
        "start_slapd",
        "running_slapd",
        "need_browser",
        "trust_ca",
        "start_private_postgres",
        "shared_postgres_database",
        "shared_postgres_available",
        "sync_playwright",
        "async_playwright",
        "TestClient",
        "make_app",
        "make_resources",
        "schemathesis",
    }
)
# A property test running at least this many examples is slow (Hypothesis's default is 100).
SLOW_EXAMPLES = 200
# Folders whose every test is slow: the fast lane does not even collect them.
SLOW_FOLDERS = ("e2e",)
# Only code of these modules is followed (not the packages under test, not libraries).
FOLLOWED_PREFIXES = ("tests.", "test_", "conftest")

FAST_OPTION = "--fast"
HOW_TO_FIX = (
    "a test in the fast lane must start no process and need no service: mark it "
    "@pytest.mark.slow (or use a fixture that starts the service, which marks its "
    "users; see tests/support/lanes.py)"
)


def _followed(module_name: str) -> bool:
    return module_name.startswith(FOLLOWED_PREFIXES) or module_name.split(".")[-1].startswith(
        ("test_", "conftest")
    )


class SlowCodeFinder:
    """Whether a function (or what it calls in the test code) names a slow thing; memoised."""

    def __init__(self) -> None:
        self._seen: dict[types.CodeType, bool] = {}

    def function(self, func: Callable[..., Any]) -> bool:
        func = getattr(func, "__wrapped__", func)
        code = getattr(func, "__code__", None)
        if code is None:
            return False
        return self._code(code, getattr(func, "__globals__", {}))

    def _code(self, code: types.CodeType, scope: dict[str, Any]) -> bool:
        if code in self._seen:
            return self._seen[code]
        self._seen[code] = False  # a recursive call does not loop
        # `from tests.x import helper` inside the function: look the names up there too
        scopes = [scope, *(vars(m) for m in map(_test_module, code.co_names) if m is not None)]
        found = any(self._name(name, s) for name in code.co_names for s in scopes) or any(
            self._code(const, scope)
            for const in code.co_consts
            if isinstance(const, types.CodeType)
        )
        self._seen[code] = found
        return found

    def _name(self, name: str, scope: dict[str, Any]) -> bool:
        if name in SLOW_NAMES:
            return True
        value = scope.get(name)
        if value is None or not _followed(getattr(value, "__module__", "") or ""):
            return False
        if isinstance(value, type):
            return any(self.function(member) for member in _functions_of(value))
        if callable(value):
            return self.function(value)
        return False


def _test_module(name: str) -> types.ModuleType | None:
    if not name.startswith("tests."):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _functions_of(cls: type) -> Iterable[Callable[..., Any]]:
    for member in vars(cls).values():
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property):
            member = member.fget
        if isinstance(member, types.FunctionType):
            yield member


def why_slow(item: pytest.Item, finder: SlowCodeFinder) -> str | None:
    """The reason `item` does not belong in the fast lane, or None."""
    for marker in SLOW_MARKERS:
        if item.get_closest_marker(marker) is not None:
            return f"marked {marker}"
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & SLOW_FIXTURES:
        return f"uses the fixture {sorted(fixtures & SLOW_FIXTURES)[0]}"
    callspec = getattr(item, "callspec", None)
    if callspec is not None and SLOW_PARAMS & {str(v) for v in callspec.params.values()}:
        return "runs on PostgreSQL"
    examples = _examples(item)
    if examples >= SLOW_EXAMPLES:
        return f"a property test of {examples} examples"
    if isinstance(item, pytest.Function) and finder.function(item.obj):
        return "its code starts a process or a service"
    info = getattr(item, "_fixtureinfo", None)
    for name in fixtures:
        for definition in info.name2fixturedefs.get(name, ()) if info else ():
            if finder.function(definition.func):
                return f"its fixture {name} starts a process or a service"
    return None


def _examples(item: pytest.Item) -> int:
    settings = getattr(getattr(item, "obj", None), "_hypothesis_internal_use_settings", None)
    return int(getattr(settings, "max_examples", 0) or 0)


def mark_slow_items(items: list[pytest.Item]) -> None:
    finder = SlowCodeFinder()
    for item in items:
        reason = why_slow(item, finder)
        if reason is not None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow(reason=reason))


def keep_fast_items(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the fast lane, deselect the slow items (pytest reports them as deselected)."""
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


class Tripwire:
    """Armed in the fast lane: starting a process, or asking for the shared PostgreSQL, fails
    the test that did it."""

    armed = False

    @classmethod
    def arm(cls) -> None:
        if not cls.armed:
            cls.armed = True
            sys.addaudithook(cls._audit)

    @classmethod
    def _audit(cls, event: str, args: tuple[Any, ...]) -> None:
        if cls.armed and event in {"subprocess.Popen", "os.posix_spawn", "os.exec"}:
            program = args[0] if args else "?"
            pytest.fail(
                f"the fast lane started a process ({program!r}): {HOW_TO_FIX}", pytrace=False
            )


def refuse_in_fast_lane(what: str) -> None:
    """Called by the helpers that reach a shared service without starting a process."""
    if Tripwire.armed:
        pytest.fail(f"the fast lane asked for {what}: {HOW_TO_FIX}", pytrace=False)
