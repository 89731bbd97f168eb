"""`schoolgate lists update`: fetch each list's sources (URLs or local files) named in lists.yaml
beside the policy, verify what came (size bounds, checksum, parse errors, entry counts, and the
whole policy still loading with it), and write each list file atomically beside the policy.

A list whose source fails keeps its last good file, and the state file (`lists-state.json`)
says so. The gateway notices the changed files and reloads on its own (no restart). Lists too
old or failing raise an alert for IT.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from schoolgate.policy.errors import PolicyError
from schoolgate.policy.listformats import (
    ListEntry,
    ListFile,
    ListFormat,
    ParsedList,
    compact,
    format_list_file,
    parse_list,
    parse_ut1_domains,
    parse_ut1_urls,
    summarise,
)
from schoolgate.policy.parse import list_files_named, parse_policy
from schoolgate.store.alerts import raise_alert
from schoolgate.store.list_status import (
    CONFIG_FILE,
    STATE_FILE,
    ListsReport,
    ListStatusReader,
)
from schoolgate.store.models import AlertRow, AlertSeverity, AlertState
from schoolgate.store.policy_files import find_list

MAX_BYTES_LIMIT = 2_000_000_000
_SHA256 = re.compile(r"[0-9a-f]{64}")
_LIST_NAME = re.compile(r"[a-z][a-z0-9_-]*\.txt")
_CATEGORY = re.compile(r"[a-z][a-z0-9_]*")


class AlertKinds:
    LIST_STALE = "list_stale"  # a list older than max_age_hours
    LIST_UPDATE_FAILED = "list_update_failed"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    """One source in lists.yaml: where a list's entries come from and how to check them."""

    name: str = Field(min_length=1, max_length=80)
    category: str
    list: str | None = None  # the list file written (default: <category>.txt)
    description: str | None = None
    url: str | None = None
    path: Path | None = None
    format: ListFormat
    sha256: str | None = None  # pinned checksum of the file
    sha256_url: str | None = None  # a checksum file published beside it ('HEX  name')
    max_bytes: int = Field(default=200_000_000, ge=1, le=MAX_BYTES_LIMIT)
    min_entries: int = Field(default=1, ge=0)
    max_entries: int = Field(default=20_000_000, ge=1)
    max_problem_ratio: float = Field(default=0.01, ge=0, le=1)  # of the lines read

    @model_validator(mode="after")
    def _check(self) -> SourceSpec:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of 'url' (http:// or https://) or 'path'")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} is not an http:// or https:// URL")
        if self.sha256_url is not None and not self.sha256_url.startswith(("http://", "https://")):
            raise ValueError(f"sha256_url {self.sha256_url!r} is not an http(s):// URL")
        if self.sha256 is not None and not _SHA256.fullmatch(self.sha256):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        if not _CATEGORY.fullmatch(self.category):
            raise ValueError(
                f"category {self.category!r}: use lowercase letters, digits and "
                "'_', starting with a letter"
            )
        if self.list is not None and not _LIST_NAME.fullmatch(self.list):
            raise ValueError(
                f"list {self.list!r}: a file name like 'adult.txt' (lowercase, no folders)"
            )
        if self.min_entries > self.max_entries:
            raise ValueError("min_entries is larger than max_entries")
        return self

    @property
    def list_name(self) -> str:
        return self.list or f"{self.category}.txt"


class ListsConfig(_Strict):
    max_age_hours: float = Field(default=168, gt=0)
    timeout_seconds: float = Field(default=60, gt=0, le=3600)
    sources: tuple[SourceSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ListsConfig:
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique: {', '.join(dup)}")
        owner: dict[str, str] = {}
        for s in self.sources:
            if owner.setdefault(s.list_name, s.category) != s.category:
                raise ValueError(
                    f"list {s.list_name} is fed for two categories "
                    f"({owner[s.list_name]}, {s.category}): use one"
                )
        return self


class ListsConfigError(ValueError):
    """lists.yaml is missing or wrong; the message lists every problem with its place."""


def load_config(path: Path) -> ListsConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ListsConfigError(
            f"{path}: the file does not exist (see docs/list-updates.md for an example)"
        ) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ListsConfigError(f"{path}: cannot read it: {exc}") from None
    try:
        return ListsConfig.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ListsConfigError("\n".join(lines)) from None


# --- fetching and verifying one source ---------------------------------------------------------


class SourceFailed(Exception):
    """One source could not be used; the message says why and what to check."""


Fetch = Callable[[str, int, float], bytes]


def http_fetch(url: str, max_bytes: int, timeout: float) -> bytes:
    """GET `url`, refusing more than `max_bytes` (read in pieces, never all at once)."""
    try:
        with httpx.stream(
            "GET", url, timeout=timeout, follow_redirects=True, trust_env=False
        ) as response:
            if response.status_code != 200:
                raise SourceFailed(f"{url} answered HTTP {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise SourceFailed(
                        f"{url} sent more than max_bytes ({max_bytes}): raise "
                        "max_bytes if the list really grew"
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise SourceFailed(f"cannot fetch {url}: {exc}") from None


def _read_local(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceFailed(f"{path} is {size} bytes, over max_bytes ({max_bytes})")
        return path.read_bytes()
    except OSError as exc:
        raise SourceFailed(f"cannot read {path}: {exc}") from None


def _expected_sha256(spec: SourceSpec, fetch: Fetch, timeout: float) -> str | None:
    if spec.sha256 is not None:
        return spec.sha256
    if spec.sha256_url is None:
        return None
    text = fetch(spec.sha256_url, 1_000_000, timeout).decode("ascii", "replace")
    rows = [line.split() for line in text.splitlines() if line.strip()]
    # 'sha256sum' output may list several files ('HEX  name' or 'HEX *name'): take ours
    wanted = (spec.url or "").rsplit("/", 1)[-1]
    named = [r[0] for r in rows if len(r) >= 2 and r[-1].lstrip("*").rsplit("/", 1)[-1] == wanted]
    digest = (named[0] if named else rows[0][0] if rows else "").lower()
    if not _SHA256.fullmatch(digest):
        raise SourceFailed(
            f"{spec.sha256_url} does not start with a SHA-256 checksum (or "
            f"has none for {wanted or 'the file'})"
        )
    return digest


@dataclass(frozen=True, slots=True)
class SourceResult:
    name: str
    origin: str  # the URL or path
    sha256: str
    size: int
    parsed: ParsedList
    checked: bool  # a checksum was compared


def read_source(
    spec: SourceSpec, base: Path, *, fetch: Fetch = http_fetch, timeout: float = 60
) -> SourceResult:
    """Fetch or read one source, verify it, and parse it. Raises SourceFailed."""
    if spec.url is not None:
        origin, data = spec.url, fetch(spec.url, spec.max_bytes, timeout)
    else:
        local = (
            spec.path
            if spec.path is not None and spec.path.is_absolute()
            else base / (spec.path or Path())
        )
        origin = str(local)
        if local.is_dir():
            return _read_ut1_dir(spec, local)
        data = _read_local(local, spec.max_bytes)
    digest = hashlib.sha256(data).hexdigest()
    expected = _expected_sha256(spec, fetch, timeout)
    if expected is not None and digest != expected:
        raise SourceFailed(
            f"{origin}: checksum mismatch (got sha256 {digest[:16]}..., "
            f"expected {expected[:16]}...): the file was changed or cut short"
        )
    if origin.endswith((".tar.gz", ".tgz")):
        parsed = _parse_ut1_tarball(data, spec, origin)
    else:
        if origin.endswith(".gz"):
            data = _gunzip(data, spec.max_bytes, origin)
        parsed = parse_list(spec.format, data.decode("utf-8", "replace"), source=spec.name)
    _check_counts(spec, parsed, origin)
    return SourceResult(spec.name, origin, digest, len(data), parsed, expected is not None)


def _gunzip(data: bytes, max_bytes: int, origin: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            out = handle.read(max_bytes + 1)
    except (OSError, EOFError) as exc:
        raise SourceFailed(f"{origin}: not a readable gzip file ({exc})") from None
    if len(out) > max_bytes:
        raise SourceFailed(f"{origin}: unpacks to more than max_bytes ({max_bytes})")
    return out


def _parse_ut1_tarball(data: bytes, spec: SourceSpec, origin: str) -> ParsedList:
    """A UT1 category archive ('adult.tar.gz' holding 'adult/domains', 'adult/urls')."""
    texts: dict[str, str] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive:
                base = member.name.rsplit("/", 1)[-1]
                if not member.isfile() or base not in ("domains", "urls"):
                    continue
                total += member.size
                if total > spec.max_bytes:
                    raise SourceFailed(
                        f"{origin}: unpacks to more than max_bytes ({spec.max_bytes})"
                    )
                handle = archive.extractfile(member)
                if handle is not None:
                    texts[base] = texts.get(base, "") + handle.read().decode("utf-8", "replace")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SourceFailed(f"{origin}: not a readable .tar.gz ({exc})") from None
    if "domains" not in texts:
        raise SourceFailed(
            f"{origin}: the archive has no 'domains' file (is it a UT1 category archive?)"
        )
    return _merge(
        parse_ut1_domains(texts["domains"], source=f"{spec.name}/domains"),
        parse_ut1_urls(texts.get("urls", ""), source=f"{spec.name}/urls"),
    )


def _read_ut1_dir(spec: SourceSpec, folder: Path) -> SourceResult:
    """A squidGuard / UT1 category directory: `domains` (and `urls`, if present)."""
    domains = folder / "domains"
    if not domains.is_file():
        raise SourceFailed(f"{folder} has no 'domains' file (is it a UT1 category folder?)")
    data = _read_local(domains, spec.max_bytes)
    urls = folder / "urls"
    urls_data = _read_local(urls, spec.max_bytes) if urls.is_file() else b""
    parsed = _merge(
        parse_ut1_domains(data.decode("utf-8", "replace"), source=f"{spec.name}/domains"),
        parse_ut1_urls(urls_data.decode("utf-8", "replace"), source=f"{spec.name}/urls"),
    )
    _check_counts(spec, parsed, str(folder))
    return SourceResult(
        spec.name,
        str(folder),
        hashlib.sha256(data + urls_data).hexdigest(),
        len(data) + len(urls_data),
        parsed,
        False,
    )


def _merge(a: ParsedList, b: ParsedList) -> ParsedList:
    hosts = dict.fromkeys(a.hosts)
    hosts.update(dict.fromkeys(b.hosts))
    return ParsedList(
        tuple(hosts),
        a.skipped + b.skipped,
        a.notes + b.notes,
        a.problems + b.problems,
        a.problem_count + b.problem_count,
    )


def _check_counts(spec: SourceSpec, parsed: ParsedList, origin: str) -> None:
    count = len(parsed.hosts)
    if count < spec.min_entries:
        raise SourceFailed(
            f"{origin}: {count} entries, fewer than min_entries "
            f"({spec.min_entries}): an empty or cut-short download?"
        )
    if count > spec.max_entries:
        raise SourceFailed(f"{origin}: {count} entries, more than max_entries ({spec.max_entries})")
    read = count + sum(n for _, n in parsed.skipped) + parsed.problem_count
    if parsed.problem_count > max(5, spec.max_problem_ratio * read):
        first = parsed.problems[0] if parsed.problems else None
        detail = f" (first: {first.where}: {first.message})" if first else ""
        raise SourceFailed(
            f"{origin}: {parsed.problem_count} of {read} lines are not valid "
            f"{spec.format} entries{detail}: wrong format or wrong file?"
        )


# --- the update --------------------------------------------------------------------------------


@dataclass(slots=True)
class ListOutcome:
    list_name: str
    category: str
    written: bool
    entries: int
    messages: list[str] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True, slots=True)
class UpdateReport:
    outcomes: tuple[ListOutcome, ...]
    policy_error: str = ""

    @property
    def ok(self) -> bool:
        return not self.policy_error and all(not o.error for o in self.outcomes)


def update_lists(
    config_path: Path, *, now: datetime, policy_path: Path | None = None, fetch: Fetch = http_fetch
) -> UpdateReport:
    """Refresh every list named in `config_path`; write the good ones beside it atomically.

    If `policy_path` is given, the policy must still load with the new lists, or nothing is
    written. Raises ListsConfigError for a bad lists.yaml."""
    config = load_config(config_path)
    out_dir = config_path.parent
    by_list: dict[str, list[SourceSpec]] = {}
    for spec in config.sources:
        by_list.setdefault(spec.list_name, []).append(spec)
    state = _load_state(out_dir)
    outcomes: list[ListOutcome] = []
    texts: dict[str, str] = {}
    for list_name, specs in by_list.items():
        outcome = ListOutcome(list_name, specs[0].category, False, 0)
        outcomes.append(outcome)
        results: list[SourceResult] = []
        for spec in specs:
            try:
                results.append(
                    read_source(spec, out_dir, fetch=fetch, timeout=config.timeout_seconds)
                )
            except SourceFailed as exc:
                outcome.error = f"source {spec.name}: {exc}"
                break
        if outcome.error:
            continue
        entries = compact(ListEntry(h) for r in results for h in r.parsed.hosts)
        stamp = now.strftime("%Y-%m-%d %H:%M UTC")
        sources = tuple(
            f"{r.name}: {r.origin} (fetched {stamp}, sha256 {r.sha256[:16]}, "
            f"{'checksum verified' if r.checked else 'no checksum offered'})"
            for r in results
        )
        description = (
            specs[0].description or f"{specs[0].category}: fetched by 'schoolgate lists update'"
        )
        texts[list_name] = format_list_file(
            ListFile(specs[0].category, description, now.date(), sources, entries)
        )
        outcome.entries = len(entries)
        for r in results:
            outcome.messages.append(f"{r.name}: {len(r.parsed.hosts)} names from {r.origin}")
            outcome.messages.extend(f"  {line}" for line in _summary(r.parsed))
    policy_error = ""
    if policy_path is not None and texts:
        policy_error = _check_policy(policy_path, texts)
    for outcome in outcomes:
        entry = state.setdefault(outcome.list_name, {})
        entry["category"] = outcome.category
        entry["last_attempt"] = now.isoformat()
        text = texts.get(outcome.list_name)
        if policy_error or text is None:
            entry["last_error"] = (
                outcome.error or f"the policy refused the new lists: {policy_error}"
            )
            if not outcome.error:
                outcome.error = entry["last_error"]
            continue
        write_atomic(out_dir / outcome.list_name, text.encode("utf-8"))
        outcome.written = True
        entry.update(
            {
                "updated_at": now.isoformat(),
                "entries": outcome.entries,
                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "last_error": "",
            }
        )
    write_atomic(
        out_dir / STATE_FILE, json.dumps({"lists": state}, indent=2, sort_keys=True).encode("utf-8")
    )
    return UpdateReport(tuple(outcomes), policy_error)


def _summary(parsed: ParsedList) -> list[str]:
    lines = summarise(parsed)
    return lines[:12] + ([f"... {len(lines) - 12} more lines"] if len(lines) > 12 else [])


def _check_policy(policy_path: Path, new: Mapping[str, str]) -> str:
    """'' if the policy loads with the new list texts in place of the files, else why not."""
    try:
        text = policy_path.read_text(encoding="utf-8")
    except OSError as exc:
        return f"cannot read the policy {policy_path}: {exc}"
    lists: dict[str, str] = {}
    for name in list_files_named(text):
        if name in new:
            lists[name] = new[name]
            continue
        found = find_list(name, policy_path.parent)
        if found is not None:
            try:
                lists[name] = found.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                return f"list file {found}: cannot read it: {exc}"
    try:
        parse_policy(text, source=str(policy_path), lists=lists)
    except PolicyError as exc:
        return str(exc)
    return ""


def _load_state(out_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((out_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    lists = data.get("lists") if isinstance(data, dict) else None
    return (
        {k: v for k, v in lists.items() if isinstance(v, dict)} if isinstance(lists, dict) else {}
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Write beside `path`, flush to disk, then rename over it: readers see old or new."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- alerts for IT -------------------------------------------------------------------------------


def raise_list_alerts(
    *, session: Session, report: ListsReport, failures: Sequence[ListOutcome], at: datetime
) -> int:
    """Raise one open alert per stale list and per failed update, unless one is already open for
    that list and kind. Returns how many were raised."""
    open_rows = session.scalars(
        select(AlertRow).where(
            AlertRow.state == AlertState.OPEN,
            AlertRow.kind.in_((AlertKinds.LIST_STALE, AlertKinds.LIST_UPDATE_FAILED)),
        )
    ).all()
    already = {(row.kind, str((row.details or {}).get("list"))) for row in open_rows}
    raised = 0
    for status in report.stale:
        if (AlertKinds.LIST_STALE, status.name) in already:
            continue
        days = (status.age_seconds or 0) / 86400
        raise_alert(
            session=session,
            severity=AlertSeverity.MEDIUM,
            kind=AlertKinds.LIST_STALE,
            summary=f"The list {status.name} is {days:.1f} days old (allowed: "
            f"{report.max_age / timedelta(days=1):.1f}). Check that "
            "'schoolgate lists update' runs and can reach its sources.",
            at=at,
            details={
                "list": status.name,
                "categories": list(status.categories),
                "last_error": status.last_error,
            },
        )
        raised += 1
    for outcome in failures:
        if (AlertKinds.LIST_UPDATE_FAILED, outcome.list_name) in already:
            continue
        raise_alert(
            session=session,
            severity=AlertSeverity.LOW,
            kind=AlertKinds.LIST_UPDATE_FAILED,
            summary=f"Updating {outcome.list_name} failed; the last good list stays in "
            f"use. {outcome.error[:300]}",
            at=at,
            details={"list": outcome.list_name, "error": outcome.error[:2000]},
        )
        raised += 1
    return raised


def status_after_update(policy_path: Path | None, *, now: datetime) -> ListsReport:
    return ListStatusReader().read(policy_path, now=now)


__all__ = [
    "CONFIG_FILE",
    "AlertKinds",
    "ListsConfig",
    "ListsConfigError",
    "SourceFailed",
    "SourceSpec",
    "UpdateReport",
    "load_config",
    "raise_list_alerts",
    "read_source",
    "update_lists",
]
