"""The annual filtering review's evidence pack (DfE filtering and monitoring standard 1), built on
demand for a chosen date: the policy in words, the governors' table, a live test of each rule
through the running gateway (each rule's sites, the circumvention categories, the locked lists,
SafeSearch if the policy has it) with pass or fail, how fresh each list is, the counts of blocks,
requests and decisions over the year to that date, and the sign-off fields.

The live test asks the gateway as an explicit proxy, with a test account per role, for plain
http://<site>/ and reads the answer: the block page (403) is "blocked". Only sites the policy
blocks are asked for, so the review never opens an outside site; what the policy allows is
shown as the policy's answer alone.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import yaml
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from schoolgate.admin_api.services.reports import day_bounds
from schoolgate.admin_api.words import category_words, role_words
from schoolgate.policy.decide import decide
from schoolgate.policy.lists import DomainList, parse_domain_list
from schoolgate.policy.model import NO_OVERRIDES, Policy, Request, Subject, Verdict
from schoolgate.policy.table import policy_table
from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from schoolgate.store.models import EventRow

STALE_AFTER_DAYS = 180  # a list not compiled for six months is flagged for the review
LIVE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Account:
    """A test account the gateway knows, used only for the live test of one role."""

    username: str
    password: str


@dataclass(frozen=True, slots=True)
class LiveGateway:
    """Where the running gateway listens as a proxy, and a test account per role."""

    proxy_url: str
    accounts: dict[str, Account] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One line of the live test: who, which site, what the policy says, what the gateway did."""

    about: str  # the rule or list, in words
    role: str
    host: str
    expected: Verdict  # the policy's answer now
    live: str  # "blocked", "allowed", "not tried: ..." or "could not ask: ..."
    passed: bool | None  # None: not tried live


@dataclass(frozen=True, slots=True)
class ListFreshness:
    category: str
    file: str
    compiled: date | None
    domains: int
    stale: bool


@dataclass(frozen=True, slots=True)
class Counts:
    first: date
    last: date
    blocked: int
    requests: int
    approved: int
    denied: int
    pending: int


@dataclass(frozen=True, slots=True)
class EvidencePack:
    day: date
    made_at: datetime
    policy_name: str
    rules_in_words: list[str]
    header: list[str]
    rows: list[list[str]]
    table_note: str
    checks: list[RuleCheck]
    lists: list[ListFreshness]
    counts: Counts
    safesearch: str
    gateway: str  # where the live test went, or why it did not run

    @property
    def passed(self) -> int:
        return sum(1 for c in self.checks if c.passed)

    @property
    def failed(self) -> int:
        return sum(1 for c in self.checks if c.passed is False)


def rules_in_words(policy: Policy) -> list[str]:
    """Each rule as one sentence, in file order, then the default."""
    lines: list[str] = []
    for rule in policy.rules:
        who = ", ".join(role_words(r) for r in sorted(rule.roles))
        what = ", ".join(category_words(c) for c in sorted(rule.categories))
        verb = "may use" if rule.verdict is Verdict.ALLOW else "may not use"
        when = "at any time" if rule.when.always else "at the times the rule names"
        text = f"{who.capitalize()} {verb} {what} {when}"
        lines.append(text + (f": {rule.description}" if rule.description else "."))
    locked = [category_words(c.name) for c in policy.categories.values() if c.locked]
    if locked:
        lines.append(f"Never allowed for anyone, whatever is approved: {', '.join(locked)}.")
    lines.append(
        f"Anything else is {'allowed' if policy.default is Verdict.ALLOW else 'blocked'}"
        f"; a person the filter cannot identify is treated as "
        f"{role_words(policy.default_role)}."
    )
    return lines


def safe_search_words(policy: Policy) -> str:
    """What the policy forces on searches and YouTube, per role, in one or two sentences."""
    roles = sorted(policy.roles)
    forced = [r for r in roles if policy.inspection.for_role(r).safe_search]
    if not forced:
        return (
            "The policy does not enforce SafeSearch: searches are not filtered by the "
            "search engines' own safe modes. Consider it at this review."
        )
    others = [role_words(r) for r in roles if r not in forced]
    text = (
        f"SafeSearch is forced for {', '.join(role_words(r) for r in forced)} (Google, "
        "Bing, DuckDuckGo and Yahoo; a search engine where it cannot be forced is "
        "blocked)" + (f", not for {', '.join(others)}" if others else "") + "."
    )
    youtube = [
        f"{role_words(r)} ({policy.inspection.for_role(r).youtube.value})"
        for r in roles
        if policy.inspection.for_role(r).youtube.value != "off"
    ]
    if youtube:
        text += f" YouTube Restricted Mode: {', '.join(youtube)}."
    return text + " This is the policy's setting; the live test does not search."


def load_lists(policy: Policy, folders: Sequence[Path]) -> dict[str, DomainList]:
    """The list files the policy names, parsed from the first folder that has each."""
    found: dict[str, DomainList] = {}
    for category in policy.categories.values():
        for name in category.lists:
            for folder in folders:
                path = folder / name
                if path.is_file():
                    parsed = parse_domain_list(path.read_text(encoding="utf-8"), source=str(path))
                    if isinstance(parsed, DomainList):
                        found[name] = parsed
                    break
    return found


def list_freshness(
    policy: Policy,
    lists: dict[str, DomainList],
    day: date,
) -> list[ListFreshness]:
    shown: list[ListFreshness] = []
    for category in policy.categories.values():
        for name in category.lists:
            parsed = lists.get(name)
            compiled = parsed.compiled if parsed else None
            shown.append(
                ListFreshness(
                    category=category_words(category.name),
                    file=name,
                    compiled=compiled,
                    domains=len(parsed.domains) if parsed else 0,
                    stale=compiled is None or (day - compiled).days > STALE_AFTER_DAYS,
                )
            )
    return shown


def inline_domains(policy_text: str) -> dict[str, tuple[str, ...]]:
    """The domains a policy file writes inline (`categories: {x: {domains: [...]}}`): the
    parsed policy keeps only their hashes, and the live test needs a name to ask for."""
    try:
        raw = yaml.safe_load(policy_text) or {}
        categories = dict(raw.get("categories") or {})
    except (yaml.YAMLError, AttributeError, TypeError, ValueError):
        return {}
    found: dict[str, tuple[str, ...]] = {}
    for name, body in categories.items():
        domains = body.get("domains") if isinstance(body, dict) else None
        if isinstance(domains, list):
            found[str(name)] = tuple(str(d) for d in domains if isinstance(d, str))
    return found


def _sample_host(
    policy: Policy, category: str, lists: dict[str, DomainList], inline: dict[str, tuple[str, ...]]
) -> str | None:
    if inline.get(category):
        return inline[category][0]
    for name in policy.categories[category].lists:
        parsed = lists.get(name)
        if parsed and parsed.domains:
            return parsed.domains[0]
    return None


def _specs(
    policy: Policy, lists: dict[str, DomainList], inline: dict[str, tuple[str, ...]]
) -> list[tuple[str, str, str]]:
    """(about, role, host): each rule's categories for its roles, each circumvention category
    and each locked list for every role, once each."""
    specs: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(about: str, role: str, category: str) -> None:
        host = _sample_host(policy, category, lists, inline)
        if host is not None and (role, host) not in seen:
            seen.add((role, host))
            specs.append((about, role, host))

    for rule in policy.rules:
        for role in sorted(rule.roles):
            for category in sorted(rule.categories):
                add(f"{category_words(category)} (rule {rule.name})", role, category)
    for listed in policy.categories.values():
        if listed.circumvention or listed.locked:
            kind = "locked list" if listed.locked else "way round the filter"
            for role in sorted(policy.roles):
                add(f"{kind}: {category_words(listed.name)}", role, listed.name)
    return specs


def ask_gateway(gateway: LiveGateway, account: Account | None, host: str) -> str:
    """'blocked' or 'allowed' as the gateway answers http://host/ for this account, or
    'could not ask: ...'."""
    headers = {}
    if account is not None:
        token = base64.b64encode(f"{account.username}:{account.password}".encode()).decode()
        headers["Proxy-Authorization"] = f"Basic {token}"
    try:
        with httpx.Client(
            proxy=gateway.proxy_url, trust_env=False, timeout=LIVE_TIMEOUT_SECONDS
        ) as client:
            answer = client.get(f"http://{host}/", headers=headers)
    except httpx.HTTPError as error:
        return f"could not ask: {type(error).__name__}"
    if answer.status_code == 407:
        return "could not ask: the gateway refused the test account"
    blocked = answer.status_code == 403 and "blocked" in answer.text.lower()
    return "blocked" if blocked else "allowed"


def live_checks(
    policy: Policy,
    lists: dict[str, DomainList],
    gateway: LiveGateway | None,
    now: datetime,
    inline: dict[str, tuple[str, ...]] | None = None,
) -> list[RuleCheck]:
    checks: list[RuleCheck] = []
    for about, role, host in _specs(policy, lists, inline or {}):
        expected = decide(policy, Request(host), Subject(role, None), NO_OVERRIDES, now).verdict
        if expected is Verdict.ALLOW:
            live, passed = "not tried: the policy allows it now (the review opens no site)", None
        elif gateway is None:
            live, passed = "not tried: no gateway set for the live test", None
        elif role not in gateway.accounts and role != policy.default_role:
            live, passed = f"not tried: no test account for {role}", None
        else:
            live = ask_gateway(gateway, gateway.accounts.get(role), host)
            passed = (live == "blocked") if not live.startswith("could not") else False
        checks.append(RuleCheck(about, role, host, expected, live, passed))
    return checks


def counts(session: Session, *, day: date, zone: ZoneInfo) -> Counts:
    """Blocks, requests and decisions in the year up to and including `day`."""
    first = day - timedelta(days=364)
    start, end = day_bounds(first, day, zone)

    def requests(*where: ColumnElement[bool]) -> int:
        return (
            session.scalar(select(func.count()).select_from(UnblockRequestRow).where(*where)) or 0
        )

    made = (UnblockRequestRow.created_at >= start, UnblockRequestRow.created_at < end)
    decided = (UnblockRequestRow.reviewed_at >= start, UnblockRequestRow.reviewed_at < end)
    return Counts(
        first=first,
        last=day,
        blocked=session.scalar(
            select(func.count())
            .select_from(EventRow)
            .where(EventRow.at >= start, EventRow.at < end, EventRow.verdict == Verdict.BLOCK)
        )
        or 0,
        requests=requests(*made),
        approved=requests(*decided, UnblockRequestRow.state == RequestState.APPROVED),
        denied=requests(*decided, UnblockRequestRow.state == RequestState.DENIED),
        pending=requests(*made, UnblockRequestRow.state == RequestState.PENDING),
    )


def build_pack(
    session: Session,
    *,
    policy: Policy,
    day: date,
    now: datetime,
    list_folders: Sequence[Path],
    gateway: LiveGateway | None,
    policy_text: str = "",
) -> EvidencePack:
    """The whole pack for `day` (the live test runs `now`)."""
    lists = load_lists(policy, list_folders)
    header, table, note = policy_table(policy, day)
    header = ["Who", "Kind of website", *header[2:]]
    verdicts = {"BLOCK": "blocked", "allow": "allowed"}
    rows = [
        [
            role_words(row[0]),
            category_words(row[1]) if row[1] != "(uncategorised)" else "any other site",
            *(verdicts.get(cell, cell) for cell in row[2:]),
        ]
        for row in table
    ]
    safesearch = safe_search_words(policy)
    return EvidencePack(
        day=day,
        made_at=now,
        policy_name=policy.name,
        rules_in_words=rules_in_words(policy),
        header=header,
        rows=rows,
        table_note=note,
        checks=live_checks(policy, lists, gateway, now, inline_domains(policy_text)),
        lists=list_freshness(policy, lists, day),
        counts=counts(session, day=day, zone=policy.calendar.timezone),
        safesearch=safesearch,
        gateway=(
            f"Asked the gateway at {gateway.proxy_url}"
            if gateway
            else "No gateway was set for the live test (SCHOOLGATE_REVIEW_PROXY), so only the "
            "policy's answers are shown"
        ),
    )
