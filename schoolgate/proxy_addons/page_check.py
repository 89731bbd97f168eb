"""Look inside the allowed HTML pages of people whose role is inspected (`inspect: all`) for a
web-proxy script's own form (Glype, PHProxy, CGIProxy, miniProxy and similar: `proxy_forms`),
wherever it is hosted and whatever its URLs look like; such a page is blocked as a
circumvention attempt (technique web_proxy, rule web-proxy-form) and recorded.

Runs after StripAltSvc (which streams every allowed response) and takes the pages it checks
back from streaming:
- a page of known size up to `MAX_HELD` is held whole, checked, and replaced by the block
  page (a real 403);
- a page of unknown size (chunked) is held as it arrives, up to `MAX_HELD`, then checked; the
  status line has gone by then, so a proxy page is replaced by the block page's text under the
  page's own 200 (and its own content encoding); a larger page is passed on unchecked (a proxy's
  front page is a few kilobytes);
- anything else (images, scripts, downloads, large pages) streams as before.
A finding marks the flow (DECISION, TECHNIQUE, EVIDENCE, LATE) for RecordEvents' `response`.
An error fails closed: a held page that cannot be read is blocked (engine_error), and a flow
that cannot even be prepared is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from mitmproxy import http

from schoolgate.policy.inspection import InspectMode
from schoolgate.policy.model import Decision, Reason, Verdict
from schoolgate.policy.techniques import Technique
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.blockpage import make_plain_block, render_block_page
from schoolgate.proxy_addons.flows import block_response, pretty_host
from schoolgate.proxy_addons.proxy_forms import proxy_form_evidence
from schoolgate.proxy_addons.stats import GatewayStats

logger = logging.getLogger(__name__)

MAX_HELD = 256 * 1024  # bytes of one page held to be checked
RULE = "web-proxy-form"
_PAGE_TYPES = ("text/html", "application/xhtml+xml")
_PAGE_DESTS = frozenset({"", "document", "iframe", "frame"})
HELD = "schoolgate.page_held"  # flow.metadata: the page is being held to be checked


def is_page_to_check(request: http.Request, response: http.Response) -> bool:
    """An HTML document that a person opened (not an image, a script or an XHR)."""
    if response.status_code != 200 or request.method not in ("GET", "POST"):
        return False
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in _PAGE_TYPES:
        return False
    return request.headers.get("sec-fetch-dest", "").lower() in _PAGE_DESTS


def announced_size(response: http.Response) -> int | None:
    if "transfer-encoding" in response.headers:
        return None
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


class _Holder:
    """A stream callable for a page of unknown size: holds the chunks until the end (then
    checks the page) or until MAX_HELD (then lets everything through unchecked)."""

    def __init__(self, flow: http.HTTPFlow, addon: CheckPages) -> None:
        self._flow = flow
        self._addon = addon
        self._held: list[bytes] = []
        self._size = 0
        self._released = False

    def __call__(self, chunk: bytes) -> bytes | Iterable[bytes]:
        if self._released:
            return chunk
        if chunk:
            self._held.append(chunk)
            self._size += len(chunk)
            if self._size <= MAX_HELD:
                return []  # not b"": an empty chunk would end a chunked body
            self._released = True
            self._addon.stats.pages_too_large += 1
            return self._take()
        self._released = True  # the end of the body: check what was held
        body = b"".join(self._take_list())
        replacement = self._addon.check_held(self._flow, body)
        return body if replacement is None else replacement

    def _take_list(self) -> list[bytes]:
        held, self._held = self._held, []
        return held

    def _take(self) -> bytes:
        return b"".join(self._take_list())


class CheckPages:
    def __init__(self, stats: GatewayStats | None = None) -> None:
        self.stats = stats if stats is not None else GatewayStats()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or flow.error or not flow.live:
            return
        decision = flow.metadata.get(context.DECISION)
        inputs = flow.metadata.get(context.INPUTS)
        if (
            not isinstance(decision, Decision)
            or not decision.allowed
            or not isinstance(inputs, context.DecisionInputs)
        ):
            return
        try:
            role = inputs.policy.inspection.for_role(inputs.subject.role)
            if role.inspect is not InspectMode.ALL or not is_page_to_check(flow.request, response):
                return
            size = announced_size(response)
            if size is not None and size > MAX_HELD:
                self.stats.pages_too_large += 1
                return
            flow.metadata[HELD] = True
            self.stats.pages_held += 1
            response.stream = False if size is not None else _Holder(flow, self)
        except Exception:  # fail closed: a page that cannot be checked is not shown
            self.stats.page_check_errors += 1
            logger.exception("preparing to check a page failed; closing the connection")
            flow.kill()  # type: ignore[no-untyped-call]

    def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or not flow.metadata.get(HELD) or response.stream:
            return  # not held, or held as a stream (_Holder checked it)
        try:
            evidence = proxy_form_evidence(response.get_text(strict=False) or "")
        except Exception:  # fail closed: the page is not shown unchecked
            self.stats.page_check_errors += 1
            logger.exception("checking a page for a web-proxy form failed; blocking it")
            decision = Decision(Verdict.BLOCK, Reason.ENGINE_ERROR, rule=RULE)
            flow.metadata[context.DECISION] = decision
            flow.metadata[context.LATE] = True
            flow.response = make_plain_block(decision)
            return
        if evidence is not None:
            inputs = flow.metadata[context.INPUTS]
            decision = self._found(flow, evidence)
            flow.response = block_response(
                flow, decision, inputs.subject, at=inputs.at, policy=inputs.policy, page=inputs.page
            )

    def check_held(self, flow: http.HTTPFlow, body: bytes) -> bytes | None:
        """A streamed page's whole body: the block page's bytes (in the page's own content
        encoding) if it is a web-proxy page, else None."""
        assert flow.response is not None
        try:
            # A copy with the page's own headers: mitmproxy decodes (and below encodes) its
            # content encoding and charset.
            probe = http.Response.make(200)
            probe.headers = flow.response.headers.copy()
            probe.raw_content = body
            evidence = proxy_form_evidence(probe.get_text(strict=False) or "")
            if evidence is None:
                return None
            inputs = flow.metadata[context.INPUTS]
            decision = self._found(flow, evidence)
            probe.text = render_block_page(
                decision,
                inputs.subject,
                site=pretty_host(flow.request),
                at=inputs.at,
                policy=inputs.policy,
                settings=inputs.page,
            )
            return probe.raw_content
        except Exception:  # fail closed: the page is not shown unchecked
            self.stats.page_check_errors += 1
            logger.exception("checking a streamed page failed; dropping its body")
            flow.metadata[context.DECISION] = Decision(
                Verdict.BLOCK, Reason.ENGINE_ERROR, rule=RULE
            )
            flow.metadata[context.LATE] = True
            return b""

    def _found(self, flow: http.HTTPFlow, evidence: dict[str, str]) -> Decision:
        allowed = flow.metadata[context.DECISION]
        decision = Decision(
            Verdict.BLOCK,
            Reason.CIRCUMVENTION,
            rule=RULE,
            category=allowed.category,
            host=allowed.host,
            technique=Technique.WEB_PROXY,
        )
        flow.metadata[context.DECISION] = decision
        flow.metadata[context.TECHNIQUE] = Technique.WEB_PROXY
        flow.metadata[context.EVIDENCE] = evidence
        flow.metadata[context.LATE] = True
        self.stats.pages_blocked += 1
        return decision
