"""The usage ledger, and the limits that are counted from it.

Every task has one row: *reserved* when it is accepted (its cost estimated from the catalog's prices),
*settled* with what it made when it succeeds, *released* at no cost when it fails or is cancelled. The
settling happens in the same database transaction as the task's own change of state, so the ledger can
never disagree with the tasks: totals are sums of settled rows, and a failure costs nothing.

A key's concurrent tasks, images per day and credit budget are counted here, in the database, at the
moment a task is reserved: exact, durable and shared by every process on that database. Reservations for
one key are serialized by first writing to the key's own row (a row lock in PostgreSQL, the write lock in
SQLite), so a burst of requests cannot all pass the check before any is counted.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pixelgate.catalog.prices import usd
from pixelgate.core import metrics
from pixelgate.core.days import seconds_to_midnight, utc_day
from pixelgate.core.errors import InvalidRequest, QuotaExceeded, RateLimited, one_of
from pixelgate.core.task import Usage
from pixelgate.store.db import Database
from pixelgate.store.schema import api_keys, usage

RESERVED, SETTLED, RELEASED = "reserved", "settled", "released"
# Built once, given their values as parameters (see tasks/queue.py: a quarter of the CPU of ``.values()``).
_TOUCH_KEY = api_keys.update().where(api_keys.c.id == sa.bindparam("touched_key"))
_SETTLE = usage.update().where(usage.c.task_id == sa.bindparam("settled_task"), usage.c.state == RESERVED)
BATCH_SUFFIX = "-batch"  # a batch line's usage row: its dialect and this, e.g. "openai-batch"
GROUPS = ("key", "owner", "model", "dialect", "day")


@dataclass(frozen=True)
class KeyLimits:
    requests_per_minute: int | None = None
    concurrent_tasks: int | None = None
    images_per_day: int | None = None
    credit_budget_usd: float | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> KeyLimits:
        return cls(**{k: v for k, v in (record or {}).items() if k in cls.__dataclass_fields__})

    def to_record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class Ledger:
    def __init__(self, db: Database, *, max_tasks_per_key: int | None = None) -> None:
        self.db = db
        # Queued or running tasks per key whose own concurrent_tasks limit is unset: a key that floods the
        # queue cannot hold it alone.
        self.max_tasks_per_key = max_tasks_per_key

    def reserve(
        self,
        *,
        task_id: str,
        key_id: str | None,
        owner: str | None,
        limits: KeyLimits,
        model: str,
        dialect: str,
        images: int,
        estimate_usd: float,
        now: float | None = None,
        batch_line: bool = False,
        conn: Connection,
    ) -> None:
        """Count a task that is being accepted, in ``conn``'s transaction (the one that saves the task,
        so that a crash leaves both or neither); raise if the key's limits do not allow it. A batch line
        is not held to the key's concurrent tasks (its batch keeps a window of them; that is the batch's
        higher rate limit), but to its daily images and its budget like any task."""
        now = time.time() if now is None else now
        day = utc_day(now)
        if key_id is not None:
            conn.execute(_TOUCH_KEY, {"touched_key": key_id, "last_used_at": now})
            _check_limits(
                conn,
                key_id,
                limits,
                images,
                estimate_usd,
                now,
                day,
                None if batch_line else self.max_tasks_per_key,
                count_concurrent=not batch_line,
            )
        conn.execute(
            usage.insert(),
            {
                "task_id": task_id,
                "key_id": key_id,
                "owner": owner,
                "model": model,
                "dialect": dialect,
                "day": day,
                "state": RESERVED,
                "images": images,
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "cost_usd": estimate_usd,
                "created_at": now,
            },
        )

    async def report(
        self,
        *,
        owner: str | None,
        everyone: bool,
        group_by: tuple[str, ...],
        start: str | None = None,
        end: str | None = None,
    ) -> dict[str, Any]:
        """Settled usage summed by the ``group_by`` columns (of ``GROUPS``), for one owner or everyone."""
        for group in group_by:
            if group not in GROUPS:
                raise InvalidRequest(
                    f"group_by {group!r} is not known: use {one_of(GROUPS)}",
                    param="group_by",
                    code="invalid_group",
                )
        for name, day in (("start", start), ("end", end)):
            if day is not None:
                try:
                    datetime.strptime(day, "%Y-%m-%d")
                except ValueError:
                    raise InvalidRequest(
                        f"{name} {day!r} is not a date: use YYYY-MM-DD (UTC)", param=name, code="invalid_date"
                    ) from None
        columns = [usage.c.key_id if g == "key" else usage.c[g] for g in group_by]
        sums = [
            sa.func.count().label("tasks"),
            *(sa.func.coalesce(sa.func.sum(usage.c[f]), 0).label(f) for f in _SUMMED),
        ]
        query = sa.select(*columns, *sums).where(usage.c.state == SETTLED)
        if not everyone:
            query = query.where(usage.c.owner.is_(None) if owner is None else usage.c.owner == owner)
        if start is not None:
            query = query.where(usage.c.day >= start)
        if end is not None:
            query = query.where(usage.c.day <= end)
        if columns:
            query = query.group_by(*columns).order_by(*columns)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        data = [
            _bucket(dict(zip(group_by, row[: len(group_by)], strict=True)), row[len(group_by) :])
            for row in rows
        ]
        total = _bucket({}, [sum(row[len(group_by) + i] for row in rows) for i in range(1 + len(_SUMMED))])
        return {"object": "list", "group_by": list(group_by), "data": data, "total": total}


MODALITIES = (
    "input_text_tokens",
    "input_image_tokens",
    "output_text_tokens",
    "output_image_tokens",
    "thought_tokens",
)
_SUMMED = ("images", "input_tokens", "output_tokens", "total_tokens", *MODALITIES, "cost_usd")


def _bucket(keys: dict[str, Any], values: Any) -> dict[str, Any]:
    """One report row: the tokens by modality as Gemini's usageMetadata splits them (input text and images,
    output text and images, thoughts), in the shape of OpenAI's Images usage; output_tokens counts the
    thoughts, which are billed as output; the cost to the nano-dollar, as billed."""
    tasks, images, input_tokens, output_tokens, total_tokens, *split, cost = values
    text_in, image_in, text_out, image_out, thoughts = (int(v) for v in split)
    return {
        **keys,
        "tasks": int(tasks),
        "images": int(images),
        "input_tokens": int(input_tokens),
        "input_tokens_details": {"text_tokens": text_in, "image_tokens": image_in},
        "output_tokens": int(output_tokens),
        "output_tokens_details": {
            "text_tokens": text_out,
            "image_tokens": image_out,
            "thought_tokens": thoughts,
        },
        "total_tokens": int(total_tokens),
        "cost_usd": usd(float(cost)),
    }


def _check_limits(
    conn: Connection,
    key_id: str,
    limits: KeyLimits,
    images: int,
    estimate: float,
    now: float,
    day: str,
    server_max_tasks: int | None,
    *,
    count_concurrent: bool = True,
) -> None:
    mine = usage.c.key_id == key_id
    concurrent = limits.concurrent_tasks if limits.concurrent_tasks is not None else server_max_tasks
    if concurrent is not None and count_concurrent:
        # A batch's lines (dialect "…-batch") are the batch's own window, not the key's concurrent tasks.
        interactive = sa.or_(usage.c.dialect.is_(None), sa.not_(usage.c.dialect.like(f"%{BATCH_SUFFIX}")))
        running = conn.scalar(sa.select(sa.func.count()).where(mine, usage.c.state == RESERVED, interactive))
        if (running or 0) >= concurrent:
            whose = (
                "its limit"
                if limits.concurrent_tasks is not None
                else "the server's limit for keys without their own (PIXELGATE_MAX_TASKS_PER_KEY)"
            )
            raise RateLimited(
                f"key {key_id} has {running} tasks queued or running, {whose} of {concurrent} "
                "concurrent tasks: retry when one of them has finished",
                code="rate_limit_exceeded",
                param="concurrent_tasks",
                retry_after=1.0,
            )
    if limits.images_per_day is not None:
        made = conn.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(usage.c.images), 0)).where(
                mine, usage.c.day == day, usage.c.state.in_([RESERVED, SETTLED])
            )
        )
        if (made or 0) + images > limits.images_per_day:
            wait = seconds_to_midnight(now)
            raise RateLimited(
                f"key {key_id} has made or is making {made} images today (UTC) and asks for {images} more: its "
                f"limit is {limits.images_per_day} images a day, which resets at 00:00 UTC, in {wait / 3600:.1f} h",
                code="rate_limit_exceeded",
                param="images_per_day",
                retry_after=wait,
            )
    if limits.credit_budget_usd is not None:
        spent = conn.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(usage.c.cost_usd), 0)).where(
                mine, usage.c.state.in_([RESERVED, SETTLED])
            )
        )
        if float(spent or 0) + estimate > limits.credit_budget_usd + 1e-9:
            raise QuotaExceeded(
                f"key {key_id} has spent or reserved ${float(spent or 0):.4f} of its ${limits.credit_budget_usd:.4f} "
                f"budget and this request would cost ${estimate:.4f}: ask the admin for more credit",
                param="credit_budget_usd",
            )


def settle(conn: Connection, task_id: str, made: Usage | None, now: float | None = None) -> None:
    """Settle a task's reservation inside the transaction that ends the task: what it ``made``, or (None)
    nothing at all."""
    values: dict[str, Any] = {"settled_at": time.time() if now is None else now}
    if made is None:
        values.update(state=RELEASED, images=0, cost_usd=0.0)
    else:
        values.update(
            state=SETTLED,
            images=made.images,
            input_tokens=made.input_tokens,
            output_tokens=made.output_tokens + made.thought_tokens,
            total_tokens=made.total_tokens,
            input_text_tokens=made.input_text_tokens,
            input_image_tokens=made.input_image_tokens,
            output_text_tokens=made.output_text_tokens,
            output_image_tokens=made.output_image_tokens,
            thought_tokens=made.thought_tokens,
            cost_usd=made.cost_usd,
        )
    settled = conn.execute(_SETTLE, {"settled_task": task_id, **values})
    if settled.rowcount and made is not None:
        metrics.credits_settled.inc(made.cost_usd)
