"""Usage over time, from the ledger (``GET /admin/usage/series``): what succeeded tasks spent, made and
used, per hour or per UTC day, optionally per model, key, owner or dialect.

A task counts in the bucket of the moment it was accepted (the ledger's ``created_at``, as ``/v1/usage``'s
``day`` is the day it was accepted), so a day's bucket sums to that day's row of ``/v1/usage``. Buckets
are cut with integer arithmetic on the Unix time (``floor(t) / width * width``, the division an integer
one on both databases), never with a database's date functions, so SQLite and PostgreSQL put every task
in the same bucket. Only buckets with usage are listed; ``since`` (rounded down to a bucket's start) and
``until`` say which ones a chart shows empty.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from pixelgate.core.errors import InvalidRequest, one_of
from pixelgate.store.db import Database
from pixelgate.store.schema import usage

BUCKETS = {"hour": 3600, "day": 86400}
DEFAULT_SPAN = {"hour": 24, "day": 30}  # buckets shown when ``since`` is left out
MAX_BUCKETS = 5000  # about seven months of hours, thirteen years of days
SERIES_GROUPS: dict[str, sa.ColumnElement[Any]] = {
    "model": usage.c.model,
    "key": usage.c.key_id,
    "owner": usage.c.owner,
    "dialect": usage.c.dialect,
}
SUMMED = ("images", "input_tokens", "output_tokens", "total_tokens", "cost_usd")
SETTLED = "settled"


async def usage_series(
    db: Database,
    *,
    bucket: str = "day",
    since: float | None = None,
    until: float | None = None,
    group_by: str | None = None,
) -> dict[str, Any]:
    width = BUCKETS.get(bucket)
    if width is None:
        raise InvalidRequest(
            f"bucket {bucket[:40]!r} is not known: use {one_of(tuple(BUCKETS))}",
            param="bucket",
            code="invalid_bucket",
        )
    if group_by is not None and group_by not in SERIES_GROUPS:
        raise InvalidRequest(
            f"group_by {group_by[:40]!r} is not known: use {one_of(tuple(SERIES_GROUPS))}, or leave it out "
            "for one series",
            param="group_by",
            code="invalid_group",
        )
    end = int(time.time()) + 1 if until is None else until
    start = end - width * DEFAULT_SPAN[bucket] if since is None else since
    start = int(start) // width * width
    if end <= start:
        raise InvalidRequest(
            f"until {end:.0f} is not after since {start} (since rounded down to its {bucket}'s start): give "
            "a since before until",
            param="until",
            code="invalid_range",
        )
    if (end - start) / width > MAX_BUCKETS:
        raise InvalidRequest(
            f"since {start} to until {end:.0f} spans {(end - start) / width:,.0f} {bucket}s: at most "
            f"{MAX_BUCKETS:,} buckets are served; use a later since"
            + (" or bucket=day" if bucket == "hour" else ""),
            param="since",
            code="invalid_range",
        )
    whole_seconds = (
        sa.cast(sa.func.floor(usage.c.created_at), sa.BigInteger)
        if db.is_postgres
        else sa.cast(usage.c.created_at, sa.Integer)  # truncation: floor for any time after 1970
    )
    # Inline numbers: PostgreSQL matches the GROUP BY to the select list by their text, and two bound
    # parameters with one value are not the same text.
    width_sql = sa.literal_column(str(width), sa.BigInteger)
    bucket_start = ((whole_seconds // width_sql) * width_sql).label("start")
    group = SERIES_GROUPS[group_by].label("group") if group_by else sa.null().label("group")
    sums = [
        sa.func.count().label("tasks"),
        *(sa.func.coalesce(sa.func.sum(usage.c[name]), 0).label(name) for name in SUMMED),
    ]
    grouping = [bucket_start, group] if group_by else [bucket_start]
    query = (
        sa.select(bucket_start, group, *sums)
        .where(usage.c.state == SETTLED, usage.c.created_at >= start, usage.c.created_at < end)
        .group_by(*grouping)
        .order_by(*grouping)
    )
    async with db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    data = [{"start": int(row.start), "group": row.group, **_sums(row[2:])} for row in rows]
    total = _sums([sum(point[name] for point in data) for name in ("tasks", *SUMMED)])
    return {
        "object": "usage.series",
        "bucket": bucket,
        "bucket_seconds": width,
        "since": start,
        "until": int(end) if float(end).is_integer() else round(end, 3),
        "group_by": group_by,
        "data": data,
        "total": total,
    }


def _sums(values: Any) -> dict[str, Any]:
    tasks, images, input_tokens, output_tokens, total_tokens, cost = values
    return {
        "tasks": int(tasks),
        "images": int(images),
        "input_tokens": int(input_tokens),
        "output_tokens": int(output_tokens),
        "total_tokens": int(total_tokens),
        "cost_usd": round(float(cost), 6),
    }
