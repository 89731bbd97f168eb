"""CheckPages: which allowed pages are held back and read (HTML documents of a role with
`inspect: all`, up to MAX_HELD), a proxy page becomes the block page, a page of unknown size is
held as it streams, and an error while reading blocks (fail closed). Pure fakes (tflow)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import tflow, tutils

import schoolgate.proxy_addons.page_check as page_check
from schoolgate.policy.model import Decision, Overrides, Reason, Subject, Verdict
from schoolgate.policy.parse import parse_policy
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.blockpage import BlockPageSettings
from schoolgate.proxy_addons.page_check import HELD, MAX_HELD, CheckPages
from tests.support.policies import POLICY_TEXT

PAGES = Path(__file__).parent / "proxy_pages"
GLYPE = (PAGES / "written_from/glype-default.html").read_bytes()
POLICY = parse_policy(
    POLICY_TEXT + "inspection:\n  pupil: {inspect: all}\n  staff: {inspect: listed}\n",
    source="p.yaml",
)


def flow_for(
    role: str,
    body: bytes = GLYPE,
    *,
    kind: str = "text/html; charset=utf-8",
    dest: str | None = "document",
    size: bool = True,
) -> http.HTTPFlow:
    headers = [(b"Content-Type", kind.encode())]
    if size:
        headers.append((b"Content-Length", str(len(body)).encode()))
    flow = tflow.tflow(resp=tutils.tresp(headers=headers, content=body))
    if dest is not None:
        flow.request.headers["Sec-Fetch-Dest"] = dest
    flow.metadata[context.DECISION] = Decision(
        Verdict.ALLOW, Reason.DEFAULT_ALLOW, host="helper.example"
    )
    flow.metadata[context.INPUTS] = context.DecisionInputs(
        POLICY,
        Subject(role, "someone"),
        Overrides(),
        datetime(2026, 12, 3, 10, tzinfo=UTC),
        BlockPageSettings("http://admin", b"k" * 32),
    )
    assert flow.response is not None
    flow.response.stream = True  # as StripAltSvc left it
    return flow


def test_a_pupils_proxy_page_is_held_and_blocked() -> None:
    addon, flow = CheckPages(), flow_for("pupil")
    addon.responseheaders(flow)
    assert flow.metadata.get(HELD)
    assert flow.response is not None
    assert flow.response.stream is False
    addon.response(flow)
    assert flow.response.status_code == 403
    decision = flow.metadata[context.DECISION]
    assert (decision.verdict, decision.rule, decision.technique) == (
        Verdict.BLOCK,
        "web-proxy-form",
        "web_proxy",
    )
    assert flow.metadata[context.LATE] is True
    assert flow.metadata[context.EVIDENCE]["script"] == "glype"


@pytest.mark.parametrize(
    ("role", "kwargs"),
    [
        ("staff", {}),  # inspect: listed
        ("pupil", {"kind": "image/png"}),
        ("pupil", {"dest": "script"}),
        ("pupil", {"body": GLYPE + b" " * MAX_HELD}),  # announced larger than what is held
    ],
)
def test_other_responses_stream_unread(role: str, kwargs: dict[str, object]) -> None:
    addon, flow = CheckPages(), flow_for(role, **kwargs)  # type: ignore[arg-type]
    addon.responseheaders(flow)
    assert flow.response is not None
    assert flow.response.stream is True
    assert not flow.metadata.get(HELD)


def test_a_page_of_unknown_size_is_held_as_it_streams() -> None:
    addon, flow = CheckPages(), flow_for("pupil", size=False)
    addon.responseheaders(flow)
    assert flow.response is not None
    stream = flow.response.stream
    assert callable(stream)
    assert list(stream(GLYPE[:100])) == []  # held: nothing sent yet (not an empty chunk)
    assert list(stream(GLYPE[100:])) == []
    replaced = stream(b"")  # the end: the block page in place of the page
    assert isinstance(replaced, bytes)
    assert b"Powered by" not in replaced
    assert b"blocked" in replaced.lower()
    assert flow.metadata[context.DECISION].technique == "web_proxy"


def test_an_error_while_reading_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(html: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(page_check, "proxy_form_evidence", broken)
    addon, flow = CheckPages(), flow_for("pupil")
    addon.responseheaders(flow)
    addon.response(flow)
    assert flow.response is not None
    assert flow.response.status_code == 403
    assert flow.metadata[context.DECISION].reason is Reason.ENGINE_ERROR
    assert addon.stats.page_check_errors == 1


def test_an_error_before_reading_closes_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(request: http.Request, response: http.Response) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(page_check, "is_page_to_check", broken)
    addon, flow = CheckPages(), flow_for("pupil")
    addon.responseheaders(flow)
    assert flow.error is not None  # killed: nothing of the page is passed on
    assert addon.stats.page_check_errors == 1
