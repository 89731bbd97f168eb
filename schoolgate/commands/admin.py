"""`schoolgate admin`: run the admin service (uvicorn). Settings come from SCHOOLGATE_* variables;
the flags here override them. On the embedded default database (SQLite in the data directory)
the migrations are applied first; any other database must already be at the current schema.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schoolgate.commands.common import DEMO_IDENTITY, prepare_database
from schoolgate.store.db import display_url

POLICY_CHECK_SECONDS = 5.0
TRUST_CHECK_SECONDS = 1.0  # a school added on the command line shows within a second
logger = logging.getLogger("schoolgate.admin")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "admin",
        help="run the admin service (web pages and API for staff)",
        description="Run the admin web service. Flags override SCHOOLGATE_* settings.",
    )
    parser.add_argument("--listen-host", default="127.0.0.1", help="address (127.0.0.1)")
    parser.add_argument("--listen-port", type=int, default=8081, help="port (8081)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the database and secrets live ($SCHOOLGATE_DATA_DIR or ./var/schoolgate)",
    )
    parser.add_argument(
        "--identity",
        type=Path,
        default=None,
        help="identity settings (the directory staff and pupils sign in with)",
    )
    parser.add_argument(
        "--policy", type=Path, default=None, help="policy file (default: the seed policy)"
    )
    parser.add_argument(
        "--trust",
        type=Path,
        default=None,
        help="many schools (docs/trust.md): the gateway's trust file; each person then sees "
        "their own school's records ($SCHOOLGATE_TRUST_FILE)",
    )
    parser.add_argument("--gateway-url", default=None, help="the gateway's address")
    parser.add_argument(
        "--database",
        default=None,
        help="database URL (default: $SCHOOLGATE_DATABASE_URL, else "
        "schoolgate.db in the data directory, migrated automatically)",
    )
    parser.add_argument(
        "--tls-cert",
        type=Path,
        default=_env_path("SCHOOLGATE_ADMIN_TLS_CERT"),
        help="serve HTTPS with this certificate (PEM, with its chain), e.g. "
        "one from 'schoolgate ca server-cert' ($SCHOOLGATE_ADMIN_TLS_CERT)",
    )
    parser.add_argument(
        "--tls-key",
        type=Path,
        default=_env_path("SCHOOLGATE_ADMIN_TLS_KEY"),
        help="the certificate's private key ($SCHOOLGATE_ADMIN_TLS_KEY)",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        default=os.environ.get("SCHOOLGATE_FORWARDED_ALLOW_IPS") or None,
        help="behind an HTTPS reverse proxy or Ingress: the proxy's addresses "
        "(comma-separated, or * when only the proxy can reach the admin), "
        "whose X-Forwarded-For/-Proto headers give the client's address "
        "and https ($SCHOOLGATE_FORWARDED_ALLOW_IPS; default: none)",
    )
    parser.set_defaults(handler=run_admin)


class FileWatcher:
    """Keeps a file the admin read at start-up in force as it changes on disk: a changed file
    is loaded (`_load`) and put in place (`_apply`); one that fails its check is refused,
    loudly, and the one in force stays. The file is watched by its own name (not the resolved
    one), so a Kubernetes ConfigMap update counts."""

    what = "file"  # the thing in force, in words: "policy", "trust"

    def __init__(self, resources: Any, path: Path) -> None:
        self.resources = resources
        self.path = path.absolute()
        self.stamp = self._stamp()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _load(self) -> Any:
        raise NotImplementedError

    def _apply(self, value: Any) -> None:
        raise NotImplementedError

    def check(self) -> bool:
        """Reload when the file changed; True when the new one is now in force."""
        from schoolgate.policy.errors import PolicyError

        stamp = self._stamp()
        if stamp == self.stamp or stamp is None:
            return False
        self.stamp = stamp
        try:
            value = self._load()
        except (PolicyError, ValueError) as error:
            logger.warning(
                "the changed %s file was refused; the %s in force stays:\n%s",
                self.what,
                self.what,
                error,
            )
            return False
        self._apply(value)  # one reference swap: requests see old or new, whole
        logger.warning("%s reloaded from %s", self.what, self.path)
        return True

    def start(self, interval: float = POLICY_CHECK_SECONDS) -> threading.Thread:
        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.check()
                except Exception:  # never let the watcher die silently
                    logger.warning("checking the %s file failed", self.what, exc_info=True)

        stop = threading.Event()
        thread = threading.Thread(target=loop, name=f"{self.what}-watcher", daemon=True)
        thread.start()
        return thread


class PolicyWatcher(FileWatcher):
    """Keeps the admin's policy the file's: the gateway reloads a changed policy by itself, and
    the admin's pages (policy table, explain, unblock requests) must say the same."""

    what = "policy"

    def _load(self) -> Any:
        from schoolgate.store.policy_files import load_policy

        return load_policy(self.path)

    def _apply(self, value: Any) -> None:
        self.resources.policy = value


class TrustWatcher(FileWatcher):
    """Keeps the admin's trust the trust file's: a school added or removed on the command line
    (`schoolgate trust add-school`) or by another admin replica reaches this admin's pages."""

    what = "trust"

    def _load(self) -> Any:
        from schoolgate.admin_api.resources import load_trust

        return load_trust(self.path)

    def _apply(self, value: Any) -> None:
        self.resources.trust = value


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def plain_http_problem(
    *, cookie_secure: bool, listen_host: str, tls: bool, behind_proxy: bool
) -> str | None:
    """Why sign-in would fail without a word, or None. Browsers drop a Secure cookie sent over
    plain http:// to any address but loopback, so signing in would just start again."""
    if not cookie_secure or tls or behind_proxy:
        return None
    if listen_host in LOOPBACK_NAMES or listen_host.startswith("127."):
        return None  # loopback: only a local HTTPS reverse proxy (or this machine) reaches it
    return (
        f"the admin would serve plain HTTP on {listen_host}, but its sign-in cookie is "
        "Secure, so browsers would drop it and nobody could sign in. Serve HTTPS "
        "(--tls-cert/--tls-key, e.g. from 'schoolgate ca server-cert'), or put it behind "
        "an HTTPS reverse proxy and set --forwarded-allow-ips, or for a plain-HTTP trial "
        "set SCHOOLGATE_COOKIE_SECURE=false"
    )


def _is_demo(identity: Path | None) -> bool:
    return identity is not None and identity.resolve() == DEMO_IDENTITY.resolve()


def settings_from(args: argparse.Namespace) -> Any:
    """Settings from the environment with the flags on top. The shipped demo directory (public
    passwords) means a demo: development mode and plain-http cookies unless set otherwise."""
    from schoolgate.admin_api.settings import Settings

    explicit: dict[str, Any] = {}
    for flag, name in (
        ("data_dir", "data_dir"),
        ("identity", "identity_file"),
        ("policy", "policy_file"),
        ("trust", "trust_file"),
        ("gateway_url", "gateway_url"),
        ("database", "database_url"),
    ):
        value = getattr(args, flag)
        if value is not None:
            explicit[name] = value
    identity = args.identity or (
        Path(os.environ["SCHOOLGATE_IDENTITY_FILE"])
        if os.environ.get("SCHOOLGATE_IDENTITY_FILE")
        else None
    )
    if _is_demo(identity):
        if "SCHOOLGATE_ENVIRONMENT" not in os.environ:
            explicit["environment"] = "development"
        if "SCHOOLGATE_COOKIE_SECURE" not in os.environ:
            explicit["cookie_secure"] = False
    return Settings(**explicit)


def run_admin(args: argparse.Namespace) -> int:
    import uvicorn

    from schoolgate.admin_api.app import make_app
    from schoolgate.admin_api.resources import make_resources
    from schoolgate.admin_api.settings import settings_problems
    from schoolgate.admin_metrics import install_admin_metrics
    from schoolgate.policy.errors import PolicyError
    from schoolgate.store.identity_config import IdentityConfigError

    try:
        settings = settings_from(args)
    except ValidationError as error:
        for line in settings_problems(error):
            print(f"schoolgate admin: {line}", file=sys.stderr)
        return 2
    problem = prepare_database(settings.effective_database_url, embedded=settings.embedded_database)
    if problem is not None:
        print(f"schoolgate admin: {problem}", file=sys.stderr)
        return 2
    try:
        resources = make_resources(settings)
    except (IdentityConfigError, PolicyError, ValueError, OSError) as error:
        print(f"schoolgate admin: {error}", file=sys.stderr)
        return 2
    if (args.tls_cert is None) != (args.tls_key is None):
        print("schoolgate admin: HTTPS needs both --tls-cert and --tls-key", file=sys.stderr)
        return 2
    tls = args.tls_cert is not None
    problem = plain_http_problem(
        cookie_secure=settings.cookie_secure,
        listen_host=args.listen_host,
        tls=tls,
        behind_proxy=args.forwarded_allow_ips is not None,
    )
    if problem is not None:
        print(f"schoolgate admin: {problem}", file=sys.stderr)
        return 2
    app = make_app(resources=resources)
    install_admin_metrics(app, resources.engine)
    if settings.policy_file is not None:
        PolicyWatcher(resources, Path(settings.policy_file)).start()
    if settings.trust_file is not None:
        TrustWatcher(resources, Path(settings.trust_file)).start(TRUST_CHECK_SECONDS)
    scheme = "https" if tls else "http"
    print(
        f"schoolgate admin: {scheme}://{args.listen_host}:{args.listen_port}/ "
        f"(database {display_url(settings.effective_database_url)})",
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.listen_host,
        port=args.listen_port,
        log_level="info",
        proxy_headers=args.forwarded_allow_ips is not None,
        forwarded_allow_ips=args.forwarded_allow_ips,
        ssl_certfile=str(args.tls_cert) if tls else None,
        ssl_keyfile=str(args.tls_key) if tls else None,
        server_header=False,
    )
    return 0
