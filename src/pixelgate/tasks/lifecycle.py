"""Where a task changes state. Each change is one transaction here; what must happen with it is registered
when the runtime is built, and what must follow it is published on the bus once it is committed.

::

    accept ──► queued ──claim──► running ──complete──► succeeded ─┐
                 ▲                  │ └─────fail─────► failed ────┼─► TaskEnded
                 └──release, defer──┘                             │
    queued or running ────────────cancel─────────────► cancelled ─┴─► TaskCancelled

- ``accept`` runs the ``on_accept`` hooks (the Idempotency-Key, the ledger's reservation) and saves the
  task in one transaction, then publishes ``TaskQueued``. A synchronous request this process runs itself
  is saved already claimed (``running``, with its worker's lease), and skips the queue.
- ``complete``, ``fail`` and ``cancel`` run the ``on_end`` hooks (the ledger settles, the webhook outbox
  queues the event) in the transaction that ends the task. Whatever events those hooks return
  (``WebhooksQueued``) are published after it, with ``TaskEnded`` or ``TaskCancelled``.
- ``release`` and ``defer`` give a running task back to the queue; its reservation stands.
- Every one of these changes runs the ``on_change`` hooks in its transaction, with what the tasks became
  (``queued``, ``requeued``, ``ended``, ``cancelled``): on PostgreSQL that is how the other processes
  sharing the database hear of it (``wakeups.py``).

The SQL of each change is ``queue.py``'s. Every change a worker makes is conditional on its still holding
the task, so a task ends exactly once even if two workers ever ran it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from pixelgate.auth.keys import Caller
from pixelgate.core.errors import Conflict, PixelgateError
from pixelgate.core.task import Status, Task, TaskResult, Usage
from pixelgate.tasks.bus import Bus, Event, TaskCancelled, TaskEnded, TaskQueued
from pixelgate.tasks.idempotency import Idempotent
from pixelgate.tasks.queue import Lease, TaskQueue


@dataclass(frozen=True)
class Admission:
    """What a task is accepted with besides itself: who asked (whose limits its cost is reserved
    against), the cost reserved, and the Idempotency-Key it is made under."""

    caller: Caller
    estimate_usd: float
    claim: Idempotent | None = None


# Run in the transaction that accepts a task; raising refuses it (nothing is saved).
AcceptHook = Callable[[AsyncConnection, Task, Admission], Awaitable[None]]
# Run in the transaction that ends a task, with what it made (None: failed or cancelled, nothing); returns
# what to publish once the transaction is committed.
EndHook = Callable[[AsyncConnection, Task, Usage | None], Awaitable[Sequence[Event]]]
# What a change made of its tasks: accepted, given back to the queue, ended (succeeded or failed), cancelled.
Change = Literal["queued", "requeued", "ended", "cancelled"]
# Run in the transaction of every change of state, with the ids of the tasks it changed.
ChangeHook = Callable[[AsyncConnection, Change, Sequence[str]], Awaitable[None]]


class Lifecycle:
    def __init__(
        self,
        queue: TaskQueue,
        bus: Bus,
        *,
        on_accept: Sequence[AcceptHook] = (),
        on_end: Sequence[EndHook] = (),
        on_change: Sequence[ChangeHook] = (),
    ) -> None:
        self.queue = queue
        self.bus = bus
        self.on_accept = tuple(on_accept)
        self.on_end = tuple(on_end)
        self.on_change = tuple(on_change)

    async def accept(self, task: Task, admission: Admission, *, lease: Lease | None = None) -> None:
        """Save a new task. With a ``lease`` it is saved running, held by the worker of this process that
        runs it next (a synchronous request: see ``Worker.claim_here``); nobody else is told of it, as
        nobody else has to claim it. Should that process die, the lease runs out and another worker
        takes the task over, as any claimed task."""
        async with self.queue.db.transaction() as conn:
            for hook in self.on_accept:
                await hook(conn, task, admission)
            await self.queue.insert(task, conn=conn, lease=lease)
            if lease is None:
                await self._changed(conn, "queued", [task.id])
        if lease is None:
            self.bus.publish(TaskQueued(task))

    async def claim(
        self, worker_id: str, limit: int, lease_seconds: float, *, batch_limit: int | None = None
    ) -> list[Task]:
        return await self.queue.claim(worker_id, limit, lease_seconds, batch_limit=batch_limit)

    async def complete(self, task_id: str, worker_id: str, result: TaskResult) -> bool:
        """Whether ``worker_id`` still held the task (else its ending is another worker's)."""
        ended = await self._end(
            lambda conn: self.queue.complete(conn, task_id, worker_id, result), result.usage
        )
        return bool(ended)

    async def fail(self, task_id: str, worker_id: str, error: PixelgateError) -> bool:
        return bool(await self._end(lambda conn: self.queue.fail(conn, task_id, worker_id, error), None))

    async def cancel(self, task_id: str, *, owner: str | None = None) -> Task:
        """Cancel a queued or running task of ``owner`` (None: anyone's); a 409 if it has ended already."""
        cancelled = await self._end(lambda conn: self.queue.cancel(conn, task_id, owner=owner), None)
        if cancelled:
            return cancelled[0]
        task = await self.queue.get(task_id, owner=owner)
        if task.status is not Status.CANCELLED:
            raise Conflict(
                f"task {task_id} has already {task.status.value} and can no longer be cancelled: "
                "only queued or running tasks can be",
                param="task_id",
                code="task_already_finished",
            )
        return task

    async def cancel_batch(self, batch_id: str) -> list[Task]:
        """Cancel every open task of a stopped batch, in one transaction; the tasks cancelled."""
        return await self._end(lambda conn: self.queue.cancel_batch(conn, batch_id), None)

    async def release(self, task_id: str, worker_id: str) -> bool:
        async with self.queue.db.transaction() as conn:
            released = await self.queue.release(conn, task_id, worker_id)
            if released is not None:
                await self._changed(conn, "requeued", [task_id])
        return released is not None

    async def defer(self, task_id: str, worker_id: str, until: float) -> bool:
        async with self.queue.db.transaction() as conn:
            deferred = await self.queue.defer(conn, task_id, worker_id, until)
            if deferred is not None:
                await self._changed(conn, "requeued", [task_id])
        return deferred is not None

    async def _end(
        self,
        change: Callable[[AsyncConnection], Awaitable[Task | list[Task] | None]],
        made: Usage | None,
    ) -> list[Task]:
        follow: list[Event] = []
        async with self.queue.db.transaction() as conn:
            changed = await change(conn)
            ended = changed if isinstance(changed, list) else [changed] if changed is not None else []
            for task in ended:
                for hook in self.on_end:
                    follow += await hook(conn, task, made if task.status is Status.SUCCEEDED else None)
            await self._changed(conn, "cancelled", [t.id for t in ended if t.status is Status.CANCELLED])
            await self._changed(conn, "ended", [t.id for t in ended if t.status is not Status.CANCELLED])
        for task in ended:
            self.bus.publish(TaskCancelled(task) if task.status is Status.CANCELLED else TaskEnded(task))
        for event in follow:
            self.bus.publish(event)
        return ended

    async def _changed(self, conn: AsyncConnection, change: Change, task_ids: Sequence[str]) -> None:
        if task_ids:
            for hook in self.on_change:
                await hook(conn, change, task_ids)
