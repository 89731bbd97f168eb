"""Say in words why a decision came out as it did, for staff, the CLI and the block page; the
last sentence is chosen for its reader (`Reader`): the person who may ask, or the one who decides."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from schoolgate.policy.decide import unblockable
from schoolgate.policy.model import Decision, Policy, Reason, Subject
from schoolgate.policy.techniques import describe_technique


class Reader(StrEnum):
    """Who reads an explanation, which decides what it says can be done about a block."""

    ASKER = "asker"  # the person blocked, or IT at the CLI: "ask the Business Manager"
    DECIDER = "decider"  # the Business Manager deciding a request: what an approval would do


def format_when(policy: Policy, at: datetime) -> str:
    """'Monday 23 November 2026 at 10:30' in the school's time zone."""
    local = at.astimezone(policy.calendar.timezone)
    clock = local.strftime("%H:%M:%S") if local.second else local.strftime("%H:%M")
    return f"{local.strftime('%A')} {local.day} {local.strftime('%B %Y')} at {clock}"


def format_when_plain(policy: Policy, at: datetime, *, now: datetime) -> str:
    """'Thursday 3 December, 12:47' in the school's time zone, as the admin's pages write
    times: no seconds, and the year only when it is not `now`'s year."""
    zone = policy.calendar.timezone
    local = at.astimezone(zone)
    year = f" {local.year}" if local.year != now.astimezone(zone).year else ""
    return f"{local.strftime('%A')} {local.day} {local.strftime('%B')}{year}, {local:%H:%M}"


def explain_decision(
    policy: Policy,
    decision: Decision,
    subject: Subject,
    at: datetime | None = None,
    *,
    clock: Callable[[datetime], str] | None = None,
    reader: Reader = Reader.ASKER,
) -> str:
    """A few plain sentences: what was decided, which rule or list did it, and when it opens.
    `clock` writes the times (the CLI's and the block page's `format_when` if not given);
    `reader` chooses what it says can be done about a block (`how_to_get_it`)."""
    when_words = clock or (lambda moment: format_when(policy, moment))
    host = decision.host or "this site"
    who = f"{subject.user} ({subject.role})" if subject.user else f"role {subject.role}"
    verb = "Allowed" if decision.allowed else "Blocked"
    lines = [
        f"{verb}: {host} for {who}"
        + (f", {when_words(at)} ({policy.calendar.describe(at)})." if at else ".")
    ]
    rule = next((r for r in policy.rules if r.name == decision.rule), None)
    category = policy.categories.get(decision.category or "")
    cat_words = (
        f"the category '{category.name}' ({category.description})" if category else "no category"
    )
    match decision.reason:
        case Reason.LOCKED:
            lines.append(
                f"{host} is in {cat_words}, which is locked: no exception, admin or "
                "approver can unblock it."
            )
        case Reason.SUPERVISED_ONLY:
            lines.append(
                f"{subject.user} is on a supervised-only sanction: "
                "only the supervised allowlist can be used until a member of staff "
                "opens a supervised session."
            )
        case Reason.EXCEPTION:
            lines.append(
                f"An approved exception ({decision.rule}) opens it; {host} is in {cat_words}."
            )
        case Reason.LOCAL_BLOCK:
            lines.append(f"It is on the school's local block list ({decision.rule}).")
        case Reason.CIRCUMVENTION:
            technique = describe_technique(decision.technique or "")
            lines.append(
                f"This looks like a way round the filter: {technique}. Attempts are "
                "recorded for the Designated Safeguarding Lead."
            )
            if rule:
                lines.append(f"Rule '{rule.name}': {rule.description}")
        case Reason.RULE_ALLOW | Reason.RULE_BLOCK if rule is not None:
            lines.append(
                f"Rule '{rule.name}' (rule {rule.index + 1} of {len(policy.rules)}) "
                f"decided: {rule.description or rule.name}"
            )
            lines.append(f"{host} is in {cat_words}.")
        case Reason.DEFAULT_ALLOW | Reason.DEFAULT_BLOCK:
            if category is None:
                lines.append(
                    f"{host} is in no category of the policy, and no rule covers it "
                    f"for role {subject.role}, so the policy's default applies "
                    f"({policy.default.value})."
                )
            else:
                lines.append(
                    f"No rule covers {cat_words} for role {subject.role}, so the "
                    f"policy's default applies ({policy.default.value})."
                )
        case Reason.INVALID_HOST:
            lines.append(
                f"The host name could not be understood ({decision.rule}); it is "
                "blocked to be safe."
            )
        case Reason.INTERNAL_ADDRESS:
            lines.append(
                f"{host} is inside the school's own network (or the gateway itself), "
                "which cannot be reached through the filter unless IT has listed it "
                "under 'internal: allow' in the policy."
            )
        case Reason.ENGINE_ERROR:
            lines.append(
                "Deciding failed, so the gateway blocked it to be safe; IT has the "
                "details in the gateway log."
            )
        case Reason.NO_SCHOOL:
            lines.append(
                "The request belongs to none of the trust's schools (by the gateway address "
                "the device connected to, the device's address, or the directory group or OU "
                "of the person signed in; a person in two schools' belongs to neither), so "
                "the gateway refused it (the trust file's 'unmatched: refuse')."
            )
        case _:
            lines.append(f"Reason: {decision.reason.value}.")
    if decision.opens_at is not None:
        lines.append(
            f"Access next opens {when_words(decision.opens_at)} "
            f"({policy.calendar.describe(decision.opens_at)})."
        )
    elif not decision.allowed and decision.reason in (Reason.RULE_BLOCK, Reason.DEFAULT_BLOCK):
        lines.append(
            "It does not open at any time for this role; "
            + how_to_get_it(policy, decision, subject, reader)
        )
    return "\n".join(lines)


# What can be done about a block that does not open, by reader and by whether an approved
# request could open the site (can_ask_for).
WHAT_CAN_BE_DONE: dict[tuple[Reader, bool], str] = {
    (Reader.ASKER, True): "ask the Business Manager if you need it.",
    (Reader.ASKER, False): "it cannot be unblocked at school, even if you ask.",
    (Reader.DECIDER, True): "only an approved request opens it.",
    (Reader.DECIDER, False): "it cannot be unblocked at school, even with an approved request.",
}


def explain_plainly(
    policy: Policy,
    decision: Decision,
    subject: Subject,
    at: datetime,
    *,
    now: datetime,
    reader: Reader = Reader.ASKER,
) -> str:
    """`explain_decision` with the admin's way of writing times (`format_when_plain`)."""
    return explain_decision(
        policy,
        decision,
        subject,
        at,
        clock=lambda moment: format_when_plain(policy, moment, now=now),
        reader=reader,
    )


def can_ask_for(policy: Policy, decision: Decision, role: str, site: str = "") -> bool:
    """Whether an approved unblock request could open what `decision` blocked, for `role`: the
    one rule behind the block page's "Ask for access" and the words "ask the Business Manager".
    Never for a locked category or one the policy marks as not unblockable for the role (X and
    Instagram in the seed), nor a page-rewriting proxy of such a site (`unblockable` judges the
    site it shows); a supervised-only sanction is lifted by the DSL, not by a request; an
    internal address is opened only by the policy's internal allow list. `site`: what the
    client asked for, when the decision has no host."""
    if decision.reason in (Reason.SUPERVISED_ONLY, Reason.INTERNAL_ADDRESS):
        return False
    host = decision.host or site
    return bool(host) and unblockable(policy, host, role)


def how_to_get_it(
    policy: Policy, decision: Decision, subject: Subject, reader: Reader = Reader.ASKER
) -> str:
    """What can be done about a block, in the same words everywhere: for the person who may
    ask, ask the Business Manager where an approved request could open the site (can_ask_for);
    for the Business Manager, that an approval would open it; otherwise, plainly, that it
    cannot be unblocked at school."""
    return WHAT_CAN_BE_DONE[reader, can_ask_for(policy, decision, subject.role)]
