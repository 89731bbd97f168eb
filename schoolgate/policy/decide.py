"""decide(policy, request, subject, overrides, at) -> Decision: the one place a verdict is made.

Precedence, first match wins (the CHECKS tuple below, in this order):

1. locked     - a locked category: no exception, admin or approver can ever unblock it;
2. internal   - an internal destination (loopback, private, link-local, cloud metadata, a
                local or single-label name) not on the policy's `internal.allow` list for the
                role and port: Reason.INTERNAL_ADDRESS;
3. sanction   - a supervised-only user is blocked everywhere except the supervised allowlist,
                unless a supervised session is open;
4. exception  - an approved, unexpired exception (user/group/role/everyone x host/category),
                or a local allow-list entry; never for a category not unblockable for the role,
                nor when it is broader than a local block of the site, nor when the block is
                on another list (the trust's or a school's: between two lists a block always
                wins, so neither can open what the other blocks);
5. local_block     - the school's local block list (the admin's "block this site");
6. ip_literal      - a public IP address instead of a name (circumvention);
7. rewriting_proxy - a page-rewriting proxy (translate.goog) showing a blocked site;
8. rules           - the policy's rules for the role, in file order;
9. default         - the policy's default verdict.

A page-rewriting proxy host (www-instagram-com.translate.goog) carries the categories of the
site it shows: locked and not-unblockable categories of that inner site are judged before any
exception, and an exception or local allow of the proxy host opens only inner sites that
would be allowed anyway.

A host that cannot be understood is blocked (Reason.INVALID_HOST) before any check: fail closed.
For a block that time will lift, `opens_at` says when access next opens for this subject.
`holds_until(...)` says until when an answer holds: the same inputs give the same decision at
every instant from `at` up to (not including) it, so a caller may reuse it that long.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NamedTuple

from schoolgate.policy.addresses import InternalKind, host_kind
from schoolgate.policy.hostnames import (
    HostError,
    is_subdomain_or_same,
    normalise_host,
    unwrap_rewriting_proxy,
)
from schoolgate.policy.model import (
    NO_OVERRIDES,
    ApprovedException,
    Decision,
    LocalListEntry,
    Overrides,
    Policy,
    Reason,
    Request,
    Rule,
    Sanction,
    Scope,
    Subject,
    SupervisedSession,
    TargetKind,
    Verdict,
)
from schoolgate.policy.techniques import Technique

# How far ahead opens_at looks, in calendar changes (each is a break, lesson, day boundary...).
_OPENS_AT_STEPS = 64


# Host spellings remembered per policy (a pure memo: same input, same facts); bounded.
_MEMO_LIMIT = 65_536
_WINDOW_HORIZON = timedelta(days=400)


class _HostFacts(NamedTuple):
    """What a host spelling means under one policy: worked out once, then remembered."""

    name: str
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    categories: tuple[str, ...]  # most specific first
    proxied: str | None  # the host a page-rewriting proxy shows, if it is one
    internal: InternalKind | None  # why the host is internal by its name or address, if it is
    # Decisions that depend only on the host and a rule (or the default), made once: keyed by
    # the rule's name ("" for the default). opens_at is added per call, with _replace.
    decisions: dict[str, Decision]


class _Context(NamedTuple):
    policy: Policy
    host: _HostFacts
    subject: Subject
    overrides: Overrides
    at: datetime
    stamp: float  # at as a POSIX timestamp: compared without time-zone arithmetic
    port: int | None = None  # the destination port, when the request names one

    @property
    def categories(self) -> tuple[str, ...]:
        return self.host.categories


Check = Callable[[_Context], Decision | None]


def decide(
    policy: Policy, request: Request, subject: Subject, overrides: Overrides | None, at: datetime
) -> Decision:
    """The verdict for `subject` asking for `request` at the aware instant `at`.

    `overrides` None means none (no exceptions, sanctions or local lists)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(
            "decide() needs an aware datetime for 'at' (for example "
            "datetime.now(UTC)); a naive one has no place in time"
        )
    if subject.role not in policy.roles:
        # An unknown role gets the most restrictive one: fail closed.
        subject = replace(subject, role=policy.default_role)
    facts = host_facts(policy, request.host)
    if isinstance(facts, HostError):
        return Decision(Verdict.BLOCK, Reason.INVALID_HOST, rule=facts.message)
    ctx = _Context(
        policy, facts, subject, overrides or NO_OVERRIDES, at, at.timestamp(), request.port
    )
    decision = _first(ctx)
    if decision.verdict is Verdict.BLOCK and decision.reason in _TIME_BOUND_REASONS:
        opens = _opens_at(ctx)
        if opens is not None:
            decision = decision._replace(opens_at=opens)
    return decision


def holds_until(
    policy: Policy, request: Request, subject: Subject, overrides: Overrides | None, at: datetime
) -> datetime:
    """The first instant after `at` at which decide(policy, request, subject, overrides, t)
    may answer differently from decide(..., at): the next change of the school calendar for
    any timed rule of the subject's role that names one of the host's categories, and the next
    start or end of any exception, sanction or supervised session. `at` itself (nothing may be
    reused) for a page-rewriting proxy, whose answer also depends on the site it shows."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("holds_until() needs an aware datetime for 'at'")
    if subject.role not in policy.roles:
        subject = replace(subject, role=policy.default_role)
    facts = host_facts(policy, request.host)
    if isinstance(facts, HostError):
        return at + _WINDOW_HORIZON  # an unreadable host is blocked whatever the time
    if facts.proxied is not None:
        return at
    stamp = at.timestamp()
    until = _next_override_instant(overrides or NO_OVERRIDES, stamp)
    ctx = _Context(policy, facts, subject, overrides or NO_OVERRIDES, at, stamp, request.port)
    for rule in policy.rules_by_role[subject.role]:
        if rule.when.always or _rule_category(rule, ctx) is None:
            continue
        window_open(policy, rule, at, stamp)  # leaves [since, next change) in the memo
        until = min(until, policy.window_memo[rule.name][1])
    return datetime.fromtimestamp(until, at.tzinfo)


# Overrides snapshot -> the sorted instants (POSIX) at which any of its grants starts or ends.
# Keyed by id() with the snapshot kept alive beside it, so an id is never reused while cached.
_INSTANTS: dict[int, tuple[Overrides, tuple[float, ...]]] = {}
_INSTANTS_LIMIT = 64


def _next_override_instant(overrides: Overrides, stamp: float) -> float:
    """The first start or end of an exception, sanction or supervised session after `stamp`
    (the horizon when there is none)."""
    known = _INSTANTS.get(id(overrides))
    if known is None or known[0] is not overrides:
        grants: tuple[ApprovedException | Sanction | SupervisedSession, ...] = (
            *overrides.exceptions,
            *overrides.sanctions,
            *overrides.supervised_sessions,
        )
        found = {g.starts.timestamp() for g in grants}
        found |= {g.ends.timestamp() for g in grants if g.ends is not None}
        if len(_INSTANTS) >= _INSTANTS_LIMIT:
            _INSTANTS.clear()
        known = _INSTANTS[id(overrides)] = (overrides, tuple(sorted(found)))
    instants = known[1]
    index = bisect_right(instants, stamp)
    if index < len(instants):
        return instants[index]
    return stamp + _WINDOW_HORIZON.total_seconds()


def host_facts(policy: Policy, raw: str) -> _HostFacts | HostError:
    """Normalise `raw` and look up its categories under `policy`, remembering the answer."""
    memo = policy.memo
    facts = memo.get(raw)
    if facts is None:
        host = normalise_host(raw)
        if isinstance(host, HostError):
            facts = host
        else:
            proxied = None if host.ip else unwrap_rewriting_proxy(host.name)
            facts = _HostFacts(
                host.name,
                host.ip,
                policy.domains.categories(host.name),
                proxied,
                host_kind(host.name, host.ip),
                {},
            )
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[raw] = facts
    assert isinstance(facts, _HostFacts | HostError)
    return facts


def unblockable(policy: Policy, host: str, role: str) -> bool:
    """Whether an exception could ever open `host` for `role`: not when any of its categories
    is locked or marked not unblockable for the role, nor when it is a page-rewriting proxy
    of a site for which that is so (nor when the host cannot be read)."""
    facts = host_facts(policy, host)
    if isinstance(facts, HostError):
        return False
    for name in judged_categories(policy, facts):
        category = policy.categories[name]
        if category.locked or role in category.not_unblockable_for:
            return False
    return True


def judged_categories(policy: Policy, facts: _HostFacts) -> tuple[str, ...]:
    """The categories a host is judged by: its own, then those of the site it shows if it is a
    page-rewriting proxy (nested proxies unwrapped a few levels)."""
    categories = facts.categories
    for _ in range(4):
        if facts.proxied is None:
            break
        inner = host_facts(policy, facts.proxied)
        if isinstance(inner, HostError):
            break
        categories += inner.categories
        facts = inner
    return categories


def window_open(policy: Policy, rule: Rule, at: datetime, stamp: float) -> bool:
    """calendar.matches(rule.when, at), remembered until the calendar's next change: the answer
    holds from the instant it was worked out until next_change, to the second. `stamp` is
    at.timestamp(), so the memo compares plain numbers."""
    known = policy.window_memo.get(rule.name)
    if known is not None:
        since, until, value = known
        if since <= stamp < until:
            return value
    calendar = policy.calendar
    when = rule.when
    value = calendar.matches(when, at)
    # next_change looks _WINDOW_HORIZON ahead; None means "no change before then", not never.
    change = (
        calendar.next_change(when, at, horizon_days=_WINDOW_HORIZON.days) or at + _WINDOW_HORIZON
    )
    policy.window_memo[rule.name] = (stamp, change.timestamp(), value)
    return value


def _first(ctx: _Context) -> Decision:
    for _name, check in CHECKS:
        decision = check(ctx)
        if decision is not None:
            return decision
    raise AssertionError("the default check always decides")  # pragma: no cover


# --- the checks, in precedence order ---------------------------------------------------------


def _locked(ctx: _Context) -> Decision | None:
    for name in judged_categories(ctx.policy, ctx.host):
        if ctx.policy.categories[name].locked:
            return _block(ctx, Reason.LOCKED, rule=name, category=name)
    return None


def _internal(ctx: _Context) -> Decision | None:
    kind = ctx.host.internal
    if kind is None:
        return None
    if (
        ctx.policy.internal.allowed(ctx.host.name, ctx.host.ip, ctx.subject.role, ctx.port)
        is not None
    ):
        return None  # the school lets this role reach it: the other checks decide
    return _block(ctx, Reason.INTERNAL_ADDRESS, rule=f"internal:{kind.value}")


def _sanction(ctx: _Context) -> Decision | None:
    user = ctx.subject.user
    if user is None or not ctx.overrides.sanctions:
        return None
    sanction = next(
        (s for s in ctx.overrides.sanctions if s.user == user and s.active(ctx.at)), None
    )
    if sanction is None:
        return None
    if any(s.user == user and s.active(ctx.at) for s in ctx.overrides.supervised_sessions):
        return None
    if any(
        is_subdomain_or_same(ctx.host.name, allowed)
        for allowed in ctx.policy.circumvention.supervised_allowlist
    ):
        return None
    return _block(ctx, Reason.SUPERVISED_ONLY, rule=sanction.id)


def _exception(ctx: _Context) -> Decision | None:
    if not (ctx.overrides.exceptions or ctx.overrides.local_list):
        return None
    role = ctx.subject.role
    judged = judged_categories(ctx.policy, ctx.host)
    if any(role in ctx.policy.categories[c].not_unblockable_for for c in judged):
        return None  # the policy says no exception may open this for this role
    target = ctx.host.proxied
    if target is not None and ctx.policy.circumvention.block_rewriting_proxies:
        inner = decide(ctx.policy, Request(target, ctx.port), ctx.subject, ctx.overrides, ctx.at)
        if not inner.allowed:
            return None  # a rewriting proxy opens only what would be allowed anyway
    # A local block wins over a broader local allow or exception (a parent site, a category);
    # one for the blocked site itself or narrower is the Business Manager's deliberate choice,
    # made on the same list. A block on another list (the trust's, or the school's own) wins
    # whatever it covers: fail closed.
    blocks = [
        entry
        for entry in ctx.overrides.local_list
        if entry.verdict is Verdict.BLOCK and is_subdomain_or_same(ctx.host.name, entry.host)
    ]
    for entry in ctx.overrides.local_list:
        if (
            entry.verdict is Verdict.ALLOW
            and is_subdomain_or_same(ctx.host.name, entry.host)
            and not any(_beaten(entry.host, entry.school, block) for block in blocks)
        ):
            return Decision(
                Verdict.ALLOW,
                Reason.EXCEPTION,
                rule=f"local-allow:{entry.host}",
                category=_first_category(ctx),
                host=ctx.host.name,
            )
    for exc in ctx.overrides.exceptions:
        if (
            exc.active(ctx.at)
            and _covers(exc, ctx)
            and not (
                blocks
                and (
                    exc.target_kind is TargetKind.CATEGORY
                    or any(_beaten(exc.target, exc.school, block) for block in blocks)
                )
            )
        ):
            category = exc.target if exc.target_kind is TargetKind.CATEGORY else None
            return Decision(
                Verdict.ALLOW,
                Reason.EXCEPTION,
                rule=exc.id,
                category=category or _first_category(ctx),
                host=ctx.host.name,
            )
    return None


def _beaten(opened: str, school: str | None, block: LocalListEntry) -> bool:
    """Whether a local `block` covering the site wins over an allow or exception for `opened`
    made in `school`: when it is on another list, or `opened` is broader than it."""
    if block.school != school:
        return True
    return opened != block.host and is_subdomain_or_same(block.host, opened)


def _local_block(ctx: _Context) -> Decision | None:
    for entry in ctx.overrides.local_list:
        if entry.verdict is Verdict.BLOCK and is_subdomain_or_same(ctx.host.name, entry.host):
            return _block(
                ctx,
                Reason.LOCAL_BLOCK,
                rule=f"local-block:{entry.host}",
                category=_first_category(ctx),
            )
    return None


def _ip_literal(ctx: _Context) -> Decision | None:
    ip = ctx.host.ip
    if ip is not None and ctx.policy.circumvention.block_ip_literals and ip.is_global:
        return _block(ctx, Reason.CIRCUMVENTION, rule="ip-literal", technique=Technique.IP_LITERAL)
    return None


def _rewriting_proxy(ctx: _Context) -> Decision | None:
    target = ctx.host.proxied
    if target is not None and ctx.policy.circumvention.block_rewriting_proxies:
        inner = decide(ctx.policy, Request(target), ctx.subject, ctx.overrides, ctx.at)
        if inner.verdict is Verdict.BLOCK:
            return Decision(
                Verdict.BLOCK,
                Reason.CIRCUMVENTION,
                rule=inner.rule,
                category=inner.category,
                host=ctx.host.name,
                technique=Technique.REWRITING_PROXY,
            )
    return None


def _rules(ctx: _Context) -> Decision | None:
    if not ctx.categories:
        return None  # no rule can name an uncategorised host
    for rule in ctx.policy.rules_by_role[ctx.subject.role]:
        category = _rule_category(rule, ctx)
        if category is None or not (
            rule.when.always or window_open(ctx.policy, rule, ctx.at, ctx.stamp)
        ):
            continue
        made = ctx.host.decisions.get(rule.name)
        if made is None:
            made = ctx.host.decisions[rule.name] = _rule_decision(ctx, rule, category)
        return made
    return None


def _rule_decision(ctx: _Context, rule: Rule, category: str) -> Decision:
    if rule.verdict is Verdict.ALLOW:
        return Decision(
            Verdict.ALLOW, Reason.RULE_ALLOW, rule=rule.name, category=category, host=ctx.host.name
        )
    if ctx.policy.categories[category].circumvention:
        return _block(
            ctx, Reason.CIRCUMVENTION, rule=rule.name, category=category, technique=category
        )
    return _block(ctx, Reason.RULE_BLOCK, rule=rule.name, category=category)


def _default(ctx: _Context) -> Decision:
    made = ctx.host.decisions.get("")
    if made is None:
        if ctx.policy.default is Verdict.ALLOW:
            made = Decision(
                Verdict.ALLOW,
                Reason.DEFAULT_ALLOW,
                category=_first_category(ctx),
                host=ctx.host.name,
            )
        else:
            made = _block(ctx, Reason.DEFAULT_BLOCK, category=_first_category(ctx))
        ctx.host.decisions[""] = made
    return made


CHECKS: tuple[tuple[str, Check], ...] = (
    ("locked", _locked),
    ("internal", _internal),
    ("sanction", _sanction),
    ("exception", _exception),
    ("local_block", _local_block),
    ("ip_literal", _ip_literal),
    ("rewriting_proxy", _rewriting_proxy),
    ("rules", _rules),
    ("default", _default),
)

# Blocks that the calendar or a future exception may lift (others never open by themselves).
_TIME_BOUND_REASONS = frozenset({Reason.RULE_BLOCK, Reason.DEFAULT_BLOCK, Reason.SUPERVISED_ONLY})


# --- helpers -------------------------------------------------------------------------------


def _block(
    ctx: _Context,
    reason: Reason,
    *,
    rule: str | None = None,
    category: str | None = None,
    technique: str | None = None,
) -> Decision:
    return Decision(
        Verdict.BLOCK, reason, rule=rule, category=category, host=ctx.host.name, technique=technique
    )


def _first_category(ctx: _Context) -> str | None:
    return ctx.categories[0] if ctx.categories else None


def _rule_category(rule: Rule, ctx: _Context) -> str | None:
    """The most specific of the host's categories that `rule` covers for this role, if any."""
    if ctx.subject.role not in rule.roles:
        return None
    for category in ctx.categories:
        if category in rule.categories:
            return category
    return None


def _covers(exc: ApprovedException, ctx: _Context) -> bool:
    subject = ctx.subject
    match exc.scope:
        case Scope.EVERYONE:
            who = True
        case Scope.USER:
            who = subject.user is not None and exc.who == subject.user
        case Scope.GROUP:
            who = exc.who in subject.groups
        case Scope.ROLE:
            who = exc.who == subject.role
    if not who:
        return False
    if exc.target_kind is TargetKind.HOST:
        return is_subdomain_or_same(ctx.host.name, exc.target)
    return exc.target in ctx.categories


def _opens_at(ctx: _Context) -> datetime | None:
    """The first instant after ctx.at at which this subject would be allowed this host, if the
    calendar, a sanction's end or an exception's start will bring one; None if nothing will."""
    calendar = ctx.policy.calendar
    timed = [
        r.when
        for r in ctx.policy.rules_by_role[ctx.subject.role]
        if not r.when.always and _rule_category(r, ctx) is not None
    ]
    instants = {e.starts for e in ctx.overrides.exceptions if e.starts > ctx.at}
    instants |= {
        s.ends
        for s in ctx.overrides.sanctions
        if s.user == ctx.subject.user and s.ends is not None and s.ends > ctx.at
    }
    at = ctx.at
    for _ in range(_OPENS_AT_STEPS):
        changes = [c for c in (calendar.next_change(w, at) for w in timed) if c is not None]
        changes += [i for i in instants if i > at]
        if not changes:
            return None
        at = min(changes)
        if _first(ctx._replace(at=at, stamp=at.timestamp())).verdict is Verdict.ALLOW:
            return at
    return None
