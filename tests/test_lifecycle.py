"""The lifecycle on its own, on SQLite and PostgreSQL: each change of a task's state is one transaction with
the hooks registered for it, and its events are published only once that transaction is committed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from pixelgate.auth.keys import ANONYMOUS
from pixelgate.core.errors import Conflict, UpstreamError
from pixelgate.core.request import ImageRequest
from pixelgate.core.task import Status, Task, TaskResult, Usage, new_task_id
from pixelgate.store.schema import tasks
from pixelgate.tasks.bus import Bus, Event, TaskCancelled, TaskEnded, TaskQueued, WebhooksQueued
from pixelgate.tasks.lifecycle import Admission, Lifecycle
from pixelgate.tasks.queue import TaskQueue


class Recorder:
    """Hooks and listeners that write down what they saw, and whether the task was saved at the time."""

    def __init__(self, queue: TaskQueue) -> None:
        self.queue = queue
        self.seen: list[str] = []
        self.refuse = False

    async def saved(self, task_id: str) -> bool:
        async with self.queue.db.engine.connect() as conn:
            return bool(await conn.scalar(sa.select(sa.func.count()).where(tasks.c.id == task_id)))

    def on_accept(self, conn: Any, task: Task, admission: Admission) -> None:
        self.seen.append(f"accept {task.id} {admission.estimate_usd}")
        if self.refuse:
            raise Conflict("refused by a hook")

    def on_end(self, conn: Any, task: Task, made: Usage | None) -> Sequence[Event]:
        self.seen.append(f"end {task.status.value} {made.images if made else None}")
        return [WebhooksQueued(1)]

    def listen(self, bus: Bus) -> None:
        for kind in (TaskQueued, TaskEnded, TaskCancelled, WebhooksQueued):
            bus.subscribe(kind, lambda event: self.seen.append(type(event).__name__))


def new_task() -> Task:
    return Task(id=new_task_id(), request=ImageRequest(model="gemini-3.1-flash-image", prompt="a lighthouse"))


@pytest.fixture()
def rig(queue: TaskQueue) -> tuple[Lifecycle, Recorder]:
    recorder = Recorder(queue)
    bus = Bus()
    recorder.listen(bus)
    return Lifecycle(queue, bus, on_accept=[recorder.on_accept], on_end=[recorder.on_end]), recorder


async def test_accept_runs_its_hooks_then_publishes(rig: tuple[Lifecycle, Recorder]) -> None:
    lifecycle, recorder = rig
    task = new_task()
    await lifecycle.accept(task, Admission(ANONYMOUS, 0.04))
    assert recorder.seen == [f"accept {task.id} 0.04", "TaskQueued"]
    assert await recorder.saved(task.id)


async def test_a_hook_that_refuses_leaves_nothing_saved_and_nothing_published(
    rig: tuple[Lifecycle, Recorder],
) -> None:
    lifecycle, recorder = rig
    recorder.refuse = True
    task = new_task()
    with pytest.raises(Conflict):
        await lifecycle.accept(task, Admission(ANONYMOUS, 0.0))
    assert recorder.seen == [f"accept {task.id} 0.0"]
    assert not await recorder.saved(task.id)


async def test_an_ending_runs_the_end_hooks_with_what_was_made_and_publishes_after(
    rig: tuple[Lifecycle, Recorder],
) -> None:
    lifecycle, recorder = rig
    made, failed = new_task(), new_task()
    for task in (made, failed):
        await lifecycle.accept(task, Admission(ANONYMOUS, 0.0))
    await lifecycle.claim("worker-a", 2, lease_seconds=30)
    recorder.seen.clear()
    assert await lifecycle.complete(made.id, "worker-a", TaskResult(images=(), usage=Usage(images=1)))
    assert await lifecycle.fail(failed.id, "worker-a", UpstreamError("down"))
    assert recorder.seen == [
        "end succeeded 1",
        "TaskEnded",
        "WebhooksQueued",
        "end failed None",
        "TaskEnded",
        "WebhooksQueued",
    ]
    assert not await lifecycle.complete(made.id, "worker-a", TaskResult(images=(), usage=Usage())), (
        "a task ends once"
    )
    assert (await lifecycle.queue.get(failed.id)).status is Status.FAILED


async def test_cancel_publishes_task_cancelled_and_a_second_cancel_of_an_ended_task_is_a_409(
    rig: tuple[Lifecycle, Recorder],
) -> None:
    lifecycle, recorder = rig
    queued, done = new_task(), new_task()
    for task in (queued, done):
        await lifecycle.accept(task, Admission(ANONYMOUS, 0.0))
    recorder.seen.clear()
    cancelled = await lifecycle.cancel(queued.id)
    assert cancelled.status is Status.CANCELLED
    assert recorder.seen == ["end cancelled None", "TaskCancelled", "WebhooksQueued"]
    assert (await lifecycle.cancel(queued.id)).status is Status.CANCELLED, "cancelling again is no error"
    [claimed] = await lifecycle.claim("worker-a", 1, lease_seconds=30)
    await lifecycle.complete(claimed.id, "worker-a", TaskResult(images=(), usage=Usage(images=1)))
    with pytest.raises(Conflict) as caught:
        await lifecycle.cancel(done.id)
    assert caught.value.code == "task_already_finished"


async def test_release_and_defer_give_a_task_back_without_ending_it(rig: tuple[Lifecycle, Recorder]) -> None:
    lifecycle, recorder = rig
    task = new_task()
    await lifecycle.accept(task, Admission(ANONYMOUS, 0.0))
    await lifecycle.claim("worker-a", 1, lease_seconds=30)
    recorder.seen.clear()
    assert await lifecycle.release(task.id, "worker-a")
    [again] = await lifecycle.claim("worker-b", 1, lease_seconds=30)
    assert await lifecycle.defer(again.id, "worker-b", time.time() + 60)
    assert await lifecycle.claim("worker-c", 1, lease_seconds=30) == []
    assert recorder.seen == [], "no hook ran and nothing was published"


class Changes:
    """An ``on_change`` hook that writes down each change, and refuses the one named in ``refuse``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[str]]] = []
        self.refuse: str | None = None

    def __call__(self, conn: Any, change: str, task_ids: Sequence[str]) -> None:
        if change == self.refuse:
            raise Conflict(f"{change} refused by a hook")
        self.seen.append((change, list(task_ids)))


async def test_every_change_runs_the_change_hooks_with_what_its_tasks_became(queue: TaskQueue) -> None:
    changes = Changes()
    lifecycle = Lifecycle(queue, Bus(), on_change=[changes])
    made, failed, given_back, cancelled = tasks_ = [new_task() for _ in range(4)]
    for task in tasks_:
        await lifecycle.accept(task, Admission(ANONYMOUS, 0.0))
    await lifecycle.claim("worker-a", 3, lease_seconds=30)
    await lifecycle.complete(made.id, "worker-a", TaskResult(images=(), usage=Usage(images=1)))
    await lifecycle.fail(failed.id, "worker-a", UpstreamError("down"))
    await lifecycle.release(given_back.id, "worker-a")
    await lifecycle.claim("worker-b", 1, lease_seconds=30)
    await lifecycle.defer(given_back.id, "worker-b", time.time())
    await lifecycle.cancel(cancelled.id)
    assert not await lifecycle.release(given_back.id, "worker-b"), "worker-b holds it no longer"
    assert changes.seen == [
        *[("queued", [task.id]) for task in tasks_],
        ("ended", [made.id]),
        ("ended", [failed.id]),
        ("requeued", [given_back.id]),
        ("requeued", [given_back.id]),
        ("cancelled", [cancelled.id]),
    ], "a change that changed nothing runs no hook"


async def test_a_change_hook_that_fails_undoes_the_change(queue: TaskQueue) -> None:
    """The hooks run in the change's own transaction: what they send (a NOTIFY) goes with it or not at all."""
    changes = Changes()
    lifecycle = Lifecycle(queue, Bus(), on_change=[changes])
    task = new_task()
    await lifecycle.accept(task, Admission(ANONYMOUS, 0.0))
    await lifecycle.claim("worker-a", 1, lease_seconds=30)
    changes.refuse = "ended"
    with pytest.raises(Conflict):
        await lifecycle.complete(task.id, "worker-a", TaskResult(images=(), usage=Usage(images=1)))
    assert (await queue.get(task.id)).status is Status.RUNNING


def test_a_listener_that_fails_does_not_stop_the_others() -> None:
    bus = Bus()
    heard: list[str] = []

    def broken(event: TaskQueued) -> None:
        raise RuntimeError("a bug in a listener")

    bus.subscribe(TaskQueued, broken)
    bus.subscribe(TaskQueued, lambda event: heard.append(event.task.id))
    task = new_task()
    bus.publish(TaskQueued(task))
    assert heard == [task.id]
