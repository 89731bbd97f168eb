"""The page a person sees when the gateway blocks a website: plain words a child can follow,
when it opens (for a time-based block), an "Ask for access" link, and the details staff need.

Pure rendering: the decision, who asked and when are passed in. Everything that came from the
client is escaped by the template (autoescape on).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import jinja2
from mitmproxy import http

from policy.decide import unblockable
from policy.explain import explain_decision, format_when
from policy.hostnames import unwrap_rewriting_proxy
from policy.model import Decision, Policy, Reason, Subject
from store.tokens import AccessClaims, make_access_token

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("proxy_addons", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
)

# Why, in words a seven-year-old can follow. Kept short on purpose.
_WHY = {
    Reason.LOCKED: "This website is never allowed at school.",
    Reason.SUPERVISED_ONLY: "Right now you can only use the internet at school when a grown-up "
                            "is helping you.",
    Reason.LOCAL_BLOCK: "The school has blocked this website.",
    Reason.RULE_BLOCK: "Your school has decided this website is not for use at school.",
    Reason.CIRCUMVENTION: "This looks like a way to get round the school's filter, so it is "
                          "blocked. The school keeps a record of this.",
    Reason.DEFAULT_BLOCK: "This website is not on the list of websites you can use at school.",
    Reason.INTERNAL_ADDRESS: "This address is part of the school's own computer systems, so "
                             "it cannot be opened through the filter.",
    Reason.INVALID_HOST: "We could not understand this web address, so it is blocked to keep "
                         "you safe.",
    Reason.ENGINE_ERROR: "Something went wrong while checking this website, so it is blocked "
                         "to keep you safe. Please try again in a minute.",
}
_WHY_TIME = "This website is not for use at school at this time."


@dataclass(frozen=True, slots=True)
class BlockPageSettings:
    admin_url: str  # base URL of the admin service, e.g. http://127.0.0.1:8081
    secret: bytes  # signs the "ask for access" token


def make_block_page(decision: Decision, subject: Subject, *, site: str, at: datetime,
                    policy: Policy | None, settings: BlockPageSettings) -> http.Response:
    """A 403 response carrying the block page for `decision` (`site`: what the client asked
    for, as it sent it)."""
    html = render_block_page(decision, subject, site=site, at=at, policy=policy,
                             settings=settings)
    return http.Response.make(403, html.encode("utf-8"), {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    })


def make_plain_block(decision: Decision) -> http.Response:
    """A plain-text 403 where no page can be shown (a refused CONNECT, an error while deciding,
    a page that failed to render): the reason, and what it was about."""
    about = decision.technique or decision.host
    text = (f"Blocked by the school's web filter ({decision.reason.value}"
            f"{': ' + about if about else ''}).\n")
    return http.Response.make(403, text.encode(), {"Content-Type": "text/plain; charset=utf-8",
                                                   "Cache-Control": "no-store"})


def render_block_page(decision: Decision, subject: Subject, *, site: str, at: datetime,
                      policy: Policy | None, settings: BlockPageSettings) -> str:
    # "Ask for access" from a page-rewriting proxy asks for the site it shows.
    asked = decision.host or site
    claims = AccessClaims(host=unwrap_rewriting_proxy(asked) or asked, role=subject.role, at=at,
                          user=subject.user, category=decision.category,
                          reason=decision.reason.value)
    token = make_access_token(settings.secret, claims)
    ask_url = f"{settings.admin_url.rstrip('/')}/requests/new?{urlencode({'token': token})}"
    opens = None
    if decision.opens_at is not None and policy is not None:
        opens = describe_opening(policy, decision.opens_at, at)
    why = _WHY_TIME if opens else _WHY.get(decision.reason, _WHY[Reason.RULE_BLOCK])
    return _ENV.get_template("blocked.html").render(
        site=site,
        why=why,
        opens=opens,
        ask_url=ask_url,
        can_ask=_can_ask(policy, decision, subject, site),
        host=decision.host,
        reason=decision.reason.value,
        rule=decision.rule,
        category=decision.category,
        technique=decision.technique,
        user=subject.user,
        role=subject.role,
        when=format_when(policy, at) if policy is not None else at.isoformat(),
        explanation=explain_decision(policy, decision, subject, at) if policy else "",
    )


def _can_ask(policy: Policy | None, decision: Decision, subject: Subject, site: str) -> bool:
    """Offer "Ask for access" only where an approval could open the site: never for a locked
    category or one the policy says cannot be unblocked for this role; a supervised-only
    sanction is lifted by the DSL, not by an unblock request; an internal address is opened
    only by the policy's internal allow list. A page-rewriting proxy is judged by the site it
    shows (`unblockable` does that)."""
    if decision.reason in (Reason.SUPERVISED_ONLY, Reason.INTERNAL_ADDRESS):
        return False
    if policy is None:
        return True
    return unblockable(policy, decision.host or site, subject.role)


def describe_opening(policy: Policy, opens_at: datetime, at: datetime) -> str:
    """'You can use it at lunch, from 12:00.' (or '... on Monday, from 10:30.')."""
    zone = policy.calendar.timezone
    local = opens_at.astimezone(zone)
    clock = local.strftime("%H:%M")
    period = next((p for p in policy.calendar.periods if p.start == local.time()), None)
    today = local.date() == at.astimezone(zone).date()
    day = "" if today else f" on {local.strftime('%A')}"
    if period is not None:
        return f"You can use it at {period.name}{day}, from {clock}."
    return f"You can use it{day} from {clock}."
