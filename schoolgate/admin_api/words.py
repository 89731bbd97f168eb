"""Names as people know them: the policy's categories, the ways round the filter, reasons and
alert kinds, in the DSL's and the Business Manager's words (the codes stay in the API and in
CSV exports). One place, used by the pages (`words` in every template) and the e-mails."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

CATEGORIES = {
    "illegal_content": "illegal content (IWF/CTIRU lists)",
    "x": "X (Twitter)",
    "instagram": "Instagram",
    "facebook": "Facebook",
    "social": "social media",
    "web_proxy": "web proxies and unblockers",
    "vpn": "VPNs",
    "tor": "Tor",
    "doh": "hidden web look-ups (DNS-over-HTTPS)",
    "banking": "banking",
    "health": "health",
}

TECHNIQUES = {
    "ip_literal": "typed a number instead of a site's name",
    "rewriting_proxy": "a translate or rewriting proxy",
    "host_mismatch": "a disguised site name",
    "web_proxy": "a web proxy or unblocker site",
    "vpn": "a VPN",
    "tor": "Tor",
    "doh": "hidden web look-ups (DNS-over-HTTPS)",
    "doh_content": "hidden web look-ups (DNS-over-HTTPS)",
    "archive_viewer": "an archive or cache copy of a blocked page",
    "ech": "a hidden destination (encrypted hello)",
    "unusual_port": "an unusual connection port",
    "tunnel_protocol": "a tunnel (VPN or similar)",
    "repeated_attempts": "kept trying a blocked site",
    "embedded_widget": "a blocked site's widget on another page",
    "malformed_request": "a broken or disguised web address",
    "protocol_upgrade": "tried to switch to another kind of connection",
}

REASONS = {
    "locked": "never allowed (locked list)",
    "supervised_only": "supervised only (sanction)",
    "exception": "allowed by an approved request",
    "local_block": "on the school's block list",
    "local_allow": "on the school's allow list",
    "rule_block": "blocked by the policy",
    "rule_allow": "allowed by the policy",
    "circumvention": "a way round the filter",
    "default_block": "not on the allowed list",
    "default_allow": "allowed",
    "invalid_host": "address not understood",
    "engine_error": "the filter had a problem",
}

ALERT_KINDS = {
    "circumvention_attempt": "tried to get round the filter",
    "sanction_placed": "supervised only: placed automatically",
    "sanction_recommended": "supervised only: recommended",
    "safeguarding_search": "searched for something worrying",
    "list_stale": "a filter list is out of date",
    "list_update_failed": "a filter list could not be updated",
}

# The audit log's actions (services call audit.record with these codes; the API and the CSV
# keep the codes).
ACTIONS = {
    "signin": "signed in",
    "request.create": "asked for a website to be unblocked",
    "request.approve": "approved an unblock request",
    "request.deny": "denied an unblock request",
    "exception.revoke": "ended an approved access early",
    "list.block": "added a website to the block list",
    "list.allow": "added a website to the allow list",
    "list.add": "added a website to the allow list (from a request)",
    "list.remove": "removed a website from the local lists",
    "list.restore": "put back an earlier version of the local lists",
    "policy.change": "changed the policy",
    "policy.shadow.start": "started trying out a new policy",
    "policy.shadow.promote": "put the tried-out policy in force",
    "policy.shadow.discard": "dropped the tried-out policy",
    "sanction.place": "placed a supervised-only sanction",
    "sanction.extend": "extended a supervised-only sanction",
    "sanction.confirm": "confirmed a recommended sanction",
    "sanction.lift": "lifted a supervised-only sanction",
    "supervised_session.open": "opened a supervised session",
    "alert.acknowledge": "acknowledged an alert",
    "alert.close": "closed an alert",
    "incident.write": "wrote an incident note",
    "events.export": "downloaded monitoring events",
    "sar.export": "downloaded everything held about a person",
    "review.evidence_pack": "made the annual review evidence pack",
}


def _plain(code: str) -> str:
    return code.replace("_", " ")


UNCATEGORISED_WORDS = {"(no category)": "other blocks (supervised-only, errors)"}  # reports


def category_words(code: str | None) -> str:
    """'social' -> 'social media'; no category -> 'other'."""
    if not code:
        return "other"
    return CATEGORIES.get(code) or UNCATEGORISED_WORDS.get(code) or _plain(code)


def role_words(code: str | None) -> str:
    """A policy role as people say it: 'social_media_manager' -> 'social media manager'."""
    return _plain(code) if code else ""


def roles_words(code: str | None) -> str:
    """The people with a role, as people say it: 'pupil' -> 'pupils', 'staff' -> 'staff',
    'social_media_manager' -> 'social media managers'."""
    said = role_words(code)
    return said if not said or said.endswith(("staff", "s")) else f"{said}s"


def technique_words(code: str | None) -> str:
    return TECHNIQUES.get(code, _plain(code)) if code else ""


def reason_words(code: str | None) -> str:
    return REASONS.get(code, _plain(code)) if code else ""


def alert_kind_words(code: str | None) -> str:
    return ALERT_KINDS.get(code, _plain(code)) if code else ""


def action_words(code: str | None) -> str:
    """An audit log action as people say it: 'sanction.lift' -> 'lifted a supervised-only
    sanction'."""
    return ACTIONS.get(code, _plain(code.replace(".", " "))) if code else ""


def codes_matching(words: str, table: dict[str, str]) -> list[str]:
    """The codes whose code or name contains `words` (any case): 'social media' -> ['social'],
    'proxy' -> ['web_proxy', 'rewriting_proxy']."""
    needle = words.strip().lower()
    if not needle:
        return []
    return [
        code
        for code, name in table.items()
        if needle in code.lower()
        or needle in name.lower()
        or needle.replace(" ", "_") in code.lower()
    ]


def grant_words(grant: Mapping[str, Any]) -> str:
    """What an exception (or a request's grant) opens, and for whom: 'www.tiktok.com for
    pupil1', 'every site in social media for the class or group Year5'."""
    target = str(grant.get("target") or "")
    what = (
        f"every site in {category_words(target)}"
        if grant.get("target_kind") == "category"
        else target
    )
    who = grant.get("who")
    scope = grant.get("scope")
    if scope == "user":
        return f"{what} for {who}"
    if scope == "group":
        return f"{what} for the class or group {who}"
    if scope == "role":
        return f"{what} for everyone with the role {role_words(str(who or ''))}"
    return f"{what} for everyone"


def audit_what(
    action: str,
    target: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    hidden: bool = False,
    day: Callable[[str], str] = str,
) -> str:
    """What an audit entry is about, in words: the request's site and person, the list entry,
    the reach of the access ended, the pupil of a sanction (the ids stay in the API and the
    CSV). An entry whose details the reader may not see (`hidden`) names no pupil."""
    kind, _, key = target.partition(":")
    values = {**(before or {}), **(after or {})}
    user = values.get("user")
    if kind == "request":
        host, person = values.get("host"), values.get("requester")
        if not host:
            return "an unblock request"
        group = values.get("for_group")
        return f"{host}, asked for by {person}" + (
            f" for the class or group {group}" if group else ""
        )
    if kind == "list":
        verdict = values.get("verdict")
        return f"{key} on the {verdict} list" if verdict in ("block", "allow") else key
    if kind == "exception":
        return f"access to {grant_words(values)}" if values.get("target") else "an access"
    if kind == "user":
        return f"everything held about {key}"
    if kind == "session":
        return "the admin pages" if key == "directory" else f"the admin pages ({key})"
    named = {
        "sanction": "a supervised-only sanction",
        "supervised_session": "a supervised session",
        "alert": "an alert",
        "incident": "an incident note",
    }
    if kind in named:
        about = {"sanction": " on ", "supervised_session": " for "}.get(kind, " about ")
        return named[kind] + (f"{about}{user}" if user and not hidden else "")
    if action == "events.export":
        return "monitoring events" + (f" about {user}" if user and not hidden else "")
    if action == "review.evidence_pack":
        return f"the evidence pack for {day(target)}"
    if target.startswith("policy version "):
        return "the policy, " + target.split(" (", 1)[0].removeprefix("policy ")
    if target.startswith("lists version "):
        return "the local lists, " + target.removeprefix("lists ")
    if target.startswith("shadow "):
        return "the tried-out policy"
    return target
