"""The admin's settings, from SCHOOLGATE_* environment variables (pydantic-settings), checked at
start-up: secrets are SecretStr, and placeholder secrets are refused outside development.
Routes get them through the cached `get_settings` dependency, which tests override.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from schoolgate.admin_api.roles import Role
from schoolgate.store.db import default_database_url
from schoolgate.store.directory import verify_password

SESSION_SECRET_FILE = "admin-session-secret"  # noqa: S105 - a file name
# The gateway's secret file: it signs the block page's links.
ACCESS_TOKEN_SECRET_FILE = "secret"  # noqa: S105 - a file name
PLACEHOLDERS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "placeholder",
        "xxx",
        "todo",
        "replace-me",
        "replaceme",
        "default",
    }
)
MIN_SECRET_LENGTH = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"  # the demo: secrets may be generated and kept in the data dir
    PRODUCTION = "production"


DEFAULT_ADMIN_GROUPS: dict[str, Role] = {
    "BusinessManagers": Role.BUSINESS_MANAGER,
    "DSL": Role.DSL,
    "DSLDeputies": Role.DSL,
    "ITTechnicians": Role.IT_TECHNICIAN,
}


def is_placeholder(secret: str) -> bool:
    text = secret.strip()
    return (
        text.lower() in PLACEHOLDERS
        or len(text) < MIN_SECRET_LENGTH
        or len(set(text)) < 8  # "aaaa…" is long but guessable: not random characters
        or text.lower().startswith(("change", "your-", "<"))
    )


SEED_TIMEZONE = "Europe/London"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCHOOLGATE_", extra="ignore", frozen=True)

    environment: Environment = Environment.PRODUCTION
    data_dir: Path = Path("var/schoolgate")
    database_url: str | None = None  # None: the SQLite file in the data directory
    identity_file: Path | None = None  # the directory to sign in with (identity.yaml)
    policy_file: Path | None = None  # None: the seed policy
    # Many schools (docs/trust.md): the gateway's trust file; each person then sees and acts
    # on their own school's rows only (a trust role: every school's). None: one school.
    trust_file: Path | None = None
    gateway_url: str = "http://127.0.0.1:8080"
    school_name: str = "Our school"
    # Times are shown in this zone (stored in UTC). None: the policy calendar's zone, which
    # make_resources fills in; a zone given here that differs from the policy's is refused.
    school_timezone: str | None = None

    session_secret: SecretStr | None = None  # signs session cookies; or session_secret_file
    session_secret_file: Path | None = None
    session_max_age_seconds: Annotated[int, Field(ge=300, le=7 * 86400)] = 8 * 3600
    cookie_secure: bool = True  # False only for the http:// demo on loopback

    admin_accounts_file: Path | None = None  # small schools: a users file of admin accounts
    admin_groups: dict[str, Role] = Field(default_factory=lambda: dict(DEFAULT_ADMIN_GROUPS))
    breakglass_username: str | None = None
    breakglass_password_hash: SecretStr | None = None  # made with store.directory.hash_password
    breakglass_roles: tuple[Role, ...] = (Role.IT_TECHNICIAN, Role.BUSINESS_MANAGER)

    signin_max_failures_per_user: Annotated[int, Field(ge=1, le=1000)] = 5
    signin_max_failures_per_ip: Annotated[int, Field(ge=1, le=10000)] = 30
    signin_window_seconds: Annotated[int, Field(ge=10, le=86400)] = 900
    # Reverse proxies in front of the admin whose X-Forwarded-For is believed (docs/identity.md).
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    role_refresh_seconds: Annotated[int, Field(ge=0, le=3600)] = 300  # roles re-read (0: always)
    access_link_max_age_seconds: Annotated[int, Field(ge=60, le=30 * 86400)] = 7 * 86400
    # The block page's link lets its own person send that one request without signing in
    # again, for this long after the page was shown (docs/admin.md); False: always sign in.
    block_link_sign_in: bool = True
    block_link_sign_in_seconds: Annotated[int, Field(ge=60, le=3600)] = 900

    @field_validator("school_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name (e.g. Europe/London)") from None
        return value

    @field_validator("admin_groups")
    @classmethod
    def _admin_groups(cls, value: dict[str, Role]) -> dict[str, Role]:
        bad = [group for group, role in value.items() if role in (Role.PUPIL, Role.STAFF)]
        if bad:
            raise ValueError(
                f"groups {bad} map to pupil/staff: admin_groups maps directory "
                "groups to business_manager, dsl or it_technician only"
            )
        return value

    @model_validator(mode="after")
    def _secrets(self) -> Settings:
        development = self.environment is Environment.DEVELOPMENT
        secret = self.session_secret.get_secret_value() if self.session_secret is not None else None
        if secret is not None and is_placeholder(secret) and not development:
            raise ValueError(
                "SCHOOLGATE_SESSION_SECRET is empty, too short or a placeholder: "
                f"set it to at least {MIN_SECRET_LENGTH} random characters (e.g. "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        if secret is None and self.session_secret_file is None and not development:
            raise ValueError(
                "no session secret: set SCHOOLGATE_SESSION_SECRET or "
                "SCHOOLGATE_SESSION_SECRET_FILE (only SCHOOLGATE_ENVIRONMENT="
                "development may generate one in the data directory)"
            )
        if (self.breakglass_username is None) != (self.breakglass_password_hash is None):
            raise ValueError(
                "the break-glass administrator needs both "
                "SCHOOLGATE_BREAKGLASS_USERNAME and "
                "SCHOOLGATE_BREAKGLASS_PASSWORD_HASH (or neither)"
            )
        if self.breakglass_password_hash is not None:
            try:
                verify_password("", self.breakglass_password_hash.get_secret_value())
            except ValueError as error:
                raise ValueError(f"SCHOOLGATE_BREAKGLASS_PASSWORD_HASH: {error}") from None
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or default_database_url(self.data_dir)

    @property
    def embedded_database(self) -> bool:
        """The default SQLite file in the data directory (migrated automatically)."""
        return self.database_url is None

    @property
    def zone(self) -> ZoneInfo:
        """The school's zone (before make_resources has read the policy: the seed's)."""
        return ZoneInfo(self.school_timezone or SEED_TIMEZONE)

    def with_policy_zone(self, policy_zone: str) -> Settings:
        """These settings with the school's zone taken from the policy's calendar when it was
        not given; ValueError (in words) when it was given and differs: the gateway decides
        lesson times in the policy's zone, so the admin must show times in the same one."""
        if self.school_timezone is None:
            return self.model_copy(update={"school_timezone": policy_zone})
        if self.school_timezone != policy_zone:
            raise ValueError(
                f"SCHOOLGATE_SCHOOL_TIMEZONE is {self.school_timezone} but the policy's calendar "
                f"is in {policy_zone}: the admin would show times an hour or more away from the "
                "gateway's. Remove SCHOOLGATE_SCHOOL_TIMEZONE (the admin then uses the policy's "
                f"zone) or set it to {policy_zone}"
            )
        return self


def settings_problems(error: ValidationError) -> list[str]:
    """Each problem of settings that could not be read, as "where: what" in words."""
    return [
        f"{'.'.join(str(p) for p in item['loc']) or 'settings'}: "
        f"{item['msg'].removeprefix('Value error, ')}"
        for item in error.errors()
    ]


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment, read once (a FastAPI dependency; tests override)."""
    return Settings()
