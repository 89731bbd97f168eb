"""The school directory: checks a username and password and says which groups the person is in.

`LdapDirectory` asks LDAP / Active Directory (ldap3, run in worker threads with time limits, so
the caller's event loop never waits on the network); `LocalDirectory` reads a users file with
hashed passwords (the embedded directory for the demo and schools without LDAP). Both raise
`DirectoryUnavailable` when they cannot answer. Passwords are never stored or logged.

Both look people up by the canonical user name (policy/names.py: NFKC, case-folded, trimmed)
and answer with the canonical name, so every spelling of a name is one person everywhere.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import hmac
import math
import os
import queue
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

import ldap3
import yaml
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn
from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as checked_dataclass

from schoolgate.policy.names import canonical_user
from schoolgate.store.identity_config import (
    GroupMode,
    IdentityConfigError,
    LdapSettings,
    LocalSettings,
    located_problems,
)

T = TypeVar("T")

# scrypt at n=2**14, r=8, p=1 (16 MiB, tens of milliseconds) as OWASP's password storage cheat
# sheet suggests; pbkdf2_sha256 is accepted for hashes made elsewhere.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
# LDAP result codes meaning "these credentials are refused" rather than "the server failed":
# invalidCredentials (AD adds locked/expired/disabled as sub-codes), inappropriateAuthentication,
# unwillingToPerform.
_REFUSED = frozenset({49, 48, 53})
_SIZE_LIMIT_EXCEEDED = 4
_PAGED_RESULTS = "1.2.840.113556.1.4.319"
MAX_LISTED_USERS = 20_000  # a listing of more people is refused (no class lists then)
LIST_SECONDS = 60.0  # ... and so is one that takes longer


class DirectoryUnavailable(Exception):
    """The directory could not be asked (unreachable, timed out, refused the service account)."""


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    username: str
    groups: frozenset[str]
    display_name: str
    mail: str = ""  # the e-mail address the directory holds, or "" (see `plain_address`)
    dn: str = ""  # the person's entry (LDAP), or "" (a local users file has none)


# One address, nothing that could add a mail header or a second recipient.
_ADDRESS = re.compile(r"[^@\s,;<>\"]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z0-9-]{2,63}")


def plain_address(value: str) -> str:
    """`value` if it is one plain e-mail address, else "" (never a header or a list)."""
    value = value.strip()
    return value if _ADDRESS.fullmatch(value) else ""


class Directory(Protocol):
    async def authenticate(self, username: str, password: str) -> DirectoryUser | None:
        """The user, or None for an unknown user or a wrong password."""
        ...

    async def lookup(self, username: str) -> DirectoryUser | None:
        """Who `username` is (groups), without checking a password: for 'explain' questions."""
        ...

    def close(self) -> None:
        """Let go of connections and worker threads."""
        ...


# --- password hashes (local users file) -------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """An scrypt hash for the users file: `scrypt$n$r$p$salt$digest` (base64)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def _hasher(encoded: str) -> tuple[bytes, Callable[[str], bytes]]:
    """The expected digest and the function that hashes a candidate; ValueError if malformed."""
    scheme, _, rest = encoded.partition("$")
    parts = rest.split("$")
    try:
        if scheme == "scrypt" and len(parts) == 5:
            n, r, p = (int(part) for part in parts[:3])
            salt, digest = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4])
            if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
                raise ValueError("scrypt parameters out of range")
            return digest, lambda pw: hashlib.scrypt(
                pw.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r * p, dklen=len(digest)
            )
        if scheme == "pbkdf2_sha256" and len(parts) == 3:
            rounds = int(parts[0])
            salt, digest = base64.b64decode(parts[1], validate=True), base64.b64decode(parts[2])
            if not 1000 <= rounds <= 10_000_000:
                raise ValueError("pbkdf2 iterations out of range")
            return digest, lambda pw: hashlib.pbkdf2_hmac(
                "sha256", pw.encode(), salt, rounds, dklen=len(digest)
            )
    except (ValueError, TypeError) as error:
        raise ValueError(f"malformed {scheme} password hash ({error})") from None
    raise ValueError(
        "not a password hash: expected scrypt$n$r$p$salt$digest or "
        "pbkdf2_sha256$iterations$salt$digest (make one with hash_password)"
    )


def verify_password(password: str, encoded: str) -> bool:
    digest, compute = _hasher(encoded)
    return hmac.compare_digest(compute(password), digest)


def _check_hash(encoded: str) -> str:
    _hasher(encoded)
    return encoded


@checked_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class LocalUser:
    password_hash: Annotated[str, AfterValidator(_check_hash)]
    display_name: str = ""
    groups: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    mail: str = ""


@checked_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class _UsersFile:
    users: dict[Annotated[str, Field(min_length=1, max_length=256)], LocalUser]


_USERS = TypeAdapter(_UsersFile)
_DUMMY_HASH = hash_password(os.urandom(16).hex())  # checked for unknown users: same cost


def parse_users_file(text: str, *, source: str) -> Mapping[str, LocalUser]:
    """username -> LocalUser from the users file's YAML; IdentityConfigError lists the problems."""
    try:
        document: Any = yaml.safe_load(text)
        parsed = _USERS.validate_python(document)
    except yaml.YAMLError:
        raise IdentityConfigError([f"{source}: not valid YAML"]) from None
    except ValidationError as error:
        raise IdentityConfigError(located_problems(error, source=source)) from None
    seen: dict[str, str] = {}
    problems = []
    for name in parsed.users:
        try:
            canonical = canonical_user(name)
        except ValueError as error:
            problems.append(f"{source}: users.{name!r}: {error}")
            continue
        if canonical in seen:
            problems.append(
                f"{source}: users.{name}: same user as {seen[canonical]!r} "
                "(user names ignore case and width)"
            )
        seen[canonical] = name
    if problems:
        raise IdentityConfigError(problems)
    return parsed.users


class LocalDirectory:
    """The users file as a directory; user names ignore case, as in Active Directory."""

    def __init__(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise IdentityConfigError(
                [f"{path}: cannot read the users file: {error.strerror or error}"]
            ) from None
        users = parse_users_file(text, source=path.name)
        self._users = {canonical_user(name): (name, user) for name, user in users.items()}
        self._slots = asyncio.Semaphore(4)  # each check holds 16 MiB for scrypt

    def _find(self, username: str) -> tuple[str, str, LocalUser] | None:
        """(canonical name, name as written in the file, user), or None."""
        name = _canonical_or_none(username)
        found = self._users.get(name) if name is not None else None
        return (name, *found) if name is not None and found is not None else None

    async def authenticate(self, username: str, password: str) -> DirectoryUser | None:
        found = self._find(username)
        encoded = found[2].password_hash if found else _DUMMY_HASH
        async with self._slots:
            matches = await asyncio.to_thread(verify_password, password, encoded)
        if found is None or not matches or not password:
            return None
        return self._as_user(*found)

    async def lookup(self, username: str) -> DirectoryUser | None:
        found = self._find(username)
        return self._as_user(*found) if found else None

    @staticmethod
    def _as_user(name: str, written: str, user: LocalUser) -> DirectoryUser:
        return DirectoryUser(
            name, frozenset(user.groups), user.display_name or written, plain_address(user.mail)
        )

    def close(self) -> None:
        pass


# --- LDAP / Active Directory -------------------------------------------------------------------


def _values(attributes: Mapping[str, Any], name: str) -> list[str]:
    value = attributes.get(name)
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [item.decode() if isinstance(item, bytes) else str(item) for item in items]


def _group_name(dn: str) -> str:
    """cn=Year5,ou=groups,dc=school -> Year5."""
    try:
        return str(parse_dn(dn)[0][1])
    except LDAPException:
        return dn


class _ServerError(Exception):
    """The server answered with an error result: not worth a retry on another connection."""


class LdapDirectory:
    """Active Directory or LDAP: find the user with a service account, bind as the user to check
    the password, then read the groups. Every ldap3 call runs in a worker thread."""

    def __init__(self, settings: LdapSettings) -> None:
        self._settings = settings
        try:
            self._bind_password = settings.bind_password_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise IdentityConfigError(
                [
                    f"{settings.bind_password_file}: cannot read the bind "
                    f"password: {error.strerror or error}"
                ]
            ) from None
        ca_file = str(settings.ca_file) if settings.ca_file else None
        self._tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)
        self._idle: queue.LifoQueue[ldap3.Connection] = queue.LifoQueue(settings.pool_size)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.max_concurrent, thread_name_prefix="schoolgate-ldap"
        )
        # Released when the worker thread finishes, not when the caller gives up, so a hung
        # server can never occupy more than max_concurrent threads.
        self._slots = asyncio.Semaphore(settings.max_concurrent)

    @property
    def url(self) -> str:
        return self._settings.url

    async def authenticate(self, username: str, password: str) -> DirectoryUser | None:
        # An empty password would be an unauthenticated bind, which LDAP servers accept.
        name = _canonical_or_none(username)
        if name is None or not password or len(password) > 1024:
            return None
        return await self._call(self._authenticate_sync, name, password)

    async def lookup(self, username: str) -> DirectoryUser | None:
        """The user's name and groups found with the service account; no password checked."""
        name = _canonical_or_none(username)
        if name is None:
            return None
        return await self._call(self._lookup_sync, name)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            _close(conn)

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        total = self._settings.timeouts.total_seconds
        try:
            async with asyncio.timeout(total):
                await self._slots.acquire()
                future = loop.run_in_executor(self._executor, function, *args)
                future.add_done_callback(self._finished)
                return await asyncio.shield(future)
        except TimeoutError:
            raise DirectoryUnavailable(f"{self.url} did not answer within {total:g} s") from None
        except RuntimeError as error:  # the executor was shut down by a reconfiguration
            raise DirectoryUnavailable(f"{self.url}: {error}") from None

    def _finished(self, future: asyncio.Future[Any]) -> None:
        self._slots.release()
        if not future.cancelled():
            future.exception()  # retrieved, so an abandoned call does not log "never retrieved"

    # The rest runs in worker threads.

    def _authenticate_sync(self, username: str, password: str) -> DirectoryUser | None:
        found = self._with_service(lambda conn: self._find_user(conn, username))
        if found is None:
            # Bind anyway (as nobody), so an unknown user costs what a wrong password costs
            # and the timing does not tell who exists (the local directory's dummy hash).
            with contextlib.suppress(DirectoryUnavailable):
                self._bind_as(
                    f"cn=schoolgate-nobody-{os.urandom(6).hex()},{self._settings.user_search_base}",
                    password,
                )
            return None
        dn, attributes = found
        if not self._bind_as(dn, password):
            return None
        return self._user(username, dn, attributes)

    def _lookup_sync(self, username: str) -> DirectoryUser | None:
        found = self._with_service(lambda conn: self._find_user(conn, username))
        return None if found is None else self._user(username, *found)

    def list_users_sync(
        self, *, max_users: int = MAX_LISTED_USERS, seconds: float = LIST_SECONDS
    ) -> list[DirectoryUser]:
        """Every user under the user base that the configured user filter matches, with their
        groups (read the way `lookup` reads them), for the admin's class lists. One paged
        search; DirectoryUnavailable if the server fails, it holds more than `max_users`
        people, or the listing takes longer than `seconds`. Runs in the caller's thread."""
        deadline = time.monotonic() + seconds
        return self._with_service(lambda conn: self._list_users(conn, max_users, deadline))

    def _list_users(
        self, conn: ldap3.Connection, max_users: int, deadline: float
    ) -> list[DirectoryUser]:
        s = self._settings
        wanted = self._user_attributes()
        query = s.user_filter.format(username="*")
        found: list[DirectoryUser] = []
        cookie: bytes | None = None
        while True:
            conn.search(
                s.user_search_base,
                query,
                ldap3.SUBTREE,
                attributes=wanted,
                paged_size=500,
                paged_cookie=cookie,
                time_limit=max(1, math.ceil(deadline - time.monotonic())),
            )
            self._check(conn, "listing the users")
            # Kept before the loop: a group search on the same connection replaces them.
            entries = list(conn.response or [])
            controls = conn.result.get("controls") or {}
            for item in entries:
                if item.get("type") != "searchResEntry":
                    continue
                attributes = item["attributes"]
                name = next(iter(_values(attributes, s.username_attribute)), "")
                if _canonical_or_none(name) is None:
                    continue
                found.append(self._user(name, str(item["dn"]), attributes, conn))
                if len(found) > max_users:
                    raise _ServerError(f"more than {max_users} users: not listed")
                if time.monotonic() > deadline:
                    raise _ServerError("listing the users took too long")
            cookie = controls.get(_PAGED_RESULTS, {}).get("value", {}).get("cookie")
            if not cookie:
                return found

    def _user(
        self, username: str, dn: str, attributes: Any, conn: ldap3.Connection | None = None
    ) -> DirectoryUser:
        s = self._settings
        if s.groups.mode is GroupMode.MEMBER_OF:
            groups = [_group_name(value) for value in _values(attributes, "memberOf")]
        else:
            groups = (
                self._search_groups(conn, dn)
                if conn is not None
                else self._with_service(lambda service: self._search_groups(service, dn))
            )
        name = next(iter(_values(attributes, s.username_attribute)), username)
        display = next(
            iter(_values(attributes, s.display_name_attribute) or _values(attributes, "cn")), name
        )
        mail = plain_address(next(iter(_values(attributes, s.mail_attribute)), ""))
        return DirectoryUser(
            _canonical_or_none(name) or username, frozenset(groups), display, mail, dn
        )

    def _user_attributes(self) -> list[str]:
        """The attributes read for a user (groups too, where they are on the user)."""
        s = self._settings
        wanted = [s.username_attribute, s.display_name_attribute, "cn", s.mail_attribute]
        return [*wanted, "memberOf"] if s.groups.mode is GroupMode.MEMBER_OF else wanted

    def _find_user(self, conn: ldap3.Connection, username: str) -> tuple[str, Any] | None:
        s = self._settings
        wanted = self._user_attributes()
        query = s.user_filter.format(username=escape_filter_chars(username))
        conn.search(s.user_search_base, query, ldap3.SUBTREE, attributes=wanted, size_limit=2)
        if conn.result["result"] == _SIZE_LIMIT_EXCEEDED:
            return None  # more than one person answers to this name: refuse, never guess
        self._check(conn, "searching for the user")
        entries = [item for item in conn.response or [] if item.get("type") == "searchResEntry"]
        if len(entries) != 1:
            return None
        return str(entries[0]["dn"]), entries[0]["attributes"]

    def _search_groups(self, conn: ldap3.Connection, user_dn: str) -> list[str]:
        lookup = self._settings.groups
        query = lookup.effective_filter.format(user_dn=escape_filter_chars(user_dn))
        assert lookup.search_base is not None  # checked when the settings were parsed
        conn.search(lookup.search_base, query, ldap3.SUBTREE, attributes=[lookup.name_attribute])
        self._check(conn, "searching for the user's groups")
        names = []
        for item in conn.response or []:
            if item.get("type") == "searchResEntry":
                names += _values(item["attributes"], lookup.name_attribute)[:1] or [
                    _group_name(str(item["dn"]))
                ]
        return names

    def _check(self, conn: ldap3.Connection, doing: str) -> None:
        if conn.result["result"] != 0:
            raise _ServerError(
                f"{doing}: {conn.result['description']} {conn.result.get('message') or ''}".rstrip()
            )

    def _with_service(self, operation: Callable[[ldap3.Connection], T]) -> T:
        """Run `operation` on a pooled service connection; one retry on a fresh connection when
        a pooled one has gone stale (the server restarted since it was opened)."""
        error: Exception | None = None
        for _ in range(2):
            conn: ldap3.Connection | None = None
            with contextlib.suppress(queue.Empty):
                conn = self._idle.get_nowait()
            pooled = conn is not None
            try:
                if conn is None:
                    conn = self._connect(self._settings.bind_dn, self._bind_password)
                    if not conn.bind():
                        raise _ServerError(
                            f"the service account {self._settings.bind_dn} was "
                            f"refused ({conn.result['description']}); check "
                            "bind_dn and the bind password file"
                        )
                result = operation(conn)
            except _ServerError as failure:
                if conn is not None:
                    _close(conn)
                raise DirectoryUnavailable(f"{self.url}: {failure}") from None
            except (LDAPException, OSError) as failure:
                if conn is not None:
                    _close(conn)
                error = failure
                if pooled:
                    continue
                break
            try:
                self._idle.put_nowait(conn)
            except queue.Full:
                _close(conn)
            return result
        raise DirectoryUnavailable(f"{self.url}: {error}") from None

    def _bind_as(self, dn: str, password: str) -> bool:
        conn = None
        try:
            conn = self._connect(dn, password)
            if conn.bind():
                return True
            if conn.result["result"] in _REFUSED:
                return False
            raise DirectoryUnavailable(
                f"{self.url}: checking the password: {conn.result['description']}"
            )
        except (_ServerError, LDAPException, OSError) as error:
            raise DirectoryUnavailable(f"{self.url}: checking the password: {error}") from None
        finally:
            if conn is not None:
                conn.password = None
                _close(conn)

    def _connect(self, user: str, password: str) -> ldap3.Connection:
        s = self._settings
        encrypted = s.url.startswith("ldaps://")
        server = ldap3.Server(
            s.url,
            use_ssl=encrypted,
            tls=self._tls if encrypted or s.start_tls else None,
            connect_timeout=s.timeouts.connect_seconds,
            get_info=ldap3.NONE,
        )
        conn = ldap3.Connection(
            server,
            user=user,
            password=password,
            read_only=True,
            # ldap3 packs this into SO_RCVTIMEO as whole seconds
            receive_timeout=math.ceil(s.timeouts.receive_seconds),
            auto_referrals=False,
            raise_exceptions=False,
        )
        conn.open()
        if s.start_tls and not conn.start_tls():
            _close(conn)
            raise _ServerError(f"StartTLS refused: {conn.result['description']}")
        return conn


def _canonical_or_none(username: str) -> str | None:
    try:
        return canonical_user(username)
    except ValueError:
        return None


def _close(conn: ldap3.Connection) -> None:
    with contextlib.suppress(Exception):
        conn.unbind()


def make_directory(settings: LdapSettings | LocalSettings | None) -> Directory | None:
    """The directory an identity configuration names (None: nobody signs in)."""
    if isinstance(settings, LdapSettings):
        return LdapDirectory(settings)
    if isinstance(settings, LocalSettings):
        return LocalDirectory(settings.users_file)
    return None
