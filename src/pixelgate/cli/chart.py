"""A usage series (``GET /admin/usage/series``) as a bar chart in the terminal: one row per bucket from
``since`` to ``until`` (empty ones too), each group a segment of the bar, told apart by colour and, for
readers without colour, by its own shade of block."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

METRICS = {"cost": "cost_usd", "images": "images", "tokens": "total_tokens"}
BAR = 40  # cells for the largest bucket
PARTS = " ▏▎▍▌▋▊▉"  # eighths of a cell, for a bar of one series
SHADES = ("█", "▓", "▒", "░", "▚", "▞", "▖", "▗")
COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta")


def usage_chart(series: dict[str, Any], metric: str) -> Group:
    field = METRICS[metric]
    width = series["bucket_seconds"]
    starts = range(series["since"], int(series["until"]), width)
    values: dict[int, dict[Any, float]] = {start: {} for start in starts}
    for point in series["data"]:
        values.setdefault(point["start"], {})[point["group"]] = point[field]
    totals: dict[Any, float] = {}
    for point in series["data"]:
        totals[point["group"]] = totals.get(point["group"], 0) + point[field]
    groups = sorted(totals, key=lambda g: (-totals[g], str(g)))
    largest = max((sum(bucket.values()) for bucket in values.values()), default=0) or 1
    grouped = series["group_by"] is not None
    title = f"pixelgate usage per {series['bucket']}: {metric} of succeeded tasks (UTC)"
    chart = Table(show_header=True, box=None, padding=(0, 1))
    chart.add_column(series["bucket"], no_wrap=True)
    chart.add_column(metric, justify="right", no_wrap=True)
    chart.add_column("", no_wrap=True, min_width=BAR)
    for start in sorted(values):
        bucket = values[start]
        amount = sum(bucket.values())
        bar = _stacked(bucket, groups, largest) if grouped else _smooth(amount, largest)
        chart.add_row(_label(start, series["bucket"]), _amount(amount, metric), bar)
    chart.add_row("total", _amount(sum(totals.values()), metric), "", style="bold")
    parts: list[Any] = [Text(title, style="bold"), chart]
    if grouped:
        parts.append(Text.from_markup(f"by {series['group_by']}:"))
        parts += [
            Text.from_markup(
                f"  [{COLOURS[i % len(COLOURS)]}]{SHADES[i % len(SHADES)]}[/] {escape(str(group))} "
                f"({_amount(totals[group], metric)})"
            )
            for i, group in enumerate(groups)
        ]
    return Group(*parts)


def _label(start: int, bucket: str) -> str:
    moment = datetime.fromtimestamp(start, UTC)
    return moment.strftime("%Y-%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d")


def _amount(value: float, metric: str) -> str:
    return f"${value:,.4f}" if metric == "cost" else f"{int(value):,}"


def _smooth(value: float, largest: float) -> str:
    eighths = round(value / largest * BAR * 8)
    return "█" * (eighths // 8) + (PARTS[eighths % 8].strip() if eighths % 8 else "")


def _stacked(bucket: dict[Any, float], groups: list[Any], largest: float) -> str:
    """Each group's share as whole cells; boundaries rounded from running sums, so that the bar's
    length is the bucket's whatever its groups."""
    bar, done, running = "", 0, 0.0
    for i, group in enumerate(groups):
        running += bucket.get(group, 0)
        cells = round(running / largest * BAR) - done
        if cells > 0:
            bar += f"[{COLOURS[i % len(COLOURS)]}]{SHADES[i % len(SHADES)] * cells}[/]"
            done += cells
    return bar
