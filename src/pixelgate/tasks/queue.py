"""The durable task queue: insert, claim with a lease, renew, settle, cancel, recover.

Claiming is one ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING``: on PostgreSQL the inner select
takes ``FOR UPDATE SKIP LOCKED`` so concurrent workers never claim the same row; on SQLite the single
writer makes the statement atomic. A claimed task carries a lease; a worker that dies stops renewing it,
and once it expires the next claim puts the task back in the queue. Every settling update is conditional on the claimant
still holding the task, so a task completes exactly once even if two workers ever ran it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pixelgate.auth.ledger import settle
from pixelgate.core.errors import Conflict, NotFound, PixelgateError
from pixelgate.core.request import ImageRequest
from pixelgate.core.task import Callback, Status, Task, TaskResult, Usage
from pixelgate.store.db import Database
from pixelgate.store.ids import has_id_shape
from pixelgate.store.schema import tasks
from pixelgate.tasks.webhooks import enqueue_task_event

_CLAIMABLE_LIMIT = 500


def _row_to_task(row: Any) -> Task:
    return Task(
        id=row.id,
        request=ImageRequest.model_validate(row.request),
        status=Status(row.status),
        dialect=row.dialect,
        response_format=row.response_format,
        owner=row.owner,
        progress=row.progress,
        priority=row.priority,
        attempts=row.attempts,
        created_at=row.created_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        expires_at=row.expires_at,
        result=TaskResult.from_record(row.result) if row.result else None,
        error_record=row.error,
        upstream=row.upstream or {},
        request_id=row.request_id,
        callback=Callback.from_record(row.webhook),
        batch_id=row.batch_id,
        deadline_at=row.deadline_at,
    )


def _no_such_task(task_id: str) -> NotFound:
    return NotFound(f"no task has the id {task_id!r}", param="task_id", code="task_not_found")


def _require_task_id_shape(task_id: str) -> None:
    """Refuse an id no task can have before it reaches the database (PostgreSQL rejects a NUL byte)."""
    if not has_id_shape(task_id):
        raise _no_such_task(task_id)


# What the webhook event of a task that just ended needs, read back by the update that ended it.
_ENDED_COLUMNS = (
    tasks.c.id,
    tasks.c.owner,
    tasks.c.dialect,
    tasks.c.model,
    tasks.c.status,
    tasks.c.error,
    tasks.c.webhook,
    tasks.c.batch_id,
)


async def _enqueue_ended(conn: AsyncConnection, row: Any) -> int:
    return await enqueue_task_event(
        conn,
        task_id=row.id,
        owner=row.owner,
        dialect=row.dialect,
        model=row.model,
        status=Status(row.status),
        error=row.error,
        webhook=row.webhook,
        batch_id=row.batch_id,
    )


def _nobody_listens() -> None:
    pass


class TaskQueue:
    def __init__(self, db: Database, *, result_ttl: float) -> None:
        self.db = db
        self.result_ttl = result_ttl
        # Called once a transaction that queued webhook deliveries has committed: the app points it at
        # this process's sender, so that a delivery leaves at once rather than at its next poll.
        self.webhooks_queued: Callable[[], None] = _nobody_listens

    async def insert(self, task: Task, *, conn: AsyncConnection | None = None) -> None:
        """Save a new task, in ``conn``'s transaction if given (the one that reserves its cost)."""
        if conn is None:
            async with self.db.transaction() as own:
                return await self.insert(task, conn=own)
        await conn.execute(
            tasks.insert().values(
                id=task.id,
                owner=task.owner,
                dialect=task.dialect,
                request_id=task.request_id,
                batch_id=task.batch_id,
                model=task.request.model,
                webhook=task.callback.to_record() if task.callback else None,
                status=task.status.value,
                progress=task.progress,
                priority=task.priority,
                request=task.request.model_dump(mode="json"),
                response_format=task.response_format,
                attempts=0,
                created_at=task.created_at,
                deadline_at=task.deadline_at,
            )
        )

    async def get(self, task_id: str, *, owner: str | None = None) -> Task:
        _require_task_id_shape(task_id)
        query = sa.select(tasks).where(tasks.c.id == task_id)
        if owner is not None:
            query = query.where(tasks.c.owner == owner)
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise _no_such_task(task_id)
        return _row_to_task(row)

    async def get_many(self, task_ids: Iterable[str]) -> list[Task]:
        ids = list(task_ids)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(tasks).where(tasks.c.id.in_(ids)))).all()
        return [_row_to_task(row) for row in rows]

    async def claim(
        self, worker_id: str, limit: int, lease_seconds: float, *, batch_limit: int | None = None
    ) -> list[Task]:
        """Take up to ``limit`` queued tasks for ``worker_id``, after putting back in the queue the running
        tasks of other workers whose lease ran out (a worker that died, or lost touch with the database).

        Interactive tasks come first; batch lines (negative priority) fill what is left, at most
        ``batch_limit`` of them (None: no cap), so that a long batch never holds every slot."""
        now = time.time()
        expired = sa.and_(
            tasks.c.status == Status.RUNNING.value,
            tasks.c.lease_expires_at < now,
            # This worker knows what it runs: a lease of its own that a late heartbeat let lapse is
            # still its task, and running it a second time here would make it twice upstream.
            tasks.c.worker_id != worker_id,
        )

        def take(which: Any, count: int) -> Any:
            claimable = (
                sa.select(tasks.c.id)
                .where(
                    tasks.c.status == Status.QUEUED.value,
                    which,
                    sa.or_(tasks.c.not_before.is_(None), tasks.c.not_before <= now),
                )
                .order_by(tasks.c.priority.desc(), tasks.c.created_at)
                .limit(min(count, _CLAIMABLE_LIMIT))
            )
            if self.db.is_postgres:
                claimable = claimable.with_for_update(skip_locked=True)
            return (
                tasks.update()
                .where(tasks.c.id.in_(claimable.scalar_subquery()))
                .values(
                    status=Status.RUNNING.value,
                    worker_id=worker_id,
                    lease_expires_at=now + lease_seconds,
                    attempts=tasks.c.attempts + 1,
                    started_at=sa.func.coalesce(tasks.c.started_at, now),
                )
                .returning(*tasks.c)
            )

        async with self.db.transaction() as conn:
            await conn.execute(
                tasks.update().where(expired).values(status=Status.QUEUED.value, worker_id=None)
            )
            rows = list((await conn.execute(take(tasks.c.priority >= 0, limit))).all())
            room = limit - len(rows)
            if batch_limit is not None:
                room = min(room, batch_limit)
            if room > 0:
                rows += (await conn.execute(take(tasks.c.priority < 0, room))).all()
        return sorted((_row_to_task(row) for row in rows), key=lambda t: (-t.priority, t.created_at))

    async def renew(self, worker_id: str, task_ids: Iterable[str], lease_seconds: float) -> set[str]:
        """Extend the leases of the tasks this worker runs; return the ids it no longer holds (cancelled,
        or taken over by another worker after a lease ran out)."""
        ids = set(task_ids)
        if not ids:
            return set()
        held = sa.and_(
            tasks.c.id.in_(ids), tasks.c.worker_id == worker_id, tasks.c.status == Status.RUNNING.value
        )
        async with self.db.transaction() as conn:
            await conn.execute(
                tasks.update().where(held).values(lease_expires_at=time.time() + lease_seconds)
            )
            still_held = set((await conn.execute(sa.select(tasks.c.id).where(held))).scalars())
        return ids - still_held

    async def set_progress(self, task_id: str, worker_id: str, progress: int) -> None:
        await self._update_held(task_id, worker_id, progress=progress)

    async def set_upstream(self, task_id: str, worker_id: str, upstream: dict[str, dict[str, Any]]) -> bool:
        """Save the task's upstream tasks; False if it is no longer running here (e.g. just cancelled)."""
        return await self._update_held(task_id, worker_id, upstream=upstream)

    async def _update_held(self, task_id: str, worker_id: str, **values: Any) -> bool:
        """Change a running task, only while ``worker_id`` still holds it; whether it did."""
        async with self.db.transaction() as conn:
            outcome = await conn.execute(
                tasks.update()
                .where(
                    tasks.c.id == task_id,
                    tasks.c.worker_id == worker_id,
                    tasks.c.status == Status.RUNNING.value,
                )
                .values(**values)
            )
        return bool(outcome.rowcount)

    async def _settle(
        self,
        task_id: str,
        worker_id: str,
        values: dict[str, Any],
        *,
        ended: bool = False,
        made: Usage | None = None,
    ) -> bool:
        """End this worker's hold on a task. A task that ``ended`` settles its ledger row and queues its
        webhook event in the same transaction (what it ``made``, or nothing); otherwise its reservation
        stands (it runs again)."""
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    tasks.update()
                    .where(
                        tasks.c.id == task_id,
                        tasks.c.worker_id == worker_id,
                        tasks.c.status == Status.RUNNING.value,
                    )
                    .values(worker_id=None, lease_expires_at=None, **values)
                    .returning(*_ENDED_COLUMNS)
                )
            ).first()
            queued = 0
            if row is not None and ended:
                await settle(conn, task_id, made)
                queued = await _enqueue_ended(conn, row)
        if queued:
            self.webhooks_queued()
        return row is not None

    async def complete(self, task_id: str, worker_id: str, result: TaskResult) -> bool:
        now = time.time()
        return await self._settle(
            task_id,
            worker_id,
            {
                "status": Status.SUCCEEDED.value,
                "progress": 100,
                "result": result.to_record(),
                "completed_at": now,
                "expires_at": now + self.result_ttl,
            },
            ended=True,
            made=result.usage,
        )

    async def fail(self, task_id: str, worker_id: str, error: PixelgateError) -> bool:
        return await self._settle(
            task_id,
            worker_id,
            {
                "status": Status.FAILED.value,
                "error": error.to_record(),
                "completed_at": time.time(),
            },
            ended=True,
        )

    async def release(self, task_id: str, worker_id: str) -> bool:
        """Give a running task back to the queue (graceful shutdown): the next worker starts it afresh."""
        return await self._settle(task_id, worker_id, {"status": Status.QUEUED.value, "progress": 0})

    async def defer(self, task_id: str, worker_id: str, until: float) -> bool:
        """Put a running task back in the queue, not to be claimed before ``until`` (no channel can take it
        sooner). This claim does not count as one of its attempts: it never reached an upstream."""
        return await self._settle(
            task_id,
            worker_id,
            {
                "status": Status.QUEUED.value,
                "progress": 0,
                "not_before": until,
                "attempts": sa.func.max(tasks.c.attempts - 1, 0)
                if not self.db.is_postgres
                else sa.func.greatest(tasks.c.attempts - 1, 0),
            },
        )

    async def cancel(self, task_id: str, *, owner: str | None = None) -> Task:
        _require_task_id_shape(task_id)
        condition = sa.and_(
            tasks.c.id == task_id, tasks.c.status.in_([Status.QUEUED.value, Status.RUNNING.value])
        )
        if owner is not None:
            condition = sa.and_(condition, tasks.c.owner == owner)
        queued = 0
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    tasks.update()
                    .where(condition)
                    .values(status=Status.CANCELLED.value, completed_at=time.time(), lease_expires_at=None)
                    .returning(*_ENDED_COLUMNS)
                )
            ).first()
            if row is not None:
                await settle(conn, task_id, None)
                queued = await _enqueue_ended(conn, row)
        if queued:
            self.webhooks_queued()
        task = await self.get(task_id, owner=owner)
        if row is None and task.status is not Status.CANCELLED:
            raise Conflict(
                f"task {task_id} has already {task.status.value} and can no longer be cancelled: "
                "only queued or running tasks can be",
                param="task_id",
                code="task_already_finished",
            )
        return task

    async def cancel_batch(self, batch_id: str) -> list[Task]:
        """Cancel every queued or running task of a batch in one transaction (a stopped batch may hold
        hundreds), each settled at no cost as ``cancel`` does; the tasks cancelled."""
        open_lines = sa.and_(
            tasks.c.batch_id == batch_id, tasks.c.status.in_([Status.QUEUED.value, Status.RUNNING.value])
        )
        queued = 0
        async with self.db.transaction() as conn:
            rows = (
                await conn.execute(
                    tasks.update()
                    .where(open_lines)
                    .values(status=Status.CANCELLED.value, completed_at=time.time(), lease_expires_at=None)
                    .returning(*tasks.c)
                )
            ).all()
            for row in rows:
                await settle(conn, row.id, None)
                queued += await _enqueue_ended(conn, row)
        if queued:
            self.webhooks_queued()
        return [_row_to_task(row) for row in rows]

    async def delete(self, task_id: str, *, owner: str | None = None) -> None:
        _require_task_id_shape(task_id)
        condition = tasks.c.id == task_id
        if owner is not None:
            condition = sa.and_(condition, tasks.c.owner == owner)
        async with self.db.transaction() as conn:
            outcome = await conn.execute(tasks.delete().where(condition))
        if not outcome.rowcount:
            raise _no_such_task(task_id)

    async def count_by_status(self) -> dict[str, int]:
        async with self.db.engine.connect() as conn:
            rows = await conn.execute(sa.select(tasks.c.status, sa.func.count()).group_by(tasks.c.status))
            return {status: count for status, count in rows.all()}
