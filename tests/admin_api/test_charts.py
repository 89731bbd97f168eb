"""The DSL's reports (admin_api/reports.py, services/reports.py, svg.py) on SQLite and
PostgreSQL: the numbers per school day against the seeded rows (the school's midnight in
summer time), the inline SVG (escaped, no script), the weekly summary and its CSV."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI

from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.svg import ranking_bars, stacked_bars
from tests.admin_api.conftest import client_for
from tests.admin_api.monitoring_seed import Seed, seed_events

LONDON = ZoneInfo("Europe/London")
# 22:50-23:10 UTC on 26 October 2030 is 23:50-00:10 in London (still summer time; the clocks
# go back at 02:00 that night): the seed crosses the school's midnight, not UTC's.
DST_START = datetime(2030, 10, 26, 22, 50, tzinfo=UTC)


@pytest.fixture(scope="module")
def seed(resources: Resources) -> Seed:
    return seed_events(resources.sessions, count=6000, start=DST_START)


def _local_days(rows: list[dict[str, object]]) -> Counter[date]:
    return Counter(r["at"].astimezone(LONDON).date() for r in rows)  # type: ignore[attr-defined]


def test_blocked_and_attempts_per_day_are_counted_on_the_schools_days(
    app: FastAPI, seed: Seed
) -> None:
    client, _ = client_for(app, "dsl")
    body = client.get(
        "/api/monitoring/charts", params={"from": "2030-10-26", "to": "2030-10-28"}
    ).json()
    days = [date.fromisoformat(d) for d in body["blocked_per_day"]["days"]]
    assert days == [date(2030, 10, 26), date(2030, 10, 27), date(2030, 10, 28)]
    blocked = _local_days([e for e in seed.events if e["verdict"] == "block"])
    totals = [
        sum(values[i] for values in body["blocked_per_day"]["series"].values()) for i in range(3)
    ]
    assert totals == [blocked[d] for d in days]
    assert blocked[date(2030, 10, 26)] > 0
    assert blocked[date(2030, 10, 27)] > 0
    by_category = Counter(e["category"] for e in seed.events if e["verdict"] == "block")
    for category, count in by_category.items():
        assert sum(body["blocked_per_day"]["series"][str(category)]) == count
    counted = _local_days([a for a in seed.attempts if a["counted"]])
    assert body["attempts_per_day"]["series"]["attempts"] == [counted[d] for d in days]
    top = dict(body["top_users_by_attempts"])
    expected = Counter(a["user"] for a in seed.attempts if a["counted"])
    for user, count in expected.items():
        assert top[user] == count


def test_the_charts_page_draws_inline_svg_and_the_numbers(app: FastAPI, seed: Seed) -> None:
    client, _ = client_for(app, "dsl")
    page = client.get("/monitoring/charts", params={"from": "2030-10-26", "to": "2030-10-28"})
    assert page.status_code == 200
    assert page.text.count("<svg") == 3
    assert "<script" not in page.text
    assert "Websites blocked per day, by kind" in page.text
    assert seed.users()[0] in page.text  # top users


def test_the_weekly_summary_and_its_csv_agree_with_the_rows(app: FastAPI, seed: Seed) -> None:
    client, _ = client_for(app, "dsl")
    week = client.get("/api/monitoring/weekly", params={"week": "2030-10-27"}).json()
    assert week["first"] == "2030-10-21"  # the Monday
    assert week["last"] == "2030-10-27"
    in_week = [e for e in seed.events if e["at"].astimezone(LONDON).date() <= date(2030, 10, 27)]
    ours_blocked = sum(1 for e in in_week if e["verdict"] == "block")
    assert week["blocked"] >= ours_blocked > 0
    answer = client.get("/monitoring/weekly.csv", params={"week": "2030-10-23"})
    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["section", "item", "value"]
    flat = {(r[0], r[1]): int(r[2]) for r in rows[1:]}
    assert flat[("totals", "blocked requests")] == week["blocked"]
    assert flat[("totals", "events")] == week["events"]
    assert (
        flat[("blocked on 2030-10-27", "social")] == week["blocked_per_day"]["series"]["social"][6]
    )
    page = client.get("/monitoring/weekly", params={"week": "2030-10-27"})
    assert page.status_code == 200
    assert 'href="/monitoring/weekly?week=2030-10-14"' in page.text
    assert page.text.count("<svg") == 2


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2030-13-01"},
        {"to": "yesterday"},
        {"from": "2030-01-10", "to": "2030-01-01"},
        {"from": "2029-01-01", "to": "2030-01-01"},
        {"week": "\x00"},
        {"week": "2030-02-30"},
    ],
)
def test_bad_dates_get_a_clear_answer(app: FastAPI, params: dict[str, str]) -> None:
    client, _ = client_for(app, "dsl")
    for path in (
        "/api/monitoring/charts",
        "/monitoring/charts",
        "/api/monitoring/weekly",
        "/monitoring/weekly.csv",
    ):
        answer = client.get(path, params=params)
        assert answer.status_code in (200, 422), (path, answer.status_code)
        if path.endswith("charts") and set(params) != {"week"}:
            assert answer.status_code == 422


def test_the_svg_escapes_every_text_and_scales_its_bars() -> None:
    days = (date(2030, 1, 6), date(2030, 1, 7))
    svg = str(
        stacked_bars(
            title="Blocked <b>", days=days, series={"<script>x</script>": (3, 0), "social": (1, 4)}
        )
    )
    assert "<script>x" not in svg
    assert "&lt;script&gt;x&lt;/script&gt;" in svg
    assert "Blocked &lt;b&gt;" in svg
    heights = [
        float(h)
        for h in re.findall(
            r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" '
            r'height="([\d.]+)"',
            svg,
        )
    ]
    # three bars drawn (a zero is not), then the two legend keys; bars scale with the counts
    assert len(heights) == 5
    assert heights[0] == pytest.approx(3 * heights[1])
    assert heights[2] == pytest.approx(4 * heights[1])
    ranking = str(ranking_bars(title="Top", items=[('"quoted" & <tag>', 5), ("b", 1)]))
    assert "&#34;quoted&#34; &amp; &lt;tag&gt;" in ranking
    assert "None in this period." in str(ranking_bars(title="Top", items=[]))


def test_an_empty_span_draws_an_empty_chart() -> None:
    svg = str(stacked_bars(title="Nothing", days=(date(2030, 1, 6),), series={}))
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert "<rect" not in svg


@pytest.mark.parametrize("top", [1, 3, 7, 8, 10, 13, 99, 250])
def test_the_axis_ticks_are_whole_even_steps_a_bar_can_be_read_against(top: int) -> None:
    # UX review: ticks were rounded to 0, 2, 5, 7, 10, so a bar of 8 sat between "7" and "10".
    svg = str(stacked_bars(title="t", days=[date(2026, 12, 7)], series={"social": [top]}))
    ticks = [
        (float(y), int(n))
        for y, n in re.findall(
            r'<text x="\d+" y="([\d.]+)" text-anchor="end"[^>]*>(\d+)</text>', svg
        )
    ]
    values = [n for _y, n in ticks]
    step = values[1] - values[0]
    assert values == [step * i for i in range(len(values))]  # 0 and equal whole steps
    assert values[-1] >= top > values[-1] - step  # the top tick is the first at or above
    assert 2 <= len(values) <= 5
    bottom_y, top_y = ticks[0][0], ticks[-1][0]
    for y, n in ticks:  # each label sits where its value is drawn
        assert abs(y - (bottom_y + (top_y - bottom_y) * n / values[-1])) < 0.2
