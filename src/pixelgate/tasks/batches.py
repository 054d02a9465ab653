"""Batch jobs: many requests in one job, run as low-priority tasks in the capacity interactive work leaves.

A batch is saved whole (its row and one ``batch_lines`` row per request) before its creator is answered.
The runner then turns lines into tasks a window at a time (``tasks.batch_id``, ``BATCH_PRIORITY``), so a
batch of fifty thousand lines holds a few hundred queued tasks and reservations, not fifty thousand. Line
``n`` of batch ``b`` always becomes task ``b-n``: after a restart the runner goes on from the saved cursor,
and a line can never run twice. When every line has ended, the batch's dialect writes its results.

This module holds the data (``BatchStore``: batches, lines, their counts and results); ``batch_runner.py``
advances them.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

import sqlalchemy as sa

from pixelgate.auth.keys import Caller, owner_scope
from pixelgate.core import logs
from pixelgate.core.errors import Conflict, InvalidRequest, NotFound
from pixelgate.core.task import Status, Task
from pixelgate.store.db import Database, listed_after
from pixelgate.store.ids import has_id_shape
from pixelgate.store.schema import batch_lines, batches, tasks, usage
from pixelgate.tasks.bus import BatchChanged, Bus, WebhooksQueued
from pixelgate.tasks.idempotency import IdempotencyKeys, Idempotent, check_key, fingerprint
from pixelgate.tasks.queue import TaskQueue
from pixelgate.tasks.webhooks import enqueue_event

log = logging.getLogger("pixelgate.batches")

BATCH_WINDOW = 64  # lines of one batch queued or running at once, at least


def batch_window(batch_slots: int) -> int:
    """How many lines of one batch are tasks at once: twice the slots a worker gives batch lines (a line
    is queued and ready as each slot frees), and never fewer than ``BATCH_WINDOW``."""
    return max(BATCH_WINDOW, 2 * batch_slots)


COMPLETION_WINDOW_SECONDS = 24 * 3600


class BatchState(StrEnum):
    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in (BatchState.COMPLETED, BatchState.FAILED, BatchState.CANCELLED, BatchState.EXPIRED)


ACTIVE_STATES = (BatchState.VALIDATING, BatchState.IN_PROGRESS, BatchState.FINALIZING, BatchState.CANCELLING)


@dataclass(frozen=True)
class BatchCounts:
    total: int = 0
    succeeded: int = 0
    failed: int = 0  # refused, failed, cancelled or expired lines
    running: int = 0  # queued or running tasks
    cost_usd: float = 0.0
    images: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed


@dataclass(frozen=True)
class Batch:
    id: str
    owner: str | None
    dialect: str
    endpoint: str
    state: BatchState
    total: int
    submitted: int
    created_at: float
    expires_at: float
    display_name: str | None = None
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] | None = None
    in_progress_at: float | None = None
    finalizing_at: float | None = None
    ended_at: float | None = None
    cancelling_at: float | None = None
    counts: BatchCounts = field(default_factory=BatchCounts)

    def task_id(self, line: int) -> str:
        return f"{self.id}-{line}"


@dataclass(frozen=True)
class BatchLine:
    line: int
    custom_id: str | None
    body: dict[str, Any]
    error: dict[str, Any] | None = None  # why it never became a task


# Why the lines a stopped batch never finished did not: a line stopped by its batch is "cancelled".
STOPPED = {
    BatchState.CANCELLED: ("batch_cancelled", "the batch was cancelled"),
    BatchState.EXPIRED: ("batch_expired", "the batch did not finish within its completion window"),
}


def stopped_record(final: BatchState, when: str) -> dict[str, Any]:
    code, why = STOPPED[final]
    return {"kind": "cancelled", "status": 499, "code": code, "message": f"{why} {when}"}


@dataclass(frozen=True)
class LineResult:
    line: BatchLine
    task: Task | None  # None: the line never became a task (its error says why), or the task is gone

    @property
    def succeeded(self) -> bool:
        """Whether the line has a result to show: made, and not past the task's result TTL."""
        task = self.task
        return (
            task is not None
            and task.status is Status.SUCCEEDED
            and task.result is not None
            and not task.result_expired()
        )

    def error_record(self, batch: Batch) -> dict[str, Any] | None:
        """Why the line has no result (an error record, as a failed task keeps); None if it has one."""
        if self.succeeded:
            return None
        if self.line.error is not None:
            return self.line.error
        if self.task is None:
            return {
                "kind": "not_found_error",
                "status": 404,
                "code": "result_missing",
                "message": f"the task of line {self.line.line} no longer exists (its results expired)",
            }
        if self.task.status is Status.SUCCEEDED:  # made, but its images are past their time
            return {
                "kind": "not_found_error",
                "status": 404,
                "code": "result_expired",
                "message": f"the images of line {self.line.line} expired at {int(self.task.expires_at or 0)} "
                "and are no longer served: run the line again",
            }
        if self.task.status is Status.CANCELLED or self.task.error_record is None:
            ending = BatchState(batch.options.get("ending", BatchState.CANCELLED.value))
            return stopped_record(
                ending if ending in STOPPED else BatchState.CANCELLED, "before this line finished"
            )
        return self.task.error_record


class BatchDialect(Protocol):
    """What a dialect (api/openai_batches.py, api/gemini_batches.py) gives the runner."""

    async def submit_line(self, batch: Batch, line: BatchLine, task_id: str, caller: Caller) -> None:
        """Make line ``line`` the task ``task_id``; raise a PixelgateError to fail the line."""

    async def finalize(self, batch: Batch, results: AsyncIterator[LineResult]) -> dict[str, Any]:
        """Write the batch's results; the batch columns to set (e.g. ``output_file_id``)."""


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(12)


def _no_such_batch(batch_id: str) -> NotFound:
    return NotFound(f"no batch has the id {batch_id[:80]!r}", param="batch_id", code="batch_not_found")


def _batch(row: Any, counts: BatchCounts) -> Batch:
    return Batch(
        id=row.id,
        owner=row.owner,
        dialect=row.dialect,
        endpoint=row.endpoint,
        state=BatchState(row.state),
        total=row.total,
        submitted=row.submitted,
        created_at=row.created_at,
        expires_at=row.expires_at,
        display_name=row.display_name,
        input_file_id=row.input_file_id,
        output_file_id=row.output_file_id,
        error_file_id=row.error_file_id,
        options=row.options or {},
        errors=row.errors,
        in_progress_at=row.in_progress_at,
        finalizing_at=row.finalizing_at,
        ended_at=row.ended_at,
        cancelling_at=row.cancelling_at,
        counts=counts,
    )


EVENTS = {
    BatchState.COMPLETED: "batch.succeeded",
    BatchState.FAILED: "batch.failed",
    BatchState.CANCELLED: "batch.cancelled",
    BatchState.EXPIRED: "batch.expired",
}


async def _batch_event(
    conn: Any, batch: Batch, final: BatchState, counts: BatchCounts, values: dict[str, Any]
) -> int:
    """The batch's end as a webhook event: to the URLs it was made with, else its owner's webhooks; how
    many deliveries were queued."""
    webhook = batch.options.get("webhook") or {}
    queued: int = await conn.run_sync(
        lambda sync: enqueue_event(
            sync,
            owner=batch.owner,
            event_type=EVENTS[final],
            subject_id=batch.id,
            data={
                "id": batch.id,
                "name": f"batches/{batch.id}",
                "status": final.value,
                "endpoint": batch.endpoint,
                "request_counts": {
                    "total": counts.total,
                    "completed": counts.succeeded,
                    "failed": counts.failed,
                },
                "cost_usd": counts.cost_usd,
                "output_file_id": values.get("output_file_id"),
                "error_file_id": values.get("error_file_id"),
                "errors": batch.errors,
            },
            override_urls=webhook.get("urls") or None,
            user_metadata=webhook.get("user_metadata"),
        )
    )
    return queued


def caller_record(caller: Caller) -> dict[str, Any]:
    """Who made a batch, as saved with it: its lines run as that caller, with the key's limits then."""
    return {"key_id": caller.key_id, "name": caller.name, "owner": caller.owner, "is_admin": caller.is_admin}


class BatchStore:
    def __init__(self, db: Database, queue: TaskQueue, bus: Bus) -> None:
        self.db = db
        self.queue = queue
        self.bus = bus
        self.idempotency = IdempotencyKeys(db)

    async def create(
        self,
        *,
        dialect: str,
        endpoint: str,
        caller: Caller,
        lines: list[tuple[str | None, dict[str, Any]]],
        input_file_id: str | None = None,
        display_name: str | None = None,
        options: dict[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
        completion_window: float = COMPLETION_WINDOW_SECONDS,
        idempotency_key: str | None = None,
        request_body: dict[str, Any] | None = None,
    ) -> Batch:
        """Save a batch and all its lines in one transaction: once this returns, nothing is lost. A batch
        whose input had ``errors`` is saved as failed, with them and no lines. With an
        ``idempotency_key``, the same ``request_body`` sent again gets the first batch, another a 409."""
        batch_id = new_batch_id()
        save = partial(
            self._create,
            batch_id,
            dialect,
            endpoint,
            caller,
            lines,
            input_file_id,
            display_name,
            options,
            errors,
            completion_window,
        )
        if idempotency_key is None:
            return await save(None)
        claim = Idempotent(
            owner_scope(caller.owner),
            check_key(idempotency_key),
            fingerprint(dialect, endpoint, json.dumps(request_body, sort_keys=True)),
            kind="batch",
        )
        return await self.idempotency.once(claim, partial(save, claim), partial(self.get, owner=caller.owner))

    async def _create(
        self,
        batch_id: str,
        dialect: str,
        endpoint: str,
        caller: Caller,
        lines: list[tuple[str | None, dict[str, Any]]],
        input_file_id: str | None,
        display_name: str | None,
        options: dict[str, Any] | None,
        errors: list[dict[str, Any]] | None,
        completion_window: float,
        claim: Idempotent | None,
    ) -> Batch:
        now = time.time()
        async with self.db.transaction() as conn:
            if claim is not None:
                await conn.run_sync(self.idempotency.keep, claim, batch_id)
            await conn.execute(
                batches.insert().values(
                    id=batch_id,
                    owner=caller.owner,
                    key_id=caller.key_id,
                    dialect=dialect,
                    endpoint=endpoint,
                    display_name=display_name,
                    state=(BatchState.FAILED if errors else BatchState.VALIDATING).value,
                    errors=errors,
                    ended_at=now if errors else None,
                    input_file_id=input_file_id,
                    total=len(lines),
                    submitted=0,
                    options={**(options or {}), "caller": caller_record(caller)},
                    created_at=now,
                    expires_at=now + completion_window,
                )
            )
            queued = 0
            if errors:  # the batch as just saved, announced in the transaction that saves it
                row = (await conn.execute(sa.select(batches).where(batches.c.id == batch_id))).one()
                queued = await _batch_event(
                    conn, _batch(row, BatchCounts()), BatchState.FAILED, BatchCounts(), {}
                )
            if lines:
                await conn.execute(
                    batch_lines.insert(),
                    [
                        {"batch_id": batch_id, "line": i, "custom_id": custom_id, "body": body}
                        for i, (custom_id, body) in enumerate(lines)
                    ],
                )
        if queued:
            self.bus.publish(WebhooksQueued(queued))  # its batch.failed event, queued with it
        if not errors:
            self.bus.publish(BatchChanged(batch_id))
        logs.event(log, "batch.created", batch_id=batch_id, dialect=dialect, lines=len(lines))
        return await self.get(batch_id)

    async def get(self, batch_id: str, *, owner: str | None = None, dialect: str | None = None) -> Batch:
        """A batch by id; one of another owner, or made through another dialect, is not found."""
        if not has_id_shape(batch_id):
            raise _no_such_batch(batch_id)
        query = sa.select(batches).where(batches.c.id == batch_id)
        if owner is not None:
            query = query.where(batches.c.owner == owner)
        if dialect is not None:
            query = query.where(batches.c.dialect == dialect)
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                raise _no_such_batch(batch_id)
            counts = await self._counts(conn, row.id, row.total)
        return _batch(row, counts)

    async def page(
        self,
        *,
        owner: str | None,
        dialect: str,
        after: str | None = None,
        limit: int = 20,
        cursor_param: str = "after",
    ) -> list[Batch]:
        """Newest first; ``after`` (the caller's ``cursor_param``) is the id of the last batch of the
        previous page."""
        query = sa.select(batches).where(batches.c.dialect == dialect)
        if owner is not None:
            query = query.where(batches.c.owner == owner)
        if after is not None:
            try:
                anchor = await self.get(after, owner=owner, dialect=dialect)
            except NotFound:
                raise InvalidRequest(
                    f"{cursor_param} {after[:64]!r} names no batch of yours: give the id of the last batch "
                    "of the page before, or leave it out for the first page",
                    param=cursor_param,
                    code="invalid_cursor",
                ) from None
            query = query.where(listed_after(batches, anchor.created_at, anchor.id))
        query = query.order_by(batches.c.created_at.desc(), batches.c.id.desc()).limit(limit)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            return [_batch(row, await self._counts(conn, row.id, row.total)) for row in rows]

    async def _counts(self, conn: Any, batch_id: str, total: int) -> BatchCounts:
        by_status = dict(
            (
                await conn.execute(
                    sa.select(tasks.c.status, sa.func.count())
                    .where(tasks.c.batch_id == batch_id)
                    .group_by(tasks.c.status)
                )
            ).all()
        )
        refused = await conn.scalar(
            sa.select(sa.func.count()).where(
                batch_lines.c.batch_id == batch_id, batch_lines.c.error.is_not(None)
            )
        )
        spent = (
            await conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(usage.c.cost_usd), 0),
                    sa.func.coalesce(sa.func.sum(usage.c.images), 0),
                    sa.func.coalesce(sa.func.sum(usage.c.input_tokens), 0),
                    sa.func.coalesce(sa.func.sum(usage.c.output_tokens), 0),
                    sa.func.coalesce(sa.func.sum(usage.c.total_tokens), 0),
                ).where(
                    usage.c.state == "settled",
                    usage.c.task_id.in_(sa.select(tasks.c.id).where(tasks.c.batch_id == batch_id)),
                )
            )
        ).one()
        return BatchCounts(
            total=total,
            succeeded=by_status.get(Status.SUCCEEDED.value, 0),
            failed=by_status.get(Status.FAILED.value, 0)
            + by_status.get(Status.CANCELLED.value, 0)
            + (refused or 0),
            running=by_status.get(Status.QUEUED.value, 0) + by_status.get(Status.RUNNING.value, 0),
            cost_usd=round(float(spent[0]), 6),
            images=int(spent[1]),
            input_tokens=int(spent[2]),
            output_tokens=int(spent[3]),
            total_tokens=int(spent[4]),
        )

    async def cancel(self, batch_id: str, *, owner: str | None = None) -> Batch:
        """Ask for a batch to stop: its runner cancels what is queued or running, then ends it."""
        batch = await self.get(batch_id, owner=owner)
        async with self.db.transaction() as conn:
            await conn.execute(
                batches.update()
                .where(
                    batches.c.id == batch.id,
                    batches.c.state.in_([BatchState.VALIDATING.value, BatchState.IN_PROGRESS.value]),
                )
                .values(state=BatchState.CANCELLING.value, cancelling_at=time.time())
            )
        batch = await self.get(batch.id)
        if batch.state not in (BatchState.CANCELLING, BatchState.CANCELLED):
            raise Conflict(
                f"batch {batch.id} is {batch.state.value} and can no longer be cancelled: only a batch that is "
                "validating or in progress can be",
                param="batch_id",
                code="batch_already_finished",
            )
        self.bus.publish(BatchChanged(batch.id))
        return batch

    async def delete(self, batch_id: str, *, owner: str | None = None) -> None:
        """Forget a finished batch and its lines (its tasks expire with their results; its files stay)."""
        batch = await self.get(batch_id, owner=owner)
        if not batch.state.is_terminal:
            raise Conflict(
                f"batch {batch.id} is {batch.state.value}: only a finished batch can be deleted; cancel it "
                "first (batches/{id}:cancel), then delete it",
                param="batch_id",
                code="batch_not_finished",
            )
        async with self.db.transaction() as conn:
            await conn.execute(batch_lines.delete().where(batch_lines.c.batch_id == batch.id))
            await conn.execute(batches.delete().where(batches.c.id == batch.id))

    async def active_ids(self) -> list[str]:
        query = (
            sa.select(batches.c.id)
            .where(batches.c.state.in_([state.value for state in ACTIVE_STATES]))
            .order_by(batches.c.created_at)
        )
        async with self.db.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def hold(self, batch_id: str, runner_id: str, lease_seconds: float) -> bool:
        """Take or renew the lease on a batch; False while another live runner holds it."""
        now = time.time()
        async with self.db.transaction() as conn:
            outcome = await conn.execute(
                batches.update()
                .where(
                    batches.c.id == batch_id,
                    sa.or_(
                        batches.c.runner_id.is_(None),
                        batches.c.runner_id == runner_id,
                        batches.c.lease_expires_at < now,
                    ),
                )
                .values(runner_id=runner_id, lease_expires_at=now + lease_seconds)
            )
        return bool(outcome.rowcount)

    async def end(self, batch: Batch, final: BatchState, **values: Any) -> None:
        """Give a batch its final state and queue its webhook event, in one transaction."""
        async with self.db.transaction() as conn:
            await conn.execute(
                batches.update()
                .where(batches.c.id == batch.id)
                .values(state=final.value, ended_at=time.time(), **values)
            )
            counts = await self._counts(conn, batch.id, batch.total)
            queued = await _batch_event(conn, batch, final, counts, values)
        if queued:
            self.bus.publish(WebhooksQueued(queued))

    async def update(self, batch_id: str, **values: Any) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(batches.update().where(batches.c.id == batch_id).values(**values))

    async def move(self, batch_id: str, *, came_from: BatchState, **values: Any) -> bool:
        """Set ``values`` (a new state) only if the batch is still in ``came_from``, the state the runner
        read: whether it was. A cancel that committed since that read is not overwritten."""
        async with self.db.transaction() as conn:
            outcome = await conn.execute(
                batches.update()
                .where(batches.c.id == batch_id, batches.c.state == came_from.value)
                .values(**values)
            )
        return bool(outcome.rowcount)

    async def lines(self, batch_id: str, start: int, count: int) -> list[BatchLine]:
        query = (
            sa.select(batch_lines)
            .where(batch_lines.c.batch_id == batch_id, batch_lines.c.line >= start)
            .order_by(batch_lines.c.line)
            .limit(count)
        )
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [BatchLine(row.line, row.custom_id, row.body, row.error) for row in rows]

    async def fail_lines(self, batch_id: str, errors: dict[int, dict[str, Any]], *, cursor: int) -> None:
        """Record why lines never became tasks, and move the cursor past what was handled."""
        async with self.db.transaction() as conn:
            for line, error in errors.items():
                await conn.execute(
                    batch_lines.update()
                    .where(batch_lines.c.batch_id == batch_id, batch_lines.c.line == line)
                    .values(error=error)
                )
            await conn.execute(batches.update().where(batches.c.id == batch_id).values(submitted=cursor))

    async def existing_tasks(self, task_ids: list[str]) -> set[str]:
        async with self.db.engine.connect() as conn:
            found = await conn.execute(sa.select(tasks.c.id).where(tasks.c.id.in_(task_ids)))
            return set(found.scalars())

    async def fail_rest(self, batch_id: str, start: int, error: dict[str, Any]) -> None:
        """Record ``error`` on every line from ``start`` on (none of them ran), and close the cursor."""
        async with self.db.transaction() as conn:
            await conn.execute(
                batch_lines.update()
                .where(batch_lines.c.batch_id == batch_id, batch_lines.c.line >= start)
                .values(error=error)
            )
            await conn.execute(
                batches.update().where(batches.c.id == batch_id).values(submitted=batches.c.total)
            )

    async def results(self, batch: Batch, page: int = 200) -> AsyncIterator[LineResult]:
        """Every line in order, with its task."""
        start = 0
        while start < batch.total:
            lines = await self.lines(batch.id, start, page)
            if not lines:
                return
            found = {
                task.id: task
                for task in await self.queue.get_many(batch.task_id(each.line) for each in lines)
            }
            for line in lines:
                yield LineResult(line, found.get(batch.task_id(line.line)))
            start = lines[-1].line + 1
