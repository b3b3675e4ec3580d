"""Small charts as inline SVG, drawn on the server (no JavaScript, no CDN).

Every text that goes into the SVG is escaped; each bar or point carries a
``<title>`` (the browser's tooltip) with its exact value, and the chart has an
``aria-label`` so a screen reader announces what it shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 34
BAR_COLOUR, LINE_COLOUR, GRID_COLOUR, TEXT_COLOUR = "#417690", "#ba2121", "#e5e7eb", "#4b5563"


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at least ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value * (1 - 1e-9))


def _frame(label: str, y_max: float, fmt: Callable[[float], str], x_labels: Sequence[tuple[float, str]]) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
             f'role="img" aria-label="{escape(label)}" class="analytics-chart" '
             f'style="max-width:{WIDTH}px;font:11px sans-serif">']
    for i in range(5):
        value = y_max * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID_COLOUR}"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{TEXT_COLOUR}">'
                     f'{escape(fmt(value))}</text>')
    for x, text in x_labels:
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" fill="{TEXT_COLOUR}">'
                     f'{escape(text)}</text>')
    return parts


def _tick_indexes(n: int, most: int = 8) -> list[int]:
    if n <= most:
        return list(range(n))
    step = -(-n // most)
    return list(range(0, n, step))


def bar_chart(points: Sequence[tuple[str, float]], *, label: str, fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
              tooltip: Callable[[str, float], str] | None = None) -> SafeString:
    """Vertical bars, one per ``(x label, value)``.

    Args:
        points: The bars, left to right.
        label: What the chart shows (its accessible name).
        fmt: Formats the axis values.
        tooltip: The text of a bar's tooltip (default ``"label: value"``).
    """
    n = max(len(points), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    y_max = _nice_max(max((v for _x, v in points), default=0))
    slot = plot_w / n
    ticks = [(LEFT + slot * (i + 0.5), points[i][0]) for i in _tick_indexes(len(points))]
    parts = _frame(label, y_max, fmt, ticks)
    for i, (x_label, value) in enumerate(points):
        h = plot_h * (value / y_max)
        x = LEFT + slot * i + slot * 0.12
        tip = tooltip(x_label, value) if tooltip else f"{x_label}: {fmt(value)}"
        parts.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.76:.1f}" height="{h:.1f}" '
                     f'fill="{BAR_COLOUR}"><title>{escape(tip)}</title></rect>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def percent(value: float) -> str:
    """``0.1`` → ``"10%"``, ``0.025`` → ``"2.5%"``."""
    text = f"{value * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def line_chart(points: Sequence[tuple[str, float | None]], *, label: str,
               fmt: Callable[[float], str] = percent) -> SafeString:
    """A line through ``(x label, value)`` points; ``None`` values break the line
    (a day with nothing to measure is not a zero)."""
    n = max(len(points), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    y_max = _nice_max(max((v for _x, v in points if v is not None), default=0))
    slot = plot_w / n
    ticks = [(LEFT + slot * (i + 0.5), points[i][0]) for i in _tick_indexes(len(points))]
    parts = _frame(label, y_max, fmt, ticks)
    runs: list[list[tuple[float, float]]] = [[]]
    for i, (x_label, value) in enumerate(points):
        if value is None:
            runs.append([])
            continue
        x, y = LEFT + slot * (i + 0.5), TOP + plot_h - plot_h * (value / y_max)
        runs[-1].append((x, y))
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{LINE_COLOUR}">'
                     f'<title>{escape(f"{x_label}: {fmt(value)}")}</title></circle>')
    for run in runs:
        if len(run) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{LINE_COLOUR}" stroke-width="2"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped
