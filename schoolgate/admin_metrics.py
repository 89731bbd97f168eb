"""Prometheus metrics for the admin service: unblock requests waiting, alerts open (counted in the
shared database at scrape time) and request latency by route, served at the admin's /metrics.

Wiring (one line where the admin app is made): `install_admin_metrics(app, engine)`, with the
admin's own engine (whoever made it disposes of it; no second pool to the same database).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"  # route label for paths no route matched (never the raw path)
SEVERITIES = ("low", "medium", "high")

PENDING_SQL = text("SELECT COUNT(*) FROM unblock_requests WHERE state = 'pending'")
OLDEST_SQL = text("SELECT MIN(created_at) FROM unblock_requests WHERE state = 'pending'")
ALERTS_SQL = text("SELECT severity, COUNT(*) FROM alerts WHERE state = 'open' GROUP BY severity")


class AdminCollector(Collector):
    """Counts what is waiting for people, at scrape time (two indexed COUNTs)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "schoolgate_admin_database_up",
            "1 if the admin could count requests and alerts in the database.",
        )
        try:
            with self._engine.connect() as conn:
                pending = int(conn.execute(PENDING_SQL).scalar_one())
                oldest = conn.execute(OLDEST_SQL).scalar_one()
                alerts = {str(s): int(n) for s, n in conn.execute(ALERTS_SQL).all()}
        except SQLAlchemyError as exc:
            logger.warning("counting requests and alerts for /metrics failed: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        waiting = GaugeMetricFamily(
            "schoolgate_admin_unblock_requests_pending",
            "Unblock requests waiting for the business manager.",
        )
        waiting.add_metric([], float(pending))
        yield waiting
        since = GaugeMetricFamily(
            "schoolgate_admin_unblock_request_oldest_pending_timestamp_seconds",
            "When the oldest waiting unblock request was made (Unix time); 0 if none waits.",
        )
        since.add_metric([], _timestamp(oldest))
        yield since
        open_alerts = GaugeMetricFamily(
            "schoolgate_admin_alerts_open",
            "Circumvention alerts not yet reviewed by the DSL.",
            labels=["severity"],
        )
        for severity in SEVERITIES:
            open_alerts.add_metric([severity], float(alerts.get(severity, 0)))
        yield open_alerts


class RequestTimer:
    """ASGI middleware: a latency histogram by method, route template and status class."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope.get("method", "GET")
            self.histogram.labels(
                method if method in _METHODS else "other", route, f"{status // 100}xx"
            ).observe(time.perf_counter() - started)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def install_admin_metrics(
    app: FastAPI, engine: Engine, *, registry: CollectorRegistry | None = None
) -> CollectorRegistry:
    """Add the latency middleware, the database counts and GET /metrics to the admin app."""
    registry = registry or CollectorRegistry()
    histogram = Histogram(
        "schoolgate_admin_request_seconds",
        "Admin requests: time to the last byte, by route and status class.",
        ["method", "route", "status"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    registry.register(AdminCollector(engine))
    app.add_middleware(RequestTimer, histogram=histogram)

    def metrics(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    return registry


def _timestamp(value: Any) -> float:
    if value is None:
        return 0.0
    if not isinstance(value, datetime):  # SQLite may hand back text
        value = datetime.fromisoformat(str(value))
    return float((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
