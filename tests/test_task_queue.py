"""The queue itself, on SQLite and PostgreSQL: the order of claims, leases that run out, and a schema
made by the migrations that is the one the code declares."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pixelgate.core.request import ImageRequest
from pixelgate.core.task import GeneratedImage, Status, Task, TaskResult, Usage, new_task_id
from pixelgate.store.schema import metadata, tasks
from pixelgate.tasks.bus import Bus
from pixelgate.tasks.lifecycle import Lifecycle
from pixelgate.tasks.queue import TaskQueue


async def queued(queue: TaskQueue, *, priority: int = 0, created_at: float | None = None) -> str:
    task = Task(
        id=new_task_id(),
        request=ImageRequest(model="gemini-3.1-flash-image", prompt="a lighthouse"),
        priority=priority,
        created_at=created_at if created_at is not None else time.time(),
    )
    await queue.insert(task)
    return task.id


async def test_claims_take_the_highest_priority_then_the_oldest(queue: TaskQueue) -> None:
    now = time.time()
    old_low = await queued(queue, priority=0, created_at=now - 30)
    new_high = await queued(queue, priority=5, created_at=now - 10)
    old_high = await queued(queue, priority=5, created_at=now - 20)
    new_low = await queued(queue, priority=0, created_at=now)

    first = await queue.claim("worker-a", 1, lease_seconds=30)
    rest = await queue.claim("worker-a", 10, lease_seconds=30)

    assert [t.id for t in first] == [old_high]
    assert [t.id for t in rest] == [new_high, old_low, new_low]
    assert all(t.status is Status.RUNNING and t.attempts == 1 for t in [*first, *rest])
    assert await queue.claim("worker-a", 10, lease_seconds=30) == []


async def test_a_lease_that_ran_out_goes_to_another_worker_never_back_to_its_own(queue: TaskQueue) -> None:
    task_id = await queued(queue)
    [held] = await queue.claim("worker-a", 1, lease_seconds=0.05)
    await asyncio.sleep(0.1)

    # Worker A's heartbeat was late, but A still runs the task: running it again there would make the
    # image twice upstream.
    assert await queue.claim("worker-a", 10, lease_seconds=30) == []
    [taken_over] = await queue.claim("worker-b", 10, lease_seconds=30)

    assert held.id == taken_over.id == task_id
    assert taken_over.attempts == 2
    assert await queue.renew("worker-a", [task_id], 30) == {task_id}, "A learns it lost the task"
    assert await queue.renew("worker-b", [task_id], 30) == set()


async def test_a_deferred_task_waits_for_its_time_and_keeps_its_attempts(queue: TaskQueue) -> None:
    """A task that no channel could take goes back to the queue until one can: it is not claimed before
    then, by any worker, and the claim that found no channel does not count as an attempt."""
    lifecycle = Lifecycle(queue, Bus())
    deferred, other = await queued(queue, priority=5), await queued(queue)
    [held] = await queue.claim("worker-a", 1, lease_seconds=30)
    assert held.id == deferred and held.attempts == 1
    assert await lifecycle.defer(deferred, "worker-a", time.time() + 0.3)
    assert [t.id for t in await queue.claim("worker-b", 10, lease_seconds=30)] == [other]
    assert (await queue.get(deferred)).status is Status.QUEUED
    await asyncio.sleep(0.35)
    [again] = await queue.claim("worker-b", 10, lease_seconds=30)
    assert again.id == deferred and again.attempts == 1
    assert not await lifecycle.defer(deferred, "worker-a", time.time()), "only its holder may put it back"


async def test_a_signed_output_is_found_by_its_bytes_for_its_owner_only(queue: TaskQueue) -> None:
    """What chat completions use to restore a thought signature the client could not send back."""
    lifecycle = Lifecycle(queue, Bus())
    task = Task(
        id=new_task_id(),
        request=ImageRequest(model="gemini-3-pro-image", prompt="a fox"),
        owner="alice",
    )
    await queue.insert(task)
    await queue.claim("worker-a", 1, lease_seconds=30)
    signed = GeneratedImage(f"{task.id}/out-0.png", "image/png", 8, 8, sha256="ab" * 32, signature="sig-1")
    unsigned = GeneratedImage(f"{task.id}/out-1.png", "image/png", 8, 8)
    assert await lifecycle.complete(task.id, "worker-a", TaskResult(images=(signed, unsigned), usage=Usage()))

    assert await queue.signature_of("ab" * 32, owner="alice") == "sig-1"
    assert await queue.signature_of("ab" * 32, owner="bob") is None
    assert await queue.signature_of("ab" * 32, owner=None) is None
    assert await queue.signature_of("cd" * 32, owner="alice") is None
    await queue.delete(task.id)
    assert await queue.signature_of("ab" * 32, owner="alice") is None, "the record goes with its task"


async def test_the_migrations_make_the_schema_the_code_declares(queue: TaskQueue) -> None:
    def differences(connection: sa.Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async with queue.db.engine.connect() as conn:
        assert await conn.run_sync(differences) == []


async def test_a_claim_reads_the_queue_in_index_order_on_sqlite(queue: TaskQueue) -> None:
    if queue.db.is_postgres:
        pytest.skip("PostgreSQL's planner chooses by table statistics; the index is the same")
    claim = (
        sa.select(tasks.c.id)
        .where(tasks.c.status == Status.QUEUED.value)
        .order_by(tasks.c.priority.desc(), tasks.c.created_at)
        .limit(1)
    )
    compiled = claim.compile(queue.db.engine, compile_kwargs={"literal_binds": True})
    async with queue.db.engine.connect() as conn:
        plan = " / ".join(row[-1] for row in await conn.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "ix_tasks_claim" in plan and "TEMP B-TREE" not in plan, plan
