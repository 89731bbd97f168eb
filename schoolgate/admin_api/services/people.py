"""Who a name is, as the gateway would see them: a person's role from the directory (for the
checks that must use the beneficiary's role, never the reviewer's), and how many people a group
or a role holds (for the plain summary of a wide grant's reach), where the directory can say.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import anyio.from_thread

from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.roles import Placement, SignedInUser, place_in_trust
from schoolgate.policy.model import Scope
from schoolgate.store.directory import (
    Directory,
    DirectoryUnavailable,
    DirectoryUser,
    LdapDirectory,
)

NAME_LOOKUP_SECONDS = 2.0  # a page waits at most this long for the directory's names
MAX_NAME_LOOKUPS = 100  # distinct people named on one page (a page holds 100 events)
REFRESH_SECONDS = 600.0  # an LDAP directory's users are listed again this often
RETRY_SECONDS = 60.0  # ... or this soon after a listing failed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Person:
    """A name looked up: `known` False when the directory does not know it (or could not be
    asked); `role` is then the policy's default role, as at the gateway."""

    name: str
    known: bool
    role: str
    groups: frozenset[str] = frozenset()
    display_name: str = ""
    unavailable: bool = False
    dn: str = ""  # the person's directory entry (LDAP), for a trust's OU per school


async def look_up(resources: Resources, name: str) -> Person:
    """The person called `name` in the directory, with the role the gateway would give them."""
    default = resources.policy.default_role
    name = name.strip()
    directory = resources.directory
    if not name or directory is None or "\n" in name or len(name) > 200:
        return Person(name=name, known=False, role=default, unavailable=directory is None)
    try:
        found = await directory.lookup(name)
    except DirectoryUnavailable:
        return Person(name=name, known=False, role=default, unavailable=True)
    if found is None:
        return Person(name=name, known=False, role=default)
    role = resources.identity.role_for_groups(found.groups) or default
    return Person(
        name=found.username,
        known=True,
        role=role,
        groups=found.groups,
        display_name=found.display_name,
        dn=found.dn,
    )


@dataclass(slots=True)
class _Snapshot:
    """The last listing of an LDAP directory's users, and when to list them again."""

    users: list[DirectoryUser] | None = None
    next_refresh: float = 0.0
    refreshing: bool = False


_SNAPSHOTS: weakref.WeakKeyDictionary[LdapDirectory, _Snapshot] = weakref.WeakKeyDictionary()
_SNAPSHOTS_LOCK = threading.Lock()


def refresh_snapshot(directory: LdapDirectory) -> bool:
    """List the directory's users now (in this thread) and keep them for the pages; False,
    keeping the last listing, when the directory cannot be listed."""
    with _SNAPSHOTS_LOCK:
        snapshot = _SNAPSHOTS.setdefault(directory, _Snapshot())
    try:
        users = directory.list_users_sync()
    except Exception as error:  # down, too big, too slow, closed: the last listing stays
        log.warning("cannot list the directory's users for the class lists: %s", error)
        with _SNAPSHOTS_LOCK:
            snapshot.next_refresh = time.monotonic() + RETRY_SECONDS
            snapshot.refreshing = False
        return False
    with _SNAPSHOTS_LOCK:
        snapshot.users = users
        snapshot.next_refresh = time.monotonic() + REFRESH_SECONDS
        snapshot.refreshing = False
    return True


def _ldap_users(directory: LdapDirectory) -> list[DirectoryUser] | None:
    """The last listing of the directory's users (None before the first one), starting a
    refresh in the background when it is due: a page never waits on the directory."""
    with _SNAPSHOTS_LOCK:
        snapshot = _SNAPSHOTS.setdefault(directory, _Snapshot())
        due = not snapshot.refreshing and time.monotonic() >= snapshot.next_refresh
        if due:
            snapshot.refreshing = True
        users = snapshot.users
    if due:
        threading.Thread(
            target=refresh_snapshot, args=(directory,), name="schoolgate-people", daemon=True
        ).start()
    return users


def _everyone(resources: Resources) -> list[DirectoryUser] | None:
    """Every user: a users file is read in memory; an LDAP directory from its last listing,
    refreshed in the background (None until the first listing: then names are typed)."""
    if isinstance(resources.directory, LdapDirectory):
        return _ldap_users(resources.directory)
    users = getattr(resources.directory, "_users", None)
    if not isinstance(users, dict):
        return None
    found = []
    for name, user in users.values():
        shown = getattr(user, "display_name", "") or name
        found.append(DirectoryUser(name, frozenset(getattr(user, "groups", ())), shown))
    return found


def named(resources: Resources, words: str) -> tuple[str, ...]:
    """The user names of the people whose name in the directory contains `words` (any case):
    'Pupil One' finds pupil1. Only where the directory can list its users (a users file)."""
    wanted = " ".join(words.split()).casefold()
    if not wanted:
        return ()
    users = _everyone(resources) or []
    return tuple(u.username for u in users if wanted in u.display_name.casefold())


def display_names(resources: Resources, logins: Iterable[str | None]) -> dict[str, str]:
    """Login -> name in the directory, for the logins it knows; the rest are left out (shown
    by their login). A users file is read in memory; an LDAP directory is asked, all at once,
    for at most NAME_LOOKUP_SECONDS: a directory that is down or slow names nobody, and the
    page still shows. Called from a sync route's worker thread."""
    wanted = sorted({x for x in logins if x})[:MAX_NAME_LOOKUPS]
    # An LDAP directory is asked for names, as before its users were listed for classes.
    users = None if isinstance(resources.directory, LdapDirectory) else _everyone(resources)
    if users is not None:
        by_login = {u.username.casefold(): u.display_name for u in users}
        shown = {login: by_login.get(login.casefold(), "") for login in wanted}
    elif resources.directory is None or not wanted:
        return {}
    else:
        try:
            shown = anyio.from_thread.run(_looked_up, resources.directory, wanted)
        except Exception:  # no event loop to ask from, or anything else: logins only
            return {}
    return {k: v for k, v in shown.items() if v and v.casefold() != k.casefold()}


async def _looked_up(directory: Directory, logins: list[str]) -> dict[str, str]:
    async def one(login: str) -> tuple[str, str]:
        try:
            found = await directory.lookup(login)
        except (DirectoryUnavailable, ValueError):
            return login, ""
        return login, found.display_name if found is not None else ""

    try:
        async with asyncio.timeout(NAME_LOOKUP_SECONDS):
            return dict(await asyncio.gather(*(one(login) for login in logins)))
    except TimeoutError:
        return {}


def group_members(resources: Resources, group: str) -> tuple[str, ...] | None:
    """The logins of the members of `group` (any case; each login also in lower case, as the
    gateway may log it), or None when the directory cannot list its users."""
    users = _everyone(resources)
    if users is None:
        return None
    wanted = group.strip().casefold()
    logins = [u.username for u in users if wanted in {g.casefold() for g in u.groups}]
    return tuple(sorted(set(logins) | {x.lower() for x in logins}))


def count_covered(resources: Resources, *, scope: Scope, who: str | None) -> int | None:
    """How many people a grant with this scope covers, or None if the directory cannot say."""
    if scope is Scope.USER:
        return 1
    users = _everyone(resources)
    if users is None:
        return None
    default = resources.policy.default_role
    if scope is Scope.GROUP:
        wanted = (who or "").casefold()
        return sum(1 for u in users if wanted in {g.casefold() for g in u.groups})
    if scope is Scope.ROLE:
        return sum(
            1 for u in users if (resources.identity.role_for_groups(u.groups) or default) == who
        )
    return len(users)


def placement(resources: Resources, groups: frozenset[str], dn: str = "") -> Placement | None:
    """Where the trust places a person with these directory groups and entry (`dn`): by groups
    named after a school or the trust, and the trust file's `directory:` as at the gateway
    (roles.place_in_trust); None without a trust file."""
    trust = resources.trust
    if trust is None:
        return None
    return place_in_trust(
        groups=groups,
        schools=trust.schools,
        admin_groups=resources.settings.admin_groups,
        directory_school=trust.attributor.by_directory(groups, dn or None),
    )


def known_groups(resources: Resources, viewer: SignedInUser | None = None) -> list[str]:
    """The directory's group names, to offer on the approval form and the events filter (none
    when the directory cannot list its users: then the name is typed). With a trust, a
    school's staff (`viewer`) are offered only the groups of their own school's people."""
    users = _everyone(resources) or []
    if resources.trust is not None and viewer is not None and not viewer.every_school:
        users = [
            user
            for user in users
            if (placed := placement(resources, user.groups, user.dn)) is not None
            and placed.school == viewer.school
            and viewer.school is not None
        ]
    return sorted({group for user in users for group in user.groups}, key=str.casefold)


def unknown_group(resources: Resources, group: str | None) -> str | None:
    """A problem in words if the directory can list its users and none is in `group` (a typo:
    a grant or a request for it would reach nobody); else None."""
    if not group or count_covered(resources, scope=Scope.GROUP, who=group) != 0:
        return None
    return (
        f"nobody in the school directory is in the class or group {group}: check its name "
        "(as in the directory, for example Year5)"
    )


def group_role(resources: Resources, group: str | None) -> str | None:
    """The role most members of `group` have (for explaining a class request), or None if
    the directory cannot list them."""
    users = _everyone(resources) if group else None
    if not users or not group:
        return None
    default = resources.policy.default_role
    wanted = group.casefold()
    roles = Counter(
        resources.identity.role_for_groups(u.groups) or default
        for u in users
        if wanted in {g.casefold() for g in u.groups}
    )
    return roles.most_common(1)[0][0] if roles else None
