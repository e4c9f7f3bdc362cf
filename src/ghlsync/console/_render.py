"""Templates (Jinja2, autoescaped) and the helpers they use: times, the 24 h chart."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

__all__ = ["ago", "chart_svg", "environment"]

_CHART_W, _CHART_H = 240, 48


def environment() -> Environment:
    """The console's template environment: autoescaping on for every template."""
    env = Environment(
        loader=PackageLoader("ghlsync.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ago"] = ago
    env.filters["when"] = when
    env.filters["duration"] = duration
    env.globals["chart_svg"] = chart_svg
    return env


def when(epoch: float | None) -> str:
    """`2026-12-06 02:31 UTC`, or an en dash."""
    if epoch is None:
        return "–"
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(epoch: float | None, now: float | None = None) -> str:
    """`5 min ago` and the like."""
    if epoch is None:
        return "never"
    return duration((now or time.time()) - float(epoch)) + " ago"


def duration(seconds: float | None) -> str:
    """`42 s`, `7 min`, `3 h`, `2 days`."""
    if seconds is None:
        return "–"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 172800:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


def chart_svg(series: dict[str, list[int]], label: str) -> Markup:
    """A small inline SVG: events in and out as lines, dead letters as red bars, per hour.

    Built from numbers only (no text from the store), with a text alternative for screen
    readers in `<title>`.
    """
    values = [*series["in"], *series["out"], *series["dead"]]
    top = max([1, *values])
    hours = len(series["in"])
    step = _CHART_W / max(1, hours - 1)

    def y(v: int) -> float:
        return round(_CHART_H - 2 - (v / top) * (_CHART_H - 4), 1)

    def line(points: list[int], css: str) -> str:
        coords = " ".join(f"{round(i * step, 1)},{y(v)}" for i, v in enumerate(points))
        return f'<polyline class="{css}" points="{coords}" />'

    bars = "".join(
        f'<rect class="dead" x="{round(i * step - 2, 1)}" y="{y(v)}" width="4" '
        f'height="{round(_CHART_H - 2 - y(v), 1)}" />'
        for i, v in enumerate(series["dead"])
        if v
    )
    title = Markup.escape(label)
    # Safe: numbers and fixed class names only; the one text (`label`) is escaped above.
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="-3 0 {_CHART_W + 6} {_CHART_H}" role="img" '
        f'aria-label="{title}"><title>{title}</title>'
        f"{bars}{line(series['in'], 'in')}{line(series['out'], 'out')}</svg>"
    )


def context(**values: Any) -> dict[str, Any]:
    """Template variables (a seam for values every page gets)."""
    return values
