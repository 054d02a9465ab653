"""The durable task queue, as SQL: insert, claim with a lease, renew, end, cancel, recover. Every change of a
task's state goes through ``lifecycle.py``, which runs these inside its transactions.

Claiming is one ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING``: on PostgreSQL the inner select
takes ``FOR UPDATE SKIP LOCKED`` so concurrent workers never claim the same row; on SQLite the single
writer makes the statement atomic. A claimed task carries a lease; a worker that dies stops renewing it,
and once it expires the next claim puts the task back in the queue. Every settling update is conditional on the claimant
still holding the task, so a task completes exactly once even if two workers ever ran it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pixelgate.core.errors import NotFound, PixelgateError
from pixelgate.core.request import ImageRequest
from pixelgate.core.task import Callback, Status, Task, TaskResult
from pixelgate.store.db import Database
from pixelgate.store.ids import has_id_shape
from pixelgate.store.schema import output_signatures, tasks

_CLAIMABLE_LIMIT = 500

# The hot statements, built once and given their values as parameters: SQLAlchemy checks and coerces each
# value of a statement built with ``.values()`` (0.18 ms a statement), and a built statement's compiled
# form is found by a key computed once rather than on every call; given as parameters, a quarter of that.
_TASK = sa.select(tasks).where(tasks.c.id == sa.bindparam("task_id"))
_OWNERS_TASK = _TASK.where(tasks.c.owner == sa.bindparam("owner"))
_HELD = sa.and_(
    tasks.c.id == sa.bindparam("held_id"),
    tasks.c.worker_id == sa.bindparam("held_by"),
    tasks.c.status == Status.RUNNING.value,
)
_CHANGE_HELD = tasks.update().where(_HELD)
_LET_GO = _CHANGE_HELD.returning(*tasks.c)


@dataclass(frozen=True)
class Lease:
    """A worker's hold on a running task, until ``expires_at`` unless renewed."""

    worker_id: str
    expires_at: float


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


class TaskQueue:
    def __init__(self, db: Database, *, result_ttl: float) -> None:
        self.db = db
        self.result_ttl = result_ttl

    async def insert(self, task: Task, *, lease: Lease | None = None) -> None:
        """Save a new task in a transaction of its own (see :meth:`save`)."""
        await self.db.write(lambda conn: self.save(conn, task, lease=lease))

    def save(self, conn: Connection, task: Task, *, lease: Lease | None = None) -> None:
        """Save a new task in ``conn``'s transaction (the one that reserves its cost). With a ``lease``, the
        task is saved already running, held by the lease's worker (``task`` says so too: see
        ``Worker.claim_here``), exactly as a claim would have left it."""
        conn.execute(
            tasks.insert(),
            {
                "id": task.id,
                "owner": task.owner,
                "dialect": task.dialect,
                "request_id": task.request_id,
                "batch_id": task.batch_id,
                "model": task.request.model,
                "webhook": task.callback.to_record() if task.callback else None,
                "status": task.status.value,
                "progress": task.progress,
                "priority": task.priority,
                "request": task.request.model_dump(mode="json"),
                "response_format": task.response_format,
                "attempts": task.attempts,
                "created_at": task.created_at,
                "started_at": task.started_at,
                "deadline_at": task.deadline_at,
                "worker_id": lease.worker_id if lease else None,
                "lease_expires_at": lease.expires_at if lease else None,
            },
        )

    async def get(self, task_id: str, *, owner: str | None = None) -> Task:
        _require_task_id_shape(task_id)
        query, parameters = (
            (_TASK, {"task_id": task_id})
            if owner is None
            else (_OWNERS_TASK, {"task_id": task_id, "owner": owner})
        )
        row = await self.db.read(lambda conn: conn.execute(query, parameters).first())
        if row is None:
            raise _no_such_task(task_id)
        return _row_to_task(row)

    async def get_many(self, task_ids: Iterable[str]) -> list[Task]:
        ids = list(task_ids)
        query = sa.select(tasks).where(tasks.c.id.in_(ids))
        rows = await self.db.read(lambda conn: conn.execute(query).all())
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

        def claim(conn: Connection) -> list[Any]:
            conn.execute(tasks.update().where(expired).values(status=Status.QUEUED.value, worker_id=None))
            rows = list(conn.execute(take(tasks.c.priority >= 0, limit)).all())
            room = limit - len(rows)
            if batch_limit is not None:
                room = min(room, batch_limit)
            if room > 0:
                rows += conn.execute(take(tasks.c.priority < 0, room)).all()
            return rows

        rows = await self.db.write(claim)
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

        def renew(conn: Connection) -> set[str]:
            conn.execute(tasks.update().where(held).values(lease_expires_at=time.time() + lease_seconds))
            return set(conn.execute(sa.select(tasks.c.id).where(held)).scalars())

        return ids - await self.db.write(renew)

    async def set_progress(self, task_id: str, worker_id: str, progress: int) -> None:
        await self._update_held(task_id, worker_id, progress=progress)

    async def set_upstream(self, task_id: str, worker_id: str, upstream: dict[str, dict[str, Any]]) -> bool:
        """Save the task's upstream tasks; False if it is no longer running here (e.g. just cancelled)."""
        return await self._update_held(task_id, worker_id, upstream=upstream)

    async def _update_held(self, task_id: str, worker_id: str, **values: Any) -> bool:
        """Change a running task, only while ``worker_id`` still holds it; whether it did."""
        parameters = {"held_id": task_id, "held_by": worker_id, **values}
        return bool(await self.db.write(lambda conn: conn.execute(_CHANGE_HELD, parameters).rowcount))

    def _let_go(
        self, conn: Connection, task_id: str, worker_id: str, values: dict[str, Any], *, let_go: Any = _LET_GO
    ) -> Task | None:
        """End ``worker_id``'s hold on a running task, with ``values``; the task as it is now, or None if
        that worker no longer holds it (cancelled, or taken over after its lease ran out). ``let_go``:
        ``_LET_GO`` with the values that are SQL expressions rather than values."""
        parameters = {"held_id": task_id, "held_by": worker_id, "worker_id": None, "lease_expires_at": None}
        row = conn.execute(let_go, {**parameters, **values}).first()
        return _row_to_task(row) if row is not None else None

    def complete(self, conn: Connection, task_id: str, worker_id: str, result: TaskResult) -> Task | None:
        now = time.time()
        ended = self._let_go(
            conn,
            task_id,
            worker_id,
            {
                "status": Status.SUCCEEDED.value,
                "progress": 100,
                "result": result.to_record(),
                "completed_at": now,
                "expires_at": now + self.result_ttl,
            },
        )
        if ended is None:
            return None  # another worker's task now: its outputs are its own
        signed = [
            {
                "sha256": image.sha256,
                "owner": ended.owner,
                "task_id": task_id,
                "signature": image.signature,
                "created_at": now,
            }
            for image in result.images
            if image.sha256 and image.signature
        ]
        if signed:
            conn.execute(output_signatures.insert(), signed)
        return ended

    async def signature_of(self, sha256: str, *, owner: str | None) -> str | None:
        """The thought signature the upstream gave the output image whose bytes hash to ``sha256``, made for
        ``owner``; None if no signed output of theirs has those bytes."""
        mine = (
            output_signatures.c.owner == owner if owner is not None else output_signatures.c.owner.is_(None)
        )
        query = (
            sa.select(output_signatures.c.signature)
            .where(output_signatures.c.sha256 == sha256, mine)
            .order_by(output_signatures.c.created_at.desc())
            .limit(1)
        )
        async with self.db.engine.connect() as conn:
            return (await conn.execute(query)).scalar()

    def fail(self, conn: Connection, task_id: str, worker_id: str, error: PixelgateError) -> Task | None:
        values = {"status": Status.FAILED.value, "error": error.to_record(), "completed_at": time.time()}
        return self._let_go(conn, task_id, worker_id, values)

    def release(self, conn: Connection, task_id: str, worker_id: str) -> Task | None:
        """Give a running task back to the queue: the next worker starts it afresh (resuming its upstream
        tasks)."""
        return self._let_go(conn, task_id, worker_id, {"status": Status.QUEUED.value, "progress": 0})

    def defer(self, conn: Connection, task_id: str, worker_id: str, until: float) -> Task | None:
        """Put a running task back in the queue, not to be claimed before ``until``. This claim does not
        count as one of its attempts: it never reached an upstream."""
        fewer = sa.func.greatest if self.db.is_postgres else sa.func.max
        values = {"status": Status.QUEUED.value, "progress": 0, "not_before": until}
        let_go = _LET_GO.values(attempts=fewer(tasks.c.attempts - 1, 0))
        return self._let_go(conn, task_id, worker_id, values, let_go=let_go)

    def cancel(self, conn: Connection, task_id: str, *, owner: str | None = None) -> Task | None:
        """Cancel a queued or running task; the task, or None if there was none to cancel."""
        _require_task_id_shape(task_id)
        condition = sa.and_(
            tasks.c.id == task_id, tasks.c.status.in_([Status.QUEUED.value, Status.RUNNING.value])
        )
        if owner is not None:
            condition = sa.and_(condition, tasks.c.owner == owner)
        row = conn.execute(
            tasks.update()
            .where(condition)
            .values(status=Status.CANCELLED.value, completed_at=time.time(), lease_expires_at=None)
            .returning(*tasks.c)
        ).first()
        return _row_to_task(row) if row is not None else None

    def cancel_batch(self, conn: Connection, batch_id: str) -> list[Task]:
        """Cancel every queued or running task of a batch (a stopped batch may hold hundreds)."""
        open_lines = sa.and_(
            tasks.c.batch_id == batch_id, tasks.c.status.in_([Status.QUEUED.value, Status.RUNNING.value])
        )
        rows = conn.execute(
            tasks.update()
            .where(open_lines)
            .values(status=Status.CANCELLED.value, completed_at=time.time(), lease_expires_at=None)
            .returning(*tasks.c)
        ).all()
        return [_row_to_task(row) for row in rows]

    async def delete(self, task_id: str, *, owner: str | None = None) -> None:
        _require_task_id_shape(task_id)
        condition = tasks.c.id == task_id
        if owner is not None:
            condition = sa.and_(condition, tasks.c.owner == owner)
        async with self.db.transaction() as conn:
            outcome = await conn.execute(tasks.delete().where(condition))
            if outcome.rowcount:
                await conn.execute(output_signatures.delete().where(output_signatures.c.task_id == task_id))
        if not outcome.rowcount:
            raise _no_such_task(task_id)

    async def count_by_status(self) -> dict[str, int]:
        async with self.db.engine.connect() as conn:
            rows = await conn.execute(sa.select(tasks.c.status, sa.func.count()).group_by(tasks.c.status))
            return {status: count for status, count in rows.all()}
