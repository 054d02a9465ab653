"""The admin's view of the tasks: a filtered list, newest first, a page at a time (``GET /admin/tasks``).

A row is the task joined with its ledger row (``usage``: the key that asked for it and what it cost, which
the task itself does not keep) and that key's name. The channel is the one that made the task's first
image, so only a succeeded task has one. The list is ordered by (created_at, id), newest first, and a page
continues after the last id of the page before (keyset paging: no row is skipped or shown twice while new
tasks arrive, and a page costs the same however deep it is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from pixelgate.core.errors import InvalidRequest
from pixelgate.core.task import Status
from pixelgate.store.db import Database, listed_after
from pixelgate.store.ids import has_id_shape
from pixelgate.store.schema import api_keys, tasks, usage

SETTLED = "settled"  # the ledger's state of a task that succeeded (auth/ledger.py)


@dataclass(frozen=True)
class TaskFilters:
    """What a listing keeps; each None (or empty) keeps every task."""

    statuses: tuple[Status, ...] = ()
    model: str | None = None
    key_id: str | None = None
    owner: str | None = None
    dialect: str | None = None
    channel: str | None = None
    since: float | None = None  # created at or after
    until: float | None = None  # created before


@dataclass(frozen=True)
class TaskRow:
    id: str
    status: str
    model: str
    dialect: str
    owner: str | None
    key_id: str | None
    key_name: str | None
    channel: str | None
    batch_id: str | None
    n: int | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    billing: str | None  # the ledger's state: reserved, settled or released (None: no ledger row)
    cost_usd: float | None
    images: int | None
    error: dict[str, Any] | None

    def describe(self) -> dict[str, Any]:
        """The row as ``GET /admin/tasks`` lists it (times are Unix seconds as stored, so that a row's
        ``created_at`` given as ``since`` keeps that row)."""
        ended = self.completed_at
        return {
            "id": self.id,
            "object": "admin.task",
            "status": self.status,
            "model": self.model,
            "dialect": self.dialect,
            "key_id": self.key_id,
            "key_name": self.key_name,
            "owner": self.owner,
            "channel": self.channel,
            "batch_id": self.batch_id,
            "n": self.n,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": ended,
            "duration_seconds": round(ended - self.created_at, 3) if ended is not None else None,
            "billing": self.billing,
            "cost_usd": round(self.cost_usd, 6) if self.cost_usd is not None else None,
            "image_count": (self.images or 0) if self.billing == SETTLED else 0,
            "error": (
                {"code": self.error.get("code"), "message": self.error.get("message")} if self.error else None
            ),
        }


_COLUMNS = (
    tasks.c.id,
    tasks.c.status,
    tasks.c.model,
    tasks.c.dialect,
    tasks.c.owner,
    usage.c.key_id,
    api_keys.c.name.label("key_name"),
    tasks.c.result["channel"].as_string().label("channel"),
    tasks.c.batch_id,
    tasks.c.request["n"].as_integer().label("n"),
    tasks.c.created_at,
    tasks.c.started_at,
    tasks.c.completed_at,
    usage.c.state.label("billing"),
    usage.c.cost_usd,
    usage.c.images,
    tasks.c.error,
)
_JOINED = tasks.outerjoin(usage, usage.c.task_id == tasks.c.id).outerjoin(
    api_keys, api_keys.c.id == usage.c.key_id
)


class TaskListing:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(
        self, filters: TaskFilters, *, limit: int, after: str | None = None
    ) -> tuple[list[TaskRow], bool]:
        """Up to ``limit`` rows newest first, after the task ``after`` (the last id of the page before);
        and whether more follow."""
        query = sa.select(*_COLUMNS).select_from(_JOINED).where(*_conditions(filters))
        async with self.db.engine.connect() as conn:
            if after:
                created_at = None
                if has_id_shape(after):
                    created_at = await conn.scalar(sa.select(tasks.c.created_at).where(tasks.c.id == after))
                if created_at is None:
                    raise InvalidRequest(
                        f"after {after[:70]!r} names no task: give the last_id of the page before, or leave "
                        "it out for the first page",
                        param="after",
                        code="invalid_cursor",
                    )
                query = query.where(listed_after(tasks, float(created_at), after))
            query = query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit + 1)
            rows = (await conn.execute(query)).all()
        return [TaskRow(**row._asdict()) for row in rows[:limit]], len(rows) > limit

    async def row(self, task_id: str) -> TaskRow | None:
        query = sa.select(*_COLUMNS).select_from(_JOINED).where(tasks.c.id == task_id)
        async with self.db.engine.connect() as conn:
            found = (await conn.execute(query)).first()
        return TaskRow(**found._asdict()) if found is not None else None


def _conditions(filters: TaskFilters) -> list[Any]:
    conditions: list[Any] = []
    if filters.statuses:
        conditions.append(tasks.c.status.in_([status.value for status in filters.statuses]))
    for column, value in (
        (tasks.c.model, filters.model),
        (usage.c.key_id, filters.key_id),
        (tasks.c.owner, filters.owner),
        (tasks.c.dialect, filters.dialect),
        (tasks.c.result["channel"].as_string(), filters.channel),
    ):
        if value is not None:
            conditions.append(column == value)
    if filters.since is not None:
        conditions.append(tasks.c.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(tasks.c.created_at < filters.until)
    return conditions
