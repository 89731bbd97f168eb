"""What the admin builds once at start-up and shares between requests: the database engine, the
policy, the directory, the secrets, the session codec and the sign-in throttle.

`make_resources(settings)` fails at start-up with a clear message rather than at the first
request; `get_resources` hands them to routes as a dependency.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from schoolgate.admin_api.roles import TRUST_PREFIX
from schoolgate.admin_api.sessions import SessionCodec
from schoolgate.admin_api.settings import (
    ACCESS_TOKEN_SECRET_FILE,
    SESSION_SECRET_FILE,
    Environment,
    Settings,
    is_placeholder,
)
from schoolgate.admin_api.throttle import SignInThrottle
from schoolgate.policy.model import Policy
from schoolgate.policy.trust import TrustFile
from schoolgate.store.db import make_engine
from schoolgate.store.directory import Directory, LocalDirectory, make_directory
from schoolgate.store.identity_config import (
    IdentityConfig,
    load_identity_config,
)
from schoolgate.store.policy_files import load_policy
from schoolgate.store.tokens import load_or_create_secret
from schoolgate.store.trust_files import load_trust_file


@dataclass
class Resources:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    policy: Policy
    identity: IdentityConfig
    directory: Directory | None  # the school's directory (LDAP or local users file)
    admin_accounts: Directory | None  # the local admin accounts file, if any
    access_token_secret: bytes  # the gateway's: verifies block-page links
    codec: SessionCodec
    throttle: SignInThrottle
    trust: TrustFile | None = None  # many schools: each person sees their own school's rows

    def close(self) -> None:
        for directory in (self.directory, self.admin_accounts):
            if directory is not None:
                directory.close()
        self.throttle.close()
        self.engine.dispose()


def load_session_secret(settings: Settings) -> bytes:
    """From the environment, else the secret file; in development, generated and kept in the
    data directory. Placeholders are refused outside development."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    path = settings.session_secret_file
    if path is None:  # development only (Settings refuses it otherwise)
        return load_or_create_secret(settings.data_dir / SESSION_SECRET_FILE)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ValueError(
            f"{path}: cannot read the session secret file: {error.strerror or error}"
        ) from None
    if is_placeholder(text) and settings.environment is not Environment.DEVELOPMENT:
        raise ValueError(
            f"{path}: the session secret is empty, too short or a placeholder; "
            "put at least 32 random characters in it"
        )
    return text.encode()


def make_resources(settings: Settings, *, engine: Engine | None = None) -> Resources:
    policy = load_policy(settings.policy_file)
    settings = settings.with_policy_zone(policy.calendar.timezone.key)  # ValueError: a mismatch
    identity = (
        load_identity_config(settings.identity_file) if settings.identity_file else IdentityConfig()
    )
    trust = load_trust(settings.trust_file) if settings.trust_file is not None else None
    engine = engine or make_engine(settings.effective_database_url)
    accounts: Path | None = settings.admin_accounts_file
    return Resources(
        settings=settings,
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        policy=policy,
        identity=identity,
        directory=make_directory(identity.directory),
        admin_accounts=LocalDirectory(accounts) if accounts else None,
        access_token_secret=load_or_create_secret(settings.data_dir / ACCESS_TOKEN_SECRET_FILE),
        codec=SessionCodec(
            load_session_secret(settings),
            max_age_seconds=settings.session_max_age_seconds,
            secure=settings.cookie_secure,
        ),
        throttle=SignInThrottle(
            engine,
            max_per_user=settings.signin_max_failures_per_user,
            max_per_ip=settings.signin_max_failures_per_ip,
            window_seconds=settings.signin_window_seconds,
        ),
        trust=trust,
    )


def load_trust(path: Path) -> TrustFile:
    """The trust file (PolicyError listing its problems), refused if a school's id is the
    prefix of the trust's own groups (`trust-DSL` would then mean two things)."""
    trust = load_trust_file(path)
    if TRUST_PREFIX in trust.schools:
        raise ValueError(
            f"{path}: a school may not have the id {TRUST_PREFIX!r}: the admin gives trust "
            f"roles through the groups '{TRUST_PREFIX}-<group>' (rename the school)"
        )
    return trust


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


def db_session(request: Request) -> Iterator[Session]:
    """A database session for one request; the service functions commit their own changes."""
    with get_resources(request).sessions() as session:
        yield session
