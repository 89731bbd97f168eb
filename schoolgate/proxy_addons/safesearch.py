"""Make searches and video safe for the roles the policy says, and tell the DSL about worrying
searches: force each search engine's own safe mode by the mechanism its provider documents (a
query parameter such as Google's safe=active, Bing's adlt=strict, DuckDuckGo's kp=1, Yahoo's
vm=r; YouTube's `YouTube-Restrict` header), block searches on engines whose safe mode cannot be
forced, and raise an alert when a search contains a safeguarding term.

Runs after Enforce and Detect, on allowed, decrypted requests only (it reads Enforce's
DECISION and INPUTS). Any error blocks the request (fail closed). Alerts are written by a
background task, never on the request path.
"""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mitmproxy import ctx, http
from sqlalchemy.orm import Session

from schoolgate.policy.hostnames import is_subdomain_or_same
from schoolgate.policy.inspection import RoleInspection, SearchTerm, YouTubeMode
from schoolgate.policy.model import Decision, Reason, Verdict
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.blockpage import make_plain_block
from schoolgate.proxy_addons.flows import client_ip, pretty_host
from schoolgate.proxy_addons.search_terms import (
    CANNOT_ENFORCE,
    ENGINES,
    Engine,
    engine_terms,
    search_engine,
)
from schoolgate.proxy_addons.stats import GatewayStats
from schoolgate.store.alerts import (
    NO_PUSH,
    Alert,
    load_push_settings,
    raise_alert,
)
from schoolgate.store.db import make_engine
from schoolgate.store.escalation import AlertWorker, Job
from schoolgate.store.models import AlertSeverity

logger = logging.getLogger(__name__)

SAFE_SEARCH_RULE = "safe-search-unavailable"
ALERT_KIND = "safeguarding_search"  # the `kind` of the DSL's alert for a worrying search
ALERT_REPEAT_SECONDS = 600  # one alert per person and term in this window (typing, reloads)
URGENT_TOPICS = frozenset({"suicide", "self_harm", "abuse"})
# YouTube's hosts that honour the YouTube-Restrict header (Google Workspace Admin Help,
# "Restrict YouTube content on your network or managed devices",
# support.google.com/a/answer/6214622).
YOUTUBE_HOSTS = (
    "youtube.com",
    "youtube-nocookie.com",
    "youtube.googleapis.com",
    "youtubei.googleapis.com",
)


def is_youtube_host(host: str) -> bool:
    return any(is_subdomain_or_same(host, h) for h in YOUTUBE_HOSTS)


def is_search_host(host: str) -> bool:
    """Could a request to this host be a search whose safe mode we force (so it must be
    decrypted for a role with safe_search or youtube on)?"""
    return is_youtube_host(host) or any(e.host.search(host) for e in ENGINES)


def safe_query(engine: Engine) -> tuple[tuple[str, str], ...]:
    """The query parameters that force `engine`'s safe mode (empty if it has none to set)."""
    return engine.safe if isinstance(engine.safe, tuple) else ()


def youtube_header(mode: YouTubeMode) -> str | None:
    return {YouTubeMode.STRICT: "Strict", YouTubeMode.MODERATE: "Moderate"}.get(mode)


def unsafe_search_page(engine: str, site: str) -> http.Response:
    """The page a pupil sees for a search on an engine that cannot be made safe."""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Use a safe search</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto; line-height: 1.5">
<h1>Please search somewhere else</h1>
<p>At school, searches must use a safe search that hides grown-up pictures and pages.
{html.escape(engine.capitalize())} cannot do that here, so this search is blocked.</p>
<p>Try <a href="https://www.google.co.uk/">Google</a>,
<a href="https://www.bing.com/">Bing</a> or <a href="https://www.kiddle.co/">Kiddle</a>
instead. Nobody is in trouble for this.</p>
<p style="color:#555">({html.escape(site)}: safe search cannot be forced; rule
{SAFE_SEARCH_RULE})</p>
</body></html>"""
    return http.Response.make(
        403,
        body.encode(),
        {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
    )


@dataclass(frozen=True, slots=True)
class _Finding:
    user: str | None
    who: str
    role: str
    at: datetime
    terms: str
    matched: tuple[SearchTerm, ...]
    engine: str
    page: str
    client_ip: str | None


class SafeSearch:
    def __init__(self, stats: GatewayStats | None = None) -> None:
        self._worker: AlertWorker | None = None  # with a database: writes and pushes alerts
        self._alerted: dict[tuple[str, str], float] = {}
        self.stats = stats or GatewayStats()

    def running(self) -> None:
        url = getattr(ctx.options, "schoolgate_database_url", "")
        if not url or self._worker is not None:
            return
        push = NO_PUSH
        path = getattr(ctx.options, "schoolgate_alert_push", "")
        if path:  # the same settings as the attempt alerts (validated by RecordEvents)
            try:
                push = load_push_settings(Path(path).expanduser())
            except ValueError:
                logger.warning("safeguarding search alerts are not pushed: %s is not valid", path)
        try:
            engine = make_engine(url)
        except Exception:
            logger.warning(
                "safeguarding search alerts: the database %s cannot be used; "
                "alerts go to the log only",
                url.split("@")[-1],
                exc_info=True,
            )
            return
        self._worker = AlertWorker(engine, self.stats, push=push, retries=3, retry_seconds=1.0)
        self._worker.start()

    async def done(self) -> None:
        if self._worker is not None:
            await self._worker.close()
            self._worker = None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        decision = flow.metadata.get(context.DECISION)
        inputs = flow.metadata.get(context.INPUTS)
        if (
            not isinstance(decision, Decision)
            or not isinstance(inputs, context.DecisionInputs)
            or not decision.allowed
        ):
            return  # not decided by Enforce, or already blocked
        try:
            self._make_safe(flow, decision, inputs)
        except Exception:
            self.stats.safesearch_errors += 1
            logger.exception("making a search safe failed; blocking (fail closed)")
            blocked = Decision(Verdict.BLOCK, Reason.ENGINE_ERROR, host=decision.host)
            flow.metadata[context.DECISION] = blocked
            flow.response = make_plain_block(blocked)

    def _make_safe(
        self, flow: http.HTTPFlow, decision: Decision, inputs: context.DecisionInputs
    ) -> None:
        request = flow.request
        host = decision.host or pretty_host(request).lower()
        settings: RoleInspection = inputs.policy.inspection.for_role(inputs.subject.role)
        header = youtube_header(settings.youtube)
        if header is not None and is_youtube_host(host):
            request.headers["YouTube-Restrict"] = header  # replaces any the client sent
            self.stats.youtube_restricted += 1
        path, _, query = request.path.partition("?")
        engine = search_engine(host, path)
        if engine is None:
            return
        terms = engine_terms(engine, query)
        if settings.safe_search:
            if engine.safe == CANNOT_ENFORCE:
                if terms:
                    blocked = Decision(
                        Verdict.BLOCK, Reason.RULE_BLOCK, rule=SAFE_SEARCH_RULE, host=host
                    )
                    flow.metadata[context.DECISION] = blocked
                    flow.response = unsafe_search_page(engine.name, host)
                    self.stats.unsafe_search_blocked += 1
                    self._check_terms(flow, inputs, engine, terms)
                return
            for name, value in safe_query(engine):
                request.query[name] = value  # replaces the client's own value
            self.stats.safe_search_forced += 1
        if terms:
            self._check_terms(flow, inputs, engine, terms)

    # --- safeguarding terms --------------------------------------------------------------

    def _check_terms(
        self, flow: http.HTTPFlow, inputs: context.DecisionInputs, engine: Engine, terms: str
    ) -> None:
        matched = inputs.policy.search.matches(terms)
        if not matched:
            return
        ident = flow.metadata.get(context.IDENTITY)
        user = ident.user if isinstance(ident, context.Identity) else None
        ip = client_ip(flow.client_conn)
        who = user or ip or "unknown"
        now = time.monotonic()
        key = (who, matched[0].words)
        last = self._alerted.get(key)
        if last is not None and now - last < ALERT_REPEAT_SECONDS:
            return
        if len(self._alerted) > 50_000:
            self._alerted.clear()
        self._alerted[key] = now
        page = f"{pretty_host(flow.request)}{flow.request.path.partition('?')[0]}"[:500]
        self.stats.safeguarding_searches += 1
        summary = alert_summary(who, terms, matched, engine.name)
        logger.warning("safeguarding search: %s", summary)
        if self._worker is not None:
            self._worker.submit(
                _alert_job(
                    _Finding(
                        user,
                        who,
                        inputs.subject.role,
                        inputs.at,
                        terms,
                        matched,
                        engine.name,
                        page,
                        ip,
                    ),
                    summary,
                )
            )


def alert_summary(who: str, terms: str, matched: tuple[SearchTerm, ...], engine: str) -> str:
    topics = ", ".join(dict.fromkeys(t.topic.replace("_", " ") for t in matched))
    return f'{who} searched {engine} for "{terms[:200]}" ({topics})'


def alert_severity(matched: tuple[SearchTerm, ...]) -> AlertSeverity:
    if any(t.topic in URGENT_TOPICS for t in matched):
        return AlertSeverity.HIGH
    return AlertSeverity.MEDIUM


def _alert_job(finding: _Finding, summary: str) -> Job:
    details = {
        "search_terms": finding.terms,
        "matched": [t.words for t in finding.matched],
        "topics": sorted({t.topic for t in finding.matched}),
        "engine": finding.engine,
        "page": finding.page,
        "role": finding.role,
        "client_ip": finding.client_ip,
        "at": finding.at.isoformat(),
    }

    def run(session: Session) -> Alert:
        return raise_alert(
            session=session,
            severity=alert_severity(finding.matched),
            kind=ALERT_KIND,
            user=finding.user,
            at=finding.at,
            summary=summary,
            details=details,
        )

    return Job("safeguarding alert", run)
