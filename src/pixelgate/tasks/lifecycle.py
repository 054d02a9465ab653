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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.engine import Connection

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


# The hooks are plain functions of the transaction's connection, as the SQL of each change is: a change runs
# in one step (see ``Database.write``), and they must do nothing but talk to the database.
# Run in the transaction that accepts a task; raising refuses it (nothing is saved).
AcceptHook = Callable[[Connection, Task, Admission], None]
# Run in the transaction that ends a task, with what it made (None: failed or cancelled, nothing); returns
# what to publish once the transaction is committed.
EndHook = Callable[[Connection, Task, Usage | None], Sequence[Event]]
# What a change made of its tasks: accepted, given back to the queue, ended (succeeded or failed), cancelled.
Change = Literal["queued", "requeued", "ended", "cancelled"]
# Run in the transaction of every change of state, with the ids of the tasks it changed.
ChangeHook = Callable[[Connection, Change, Sequence[str]], None]


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

        def accept(conn: Connection) -> None:
            for hook in self.on_accept:
                hook(conn, task, admission)
            self.queue.save(conn, task, lease=lease)
            if lease is None:
                self._changed(conn, "queued", [task.id])

        await self.queue.db.write(accept)
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
        return await self._requeue(lambda conn: self.queue.release(conn, task_id, worker_id))

    async def defer(self, task_id: str, worker_id: str, until: float) -> bool:
        return await self._requeue(lambda conn: self.queue.defer(conn, task_id, worker_id, until))

    async def _requeue(self, change: Callable[[Connection], Task | None]) -> bool:
        def requeue(conn: Connection) -> bool:
            requeued = change(conn)
            if requeued is not None:
                self._changed(conn, "requeued", [requeued.id])
            return requeued is not None

        return await self.queue.db.write(requeue)

    async def _end(
        self, change: Callable[[Connection], Task | list[Task] | None], made: Usage | None
    ) -> list[Task]:
        def end(conn: Connection) -> tuple[list[Task], list[Event]]:
            follow: list[Event] = []
            changed = change(conn)
            ended = changed if isinstance(changed, list) else [changed] if changed is not None else []
            for task in ended:
                for hook in self.on_end:
                    follow.extend(hook(conn, task, made if task.status is Status.SUCCEEDED else None))
            self._changed(conn, "cancelled", [t.id for t in ended if t.status is Status.CANCELLED])
            self._changed(conn, "ended", [t.id for t in ended if t.status is not Status.CANCELLED])
            return ended, follow

        ended, follow = await self.queue.db.write(end)
        for task in ended:
            self.bus.publish(TaskCancelled(task) if task.status is Status.CANCELLED else TaskEnded(task))
        for event in follow:
            self.bus.publish(event)
        return ended

    def _changed(self, conn: Connection, change: Change, task_ids: Sequence[str]) -> None:
        if task_ids:
            for hook in self.on_change:
                hook(conn, change, task_ids)
