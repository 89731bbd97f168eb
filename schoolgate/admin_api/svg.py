"""Charts as inline SVG, drawn in Python: stacked bars per day and horizontal bars for a ranking.
No JavaScript and nothing fetched from elsewhere (the admin's CSP allows neither); colours are
presentation attributes, not style attributes, for the same reason. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from markupsafe import Markup, escape

# Colour-blind-safe (Okabe-Ito), then greys for anything beyond.
PALETTE = (
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#56b4e9",
    "#d55e00",
    "#f0e442",
    "#505a5f",
    "#b1b4b6",
)
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def colour(index: int) -> str:
    return PALETTE[min(index, len(PALETTE) - 1)]


def _axis(value: int) -> tuple[int, int]:
    """(top, step) of the y axis: the step is 1, 2 or 5 x 10^n, at most four steps reach
    `value`, and the top is the first whole step at or above it (ticks are whole numbers)."""
    if value <= 0:
        return 4, 1
    scale = 1
    while True:
        for step in (scale, 2 * scale, 5 * scale):
            if step * 4 >= value:
                return step * -(-value // step), step
        scale *= 10


def stacked_bars(
    *,
    title: str,
    days: Sequence[date],
    series: Mapping[str, Sequence[int]],
    width: int = 760,
    height: int = 280,
) -> Markup:
    """One bar per day, stacked by series, with a legend; a figure a screen reader reads by
    its title (the page shows the same numbers as a table)."""
    left, right, top, bottom = 44, 10, 28, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    y_max, step = _axis(max(totals, default=0))
    slot = plot_w / max(len(days), 1)
    bar = max(min(slot * 0.7, 40), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for value in range(0, y_max + 1, step):
        y = top + plot_h - plot_h * value / y_max
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dddddd"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{value}</text>'
        )
    for i, day in enumerate(days):
        x = left + slot * i + (slot - bar) / 2
        y = top + plot_h
        for index, (name, values) in enumerate(series.items()):
            if values[i] <= 0:
                continue
            h = plot_h * values[i] / y_max
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour(index)}"><title>{escape(day.isoformat())} '
                f"{escape(name)}: {values[i]}</title></rect>"
            )
        if len(days) <= 16 or i % max(len(days) // 12, 1) == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 16}" '
                f'text-anchor="middle" {FONT}>{day:%d %b}</text>'
            )
    legend_x = left
    for index, name in enumerate(series):
        parts.append(
            f'<rect x="{legend_x}" y="{height - 16}" width="12" height="12" '
            f'fill="{colour(index)}"/>'
        )
        parts.append(f'<text x="{legend_x + 16}" y="{height - 6}" {FONT}>{escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    parts.append(f'<text x="{left}" y="16" {FONT} font-weight="bold">{escape(title)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - each text in it went through escape()


def ranking_bars(
    *, title: str, items: Sequence[tuple[str, int]], width: int = 760, bar_height: int = 22
) -> Markup:
    """Horizontal bars, largest first, each labelled with its name and count."""
    label_w, top = 220, 28
    height = top + bar_height * max(len(items), 1) + 10
    most = max((count for _, count in items), default=0) or 1
    plot_w = width - label_w - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" {FONT} font-weight="bold">{escape(title)}</text>',
    ]
    if not items:
        parts.append(f'<text x="0" y="{top + 14}" {FONT}>None in this period.</text>')
    for row, (name, count) in enumerate(items):
        y = top + row * bar_height
        w = plot_w * count / most
        shown = name if len(name) <= 30 else name[:29] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" {FONT}>{escape(shown)}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" '
            f'height="{bar_height - 6}" fill="{colour(0)}"><title>{escape(name)}: '
            f"{count}</title></rect>"
        )
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" {FONT}>{count}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - each text in it went through escape()
