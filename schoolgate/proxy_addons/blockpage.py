"""The page a person sees when the gateway blocks a website: plain words a child can follow
(for pupils) or adult words (for staff), when it opens (for a time-based block) or until when a
supervised-only sanction lasts, an "Ask for access" link, and the details staff need.

Pure rendering: the decision, who asked and when are passed in. Everything that came from the
client is escaped by the template (autoescape on).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import jinja2
from mitmproxy import http

from schoolgate.policy.explain import can_ask_for, explain_decision, format_when
from schoolgate.policy.hostnames import unwrap_rewriting_proxy
from schoolgate.policy.model import Decision, Policy, Reason, Subject
from schoolgate.store.tokens import AccessClaims, make_access_token

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("schoolgate.proxy_addons", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
)

# Why, in words a seven-year-old can follow (pupils, and anyone not identified). Kept short.
_WHY = {
    Reason.LOCKED: "This website is never allowed at school.",
    Reason.SUPERVISED_ONLY: "You can use the computer only with a teacher for now.",
    Reason.LOCAL_BLOCK: "Your school has blocked this website.",
    Reason.RULE_BLOCK: "Your school has decided this website is not for use at school.",
    Reason.CIRCUMVENTION: "This website is a way to get round the school's safety filter, so "
    "it is blocked. Your teachers can see that it was tried. If you keep "
    "trying, you may have to use the computer only with a teacher.",
    Reason.DEFAULT_BLOCK: "This website is not on the list of websites you can use at school.",
    Reason.INTERNAL_ADDRESS: "This address is part of the school's own computer systems, so "
    "it cannot be opened through the filter.",
    Reason.INVALID_HOST: "We could not understand this web address, so it is blocked to keep "
    "you safe.",
    Reason.ENGINE_ERROR: "Something went wrong while checking this website, so it is blocked "
    "to keep you safe. Please try again in a minute.",
    Reason.NO_SCHOOL: "This computer is not set up for the school's filter yet, so it cannot "
    "open websites. Please tell your teacher.",
}
_WHY_TIME = "This website is not for use at school at this time."
# The same for staff: adult words, with who decides.
_WHY_STAFF = {
    Reason.LOCKED: "This site is on a list that the school never allows (illegal or harmful "
    "content); no one at school can unblock it.",
    Reason.SUPERVISED_ONLY: "Your account is supervised only: you can browse only in a "
    "supervised session. The Designated Safeguarding Lead can tell you "
    "more.",
    Reason.LOCAL_BLOCK: "The school has blocked this site on its own list.",
    Reason.RULE_BLOCK: "The school's policy does not allow this site for your role.",
    Reason.CIRCUMVENTION: "This looks like a way to get round the school's filter (a proxy, "
    "VPN or similar), so it is blocked and the attempt is recorded. "
    "Repeated attempts are reported to the Designated Safeguarding Lead, "
    "who may make your account supervised only.",
    Reason.DEFAULT_BLOCK: "This site is not on the list of sites allowed for your role.",
    Reason.INVALID_HOST: "The filter could not understand this web address, so it is blocked.",
    Reason.ENGINE_ERROR: "The filter hit an error while checking this site, so it is blocked to "
    "be safe. Try again in a minute; if it keeps happening, tell IT.",
    Reason.NO_SCHOOL: "The filter cannot tell which of the trust's schools this device or person "
    "belongs to, so it refuses it. Tell IT: each school's network addresses and directory "
    "groups are set in the trust file.",
}
_WHY_TIME_STAFF = "The school's policy does not allow this site for your role at this time."
# Roles that read the children's words (an unidentified person gets the policy's default role,
# the most restrictive one, and reads them too).
CHILD_ROLES = frozenset({"pupil"})


@dataclass(frozen=True, slots=True)
class BlockPageSettings:
    admin_url: str  # base URL of the admin service, e.g. http://127.0.0.1:8081
    secret: bytes  # signs the "ask for access" token


def make_block_page(
    decision: Decision,
    subject: Subject,
    *,
    site: str,
    at: datetime,
    policy: Policy | None,
    settings: BlockPageSettings,
    school: str | None = None,
) -> http.Response:
    """A 403 response carrying the block page for `decision` (`site`: what the client asked
    for, as it sent it; `school`: with a trust, the school decided for, carried in the "Ask
    for access" link so the request is that school's)."""
    html = render_block_page(
        decision, subject, site=site, at=at, policy=policy, settings=settings, school=school
    )
    return http.Response.make(
        403,
        html.encode("utf-8"),
        {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def reads_child_words(subject_role: str, policy: Policy | None) -> bool:
    """Pupils, and anyone not identified (the policy's default role), read the children's
    words."""
    return subject_role in CHILD_ROLES or (
        policy is not None and subject_role == policy.default_role
    )


def make_unreachable_page(
    site: str, *, role: str, policy: Policy | None, problem: str
) -> http.Response:
    """A 502 in the block page's voice when an allowed site does not answer (its name cannot be
    looked up): not blocked, what to do, and for staff the details for IT."""
    html = _ENV.get_template("unreachable.html").render(
        site=site, child=reads_child_words(role, policy), problem=problem
    )
    return http.Response.make(
        502,
        html.encode("utf-8"),
        {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def make_plain_block(decision: Decision) -> http.Response:
    """A plain-text 403 where no page can be shown (a refused CONNECT, an error while deciding,
    a page that failed to render): the reason, and what it was about."""
    about = decision.technique or decision.host
    text = (
        f"Blocked by the school's web filter ({decision.reason.value}"
        f"{': ' + about if about else ''}).\n"
    )
    return http.Response.make(
        403,
        text.encode(),
        {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"},
    )


def render_block_page(
    decision: Decision,
    subject: Subject,
    *,
    site: str,
    at: datetime,
    policy: Policy | None,
    settings: BlockPageSettings,
    school: str | None = None,
) -> str:
    # "Ask for access" from a page-rewriting proxy asks for the site it shows.
    asked = decision.host or site
    claims = AccessClaims(
        host=unwrap_rewriting_proxy(asked) or asked,
        role=subject.role,
        at=at,
        user=subject.user,
        category=decision.category,
        reason=decision.reason.value,
        school=school,
    )
    token = make_access_token(settings.secret, claims)
    ask_url = f"{settings.admin_url.rstrip('/')}/requests/new?{urlencode({'token': token})}"
    child = reads_child_words(subject.role, policy)
    opens = None
    if decision.opens_at is not None and policy is not None:
        opens = describe_opening(policy, decision.opens_at, at)
    words = _WHY if child else _WHY_STAFF
    why = (
        (_WHY_TIME if child else _WHY_TIME_STAFF)
        if opens
        else words.get(decision.reason, words[Reason.RULE_BLOCK])
    )
    supervised = decision.reason is Reason.SUPERVISED_ONLY
    if supervised:
        why, opens = _supervised_words(policy, decision, at, child=child), None
    return _ENV.get_template("blocked.html").render(
        site=site,
        child=child,
        supervised=supervised,
        why=why,
        opens=opens,
        ask_url=ask_url,
        can_ask=_can_ask(policy, decision, subject, site),
        host=decision.host,
        reason=decision.reason.value,
        rule=("a supervised-only sanction" if supervised else decision.rule),
        category=decision.category,
        technique=decision.technique,
        user=subject.user,
        role=subject.role,
        when=format_when(policy, at) if policy is not None else at.isoformat(),
        explanation=_without_ids(
            explain_decision(policy, decision, subject, at) if policy else "", decision
        ),
    )


def _can_ask(policy: Policy | None, decision: Decision, subject: Subject, site: str) -> bool:
    """Offer "Ask for access" only where an approval could open the site (can_ask_for); with
    no policy to judge by, offer it, except where no request can help."""
    if policy is None:
        return decision.reason not in (Reason.SUPERVISED_ONLY, Reason.INTERNAL_ADDRESS)
    return can_ask_for(policy, decision, subject.role, site)


def _without_ids(text: str, decision: Decision) -> str:
    """The explanation without a sanction's id (an id means nothing to a person)."""
    if decision.reason is Reason.SUPERVISED_ONLY and decision.rule:
        text = text.replace(f" ({decision.rule})", "").replace(decision.rule, "the sanction")
    return text


def _supervised_words(
    policy: Policy | None, decision: Decision, at: datetime, *, child: bool
) -> str:
    """What a supervised-only sanction means, and until when (the first moment this site
    opens again, which is the sanction's end for a site that is otherwise allowed)."""
    until = ""
    if decision.opens_at is not None and policy is not None:
        until = f" until {day_name(policy, decision.opens_at, at)}"
    if child:
        return (
            f"You can use the computer only with a teacher{until}. "
            "A teacher can sit with you so you can carry on with your work."
        )
    return (
        f"Your account is supervised only{until}: you can browse only in a supervised "
        "session. The Designated Safeguarding Lead can tell you more."
    )


def day_name(policy: Policy, instant: datetime, at: datetime) -> str:
    """'Friday 18 December' in the school's zone ('today' or 'tomorrow' when it is)."""
    zone = policy.calendar.timezone
    local, now = instant.astimezone(zone).date(), at.astimezone(zone).date()
    if local == now:
        return "today"
    if (local - now).days == 1:
        return "tomorrow"
    return f"{local.strftime('%A')} {local.day} {local.strftime('%B')}"


def describe_opening(policy: Policy, opens_at: datetime, at: datetime) -> str:
    """'You can use it at lunch, from 12:00.' (or '... on Monday 23 November, from 10:30.')."""
    zone = policy.calendar.timezone
    local = opens_at.astimezone(zone)
    clock = local.strftime("%H:%M")
    period = next((p for p in policy.calendar.periods if p.start == local.time()), None)
    when = day_name(policy, opens_at, at)
    day = "" if when == "today" else f" {when}" if when == "tomorrow" else f" on {when}"
    if period is not None:
        return f"You can use it at {period.name}{day}, from {clock}."
    return f"You can use it{day} from {clock}."
