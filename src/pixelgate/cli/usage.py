"""``pixelgate usage``: what has been billed (succeeded tasks only). A table of sums from ``GET /v1/usage``
(any key: its owner's usage; the admin key: everyone's), or with ``--chart`` a bar per hour or day from
``GET /admin/usage/series`` (admin key)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from pixelgate.cli.chart import METRICS, usage_chart
from pixelgate.cli.client import DEFAULT_SERVER, AdminKeyOption, JsonOption, ServerOption, call, client
from pixelgate.cli.output import bad_usage, show, show_json, table
from pixelgate.cli.when import parse_when
from pixelgate.core.days import utc_day

CHART_GROUPS = ("model", "key", "owner", "dialect")
HOURLY_UP_TO = 2 * 86400  # the longest span --chart draws per hour unless --bucket says


def usage(
    group_by: Annotated[
        str | None,
        typer.Option(
            help="Table: any of key, owner, model, dialect, day, comma-separated [default: model,day]; "
            "--chart: one of model, key, owner, dialect [default: none, one bar]"
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="From: 30m, 12h, 7d, 2w back, a UTC date or time, or Unix seconds (the table counts whole UTC days)"
        ),
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to (as --since) [default: now]")] = None,
    start: Annotated[str | None, typer.Option(help="Table: first day, YYYY-MM-DD (UTC)")] = None,
    end: Annotated[str | None, typer.Option(help="Table: last day, YYYY-MM-DD (UTC)")] = None,
    owner: Annotated[str | None, typer.Option(help="Table: one owner's usage (with the admin key)")] = None,
    chart: Annotated[
        bool, typer.Option("--chart", help="A bar chart over time (admin key) [default span: 30 days]")
    ] = False,
    bucket: Annotated[
        str | None, typer.Option(help="--chart: hour or day [default: hour for 2 days or less, else day]")
    ] = None,
    metric: Annotated[str, typer.Option(help="--chart: cost, images or tokens")] = "cost",
    server: ServerOption = DEFAULT_SERVER,
    api_key: Annotated[
        str | None, typer.Option(envvar=["PIXELGATE_API_KEY", "PIXELGATE_ADMIN_KEY"], help="API key")
    ] = None,
    admin_key: AdminKeyOption = None,
    json_out: JsonOption = False,
) -> None:
    """What has been billed (succeeded tasks only), as sums or, with --chart, as bars over time.

    The table sums by key, owner, model, dialect or day (GET /v1/usage: a key sees its owner's usage, the
    admin key everyone's); --chart draws one bar per hour or day (GET /admin/usage/series, admin key)."""
    since_at = parse_when(since, "--since") if since else None
    until_at = parse_when(until, "--until") if until else None
    if chart:
        _chart(group_by, since_at, until_at, bucket, metric, server, admin_key or api_key, json_out)
        return
    for flag, value in (("--bucket", bucket), ("--metric", None if metric == "cost" else metric)):
        if value is not None:
            bad_usage(f"{flag} {value} draws the chart: add --chart, or leave {flag} out for the table")
    if since_at is not None and start is not None:
        bad_usage("give --since or --start, not both")
    if until_at is not None and end is not None:
        bad_usage("give --until or --end, not both")
    params = {
        "group_by": group_by or "model,day",
        "start": start or (utc_day(since_at) if since_at is not None else None),
        "end": end or (utc_day(until_at) if until_at is not None else None),
        "owner": owner,
    }
    with client(server, api_key) as http:
        report = call(http, "GET", "/v1/usage", params={k: v for k, v in params.items() if v})
    if json_out:
        show_json(report)
        return
    from pixelgate.catalog.prices import usd_text

    groups = report["group_by"]
    sums = (
        "tasks", "images", "input text", "input images", "output text", "output images", "thoughts", "cost (USD)",
    )  # fmt: skip
    shown = table("pixelgate usage (succeeded tasks)", *groups, *sums, right=sums)

    def row(summed: dict[str, Any], label: list[str]) -> list[str]:
        given, made = summed["input_tokens_details"], summed["output_tokens_details"]
        numbers = (
            summed["tasks"],
            summed["images"],
            given["text_tokens"],
            given["image_tokens"],
            made["text_tokens"],
            made["image_tokens"],
            made["thought_tokens"],
        )
        return [*label, *(f"{number:,}" for number in numbers), usd_text(summed["cost_usd"])]

    for summed in report["data"]:
        shown.add_row(*row(summed, [str(summed[g]) if summed[g] is not None else "-" for g in groups]))
    shown.add_row(*row(report["total"], ["total", *[""] * (len(groups) - 1)] if groups else []), style="bold")
    show(shown)


def _chart(
    group_by: str | None,
    since: float | None,
    until: float | None,
    bucket: str | None,
    metric: str,
    server: str,
    key: str | None,
    json_out: bool,
) -> None:
    if group_by is not None and group_by not in CHART_GROUPS:
        bad_usage(
            f"--group-by {group_by!r} is not one of model, key, owner, dialect: --chart draws one bar per "
            "hour or day, split by at most one of them"
        )
    if metric not in METRICS:
        bad_usage(f"--metric {metric!r} is not known: use cost, images or tokens")
    if bucket is not None and bucket not in ("hour", "day"):
        bad_usage(f"--bucket {bucket!r} is not known: use hour or day")
    if bucket is None:
        span = (until or time.time()) - since if since is not None else None
        bucket = "hour" if span is not None and span <= HOURLY_UP_TO else "day"
    params = {"bucket": bucket, "since": since, "until": until, "group_by": group_by}
    with client(server, key) as http:
        series = call(
            http, "GET", "/admin/usage/series", params={k: v for k, v in params.items() if v is not None}
        )
    if json_out:
        show_json(series)
        return
    show(usage_chart(series, metric))
